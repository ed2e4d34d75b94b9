"""Data sent and stored once per content, and `prune`, against the sandbox (issue 9).

A data set of its own (fresh content, so the cluster's store has never seen it) is trained twice with
different configs: the second run sends no data (the local rsync is not even started) and adds no data
to the cluster's disk (its inputs are hard links to the store's files). prune then frees what it says:
only finished runs whose results were fetched, never a live run or an unfetched result, and the stored
data once no run uses it.
"""

import hashlib
import json
import os
import shlex
import shutil
import subprocess
import sys
import uuid
from pathlib import Path

import pytest

from tests.conftest import PROJECT
from tests.integration.runs_support import MINI, ROOT, SETS, Cli

pytestmark = pytest.mark.sandbox
DATA = ("train.txt", "validation.txt", "test.txt")
ANSIBLE_PLAYBOOK = str(Path(sys.executable).parent / "ansible-playbook")


@pytest.fixture(scope="module")
def dataset(tmp_path_factory):
    """The demo config and data, with data of a content no other test has sent."""
    here = tmp_path_factory.mktemp("dataset")
    (here / "data").mkdir()
    tag = uuid.uuid4().hex
    for name in DATA:
        text = (MINI / "data" / name).read_text()
        (here / "data" / name).write_text(text + f"\n# {tag}\n")
    shutil.copy(MINI / "configs" / "demo.yaml", here / "demo.yaml")
    return here


@pytest.fixture(scope="module")
def counted(tmp_path_factory, cluster_code):
    """cesres-ctl whose local rsync writes each call to a file before it runs the real one."""
    bin_dir = tmp_path_factory.mktemp("bin")
    calls = bin_dir / "rsync-calls"
    real = shutil.which("rsync")
    (bin_dir / "rsync").write_text(f'#!/bin/sh\nprintf "%s\\n" "$*" >> {shlex.quote(str(calls))}\nexec {real} "$@"\n')
    (bin_dir / "rsync").chmod(0o755)
    cli = Cli(tmp_path_factory.mktemp("state"), path_prefix=bin_dir)
    cli.calls = calls
    return cli


def digests(dataset: Path) -> set[str]:
    return {hashlib.sha256((dataset / "data" / name).read_bytes()).hexdigest() for name in DATA}


def prune_by_hand(variables: dict) -> None:
    """playbooks/prune.yml with ansible-playbook, as a user would run it."""
    done = subprocess.run(
        [ANSIBLE_PLAYBOOK, "playbooks/prune.yml", "-l", "sandbox", "-e", json.dumps(variables)],
        cwd=PROJECT,
        capture_output=True,
        text=True,
        timeout=300,
        env={**os.environ, "ANSIBLE_NOCOLOR": "1"},
        check=False,
    )
    assert done.returncode == 0, done.stdout


def rsync_calls(cli) -> list[str]:
    return cli.calls.read_text().splitlines() if cli.calls.exists() else []


def store_listing(sandbox) -> dict[str, tuple[int, int]]:
    """{name: (inode, size)} of the store of the runs' checkout."""
    done = sandbox.ssh(f"find {ROOT}/runs/.store -maxdepth 1 -type f -printf '%f %i %s\\n' 2>/dev/null; true")
    entries = (line.split() for line in done.stdout.splitlines())
    return {name: (int(inode), int(size)) for name, inode, size in entries}


def train(cli, dataset, *args: str, model: tuple[str, ...]) -> dict:
    done = cli("train", "demo.yaml", *SETS, *args, "--json", "--", *model, cwd=dataset)
    assert done.returncode == 0, done.stderr
    return json.loads(done.stdout)


def own_bytes(sandbox, run_dir: str) -> int:
    """The bytes of a run directory's files that no other path links to (what removing it frees)."""
    done = sandbox.ssh(f"find {shlex.quote(run_dir)} -type f -links 1 -printf '%s\\n'")
    assert done.returncode == 0, done.stderr
    return sum(int(size) for size in done.stdout.split())


def test_a_second_run_of_the_same_data_sends_and_stores_nothing_more(counted, dataset, sandbox):
    before = store_listing(sandbox)
    first = train(counted, dataset, "--name", "store-a", model=("-l", "2"))
    sent = rsync_calls(counted)
    assert len(sent) == 3, sent  # the three new files, each once
    after_first = store_listing(sandbox)
    assert set(after_first) - set(before) == digests(dataset)

    # Another config (other model options: another run id), the same data.
    second = train(counted, dataset, "--name", "store-b", model=("-l", "3"))
    assert second["run_id"] != first["run_id"]
    assert rsync_calls(counted) == sent, "the second run sent data"
    assert store_listing(sandbox) == after_first, "the second run added data to the store"
    # Its inputs are the store's files themselves: no byte more on the cluster's disk.
    inodes = sandbox.ssh(f"stat -c '%i' {shlex.quote(second['remote_dir'])}/inputs/*").stdout.split()
    assert sorted(int(i) for i in inodes) == sorted(after_first[d][0] for d in digests(dataset))
    assert own_bytes(sandbox, second["remote_dir"] + "/inputs") == 0
    for run in (first, second):
        counted.wait_final(run["run_id"])


def test_prune_frees_what_it_says_and_never_a_live_run_or_an_unfetched_result(counted, dataset, sandbox, tmp_path):
    runs = {run["name"]: run for run in counted.json("runs", "--no-refresh")}
    fetched, unfetched = runs["store-a"], runs["store-b"]
    assert counted("fetch", fetched["run_id"], "--dest", str(tmp_path / "a")).returncode == 0
    live = train(
        counted,
        dataset,
        "--name",
        "store-live",
        "--partition",
        "batch",
        "--time",
        "00:05:00",
        model=("-l", "100000", "-d", "cpu"),
    )
    try:
        freed_expected = own_bytes(sandbox, fetched["remote_dir"])
        dry = counted.json("prune", "--dry-run")
        assert [item["run_id"] for item in dry["removed"]] == [fetched["run_id"]]
        assert sandbox.ssh(f"test -d {shlex.quote(fetched['remote_dir'])}").returncode == 0, "dry run removed it"

        done = counted.json("prune")
        assert [item["run_id"] for item in done["removed"]] == [fetched["run_id"]]
        kept = {item["run_id"]: item["reason"] for item in done["kept"]}
        assert "not fetched" in kept[unfetched["run_id"]]
        assert live["run_id"] in kept
        # Freed: the run's own files; its data stays in the store, the unfetched run still links it.
        assert done["freed_bytes"] == freed_expected > 0
        assert done["store_removed"] == []
        assert sandbox.ssh(f"test -d {shlex.quote(fetched['remote_dir'])}").returncode != 0
        for run in (unfetched, live):
            assert sandbox.ssh(f"test -d {shlex.quote(run['remote_dir'])}").returncode == 0
        assert counted.json("prune")["removed"] == []  # nothing more to remove

        # Asked by hand, for the live run: the cluster side refuses it whatever the caller says.
        prune_by_hand({"cesres_prune_roots": [ROOT], "cesres_prune_runs": [live["remote_dir"]]})
        assert sandbox.ssh(f"test -d {shlex.quote(live['remote_dir'])}").returncode == 0, "a live run was removed"
    finally:
        counted("cancel", live["run_id"])

    # Once no run links the data set, its stored files go too (young entries are kept: min age 0 here).
    for run in (unfetched, live):
        counted.wait_final(run["run_id"])
        sandbox.ssh(f"rm -rf {shlex.quote(run['remote_dir'])}")
    assert digests(dataset) <= set(store_listing(sandbox))
    prune_by_hand({"cesres_prune_roots": [ROOT], "cesres_prune_min_age_minutes": 0})
    assert not digests(dataset) & set(store_listing(sandbox))


def test_doctor_shows_what_the_runs_and_the_store_take(counted, sandbox):
    done = counted("doctor", "--json")
    checks = {check["id"]: check for check in json.loads(done.stdout)["checks"]}
    runs = checks["runs"]
    assert runs["status"] == "pass", runs
    home = sandbox.ssh("echo $HOME").stdout.strip()
    # Every checkout of the recorded runs, with its runs and its store as the cluster counts them.
    assert f"{home}/cesres-it/runs: " in runs["detail"]
    assert f"data store: {len(store_listing(sandbox))} file(s), " in runs["detail"]
