"""Training runs against the sandbox: submit, follow, fetch, plot, time limit, failure, cancel,
idempotent submission, injection attempts and input checks.

The runs use their own CESReS checkout and venv on the cluster (~/cesres-it, ~/cesres-it-env, set
with `train --set`), so tests of the provisioning roles that reset ~/cesres cannot disturb them, and a
private registry (XDG_STATE_HOME). Independent jobs are submitted together at the start (module
fixture) and then awaited, so the whole module takes about the time of its longest job (the time
limit one, ~75-100 s).
"""

import json
import re
import shlex
import struct
import subprocess
import time
import uuid
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest

from tests.conftest import CESRES_CTL, PROJECT
from tests.integration.runs_support import MINI, ROOT, SETS, VENV, Cli, demo_config_with

pytestmark = pytest.mark.sandbox


@pytest.fixture(scope="module")
def submitted(cli, tmp_path_factory):
    """Every independent job, submitted at once: {label: train --json output}."""
    tag = uuid.uuid4().hex[:6]
    # A config that only the model itself rejects (exit code 2), not cesres-ctl's checks: the real
    # program fails on it too (transformers' AdamW: "Invalid learning rate").
    failing = demo_config_with(tmp_path_factory.mktemp("failing"), "learning_rate: 2.e-3", "learning_rate: -1.0")
    jobs = {
        # -l 3 while the config says loops: 10: the option must reach the job through its config.
        "demo": (("--name", f"demo-{tag}", "--partition", "gpu", "--gpus", "1"), ("-l", "3"), "configs/demo.yaml"),
        "timeout": (("--name", f"tl-{tag}", "--time", "00:01:00"), ("-l", "100000"), "configs/demo.yaml"),
        "failing": (("--name", f"fail-{tag}", "--partition", "gpu"), (), failing),
        "cancel": (
            ("--name", f"cancel-{tag}", "--partition", "batch", "--time", "00:03:00"),
            ("-l", "100000", "-d", "cpu"),
            "configs/demo.yaml",
        ),
        "follow": (("--name", f"follow-{tag}", "--partition", "batch"), ("-l", "60", "-d", "cpu"), "configs/demo.yaml"),
    }
    with ThreadPoolExecutor(max_workers=len(jobs)) as pool:
        futures = {label: pool.submit(cli._train, *job) for label, job in jobs.items()}
        runs = {label: future.result() for label, future in futures.items()}
    yield runs
    # A failed test must not leave its long jobs on the cluster.
    for run in runs.values():
        if not cli.json("status", run["run_id"])["final"]:
            cli("cancel", run["run_id"])


def remote_log(sandbox, run: dict) -> str:
    return sandbox.ssh(f"cat {shlex.quote(run['log'])}").stdout


def is_png(path: Path) -> bool:
    data = path.read_bytes()
    if data[:8] != b"\x89PNG\r\n\x1a\n" or data[12:16] != b"IHDR":
        return False
    width, height = struct.unpack(">II", data[16:24])
    return width > 100 and height > 100 and data[-8:-4] == b"IEND"


def test_demo_run_completes_fetches_and_plots(cli, submitted, sandbox, tmp_path):
    run = submitted["demo"]
    assert run["submitted"] is True
    assert run["resources"]["partition"] == "gpu" and run["resources"]["gpus"] == 1
    status = cli.wait_final(run["run_id"])
    assert status["state"] == "COMPLETED", status
    assert status["exit_code"] == "0"

    dest = tmp_path / "fetched"
    assert cli.json("fetch", run["run_id"], "--dest", str(dest))["dest"] == str(dest)
    # -l 3 took effect although the config says loops: 10 (the real program lets the config win).
    assert sorted(p.name for p in (dest / "results").glob("metrics_epoch_*.json")) == [
        f"metrics_epoch_{i}.json" for i in range(3)
    ]
    remote_config = sandbox.ssh(f"cat {shlex.quote(run['remote_dir'])}/config.yaml").stdout
    assert "\n  loops: 3\n" in remote_config and "\n  device: cuda\n" in remote_config, remote_config
    assert json.loads((dest / "results" / "test_results.txt").read_text())["fscore"] >= 0
    assert (dest / "results" / "best.th").stat().st_size > 0
    log = dest / f"slurm-{run['job_id']}.out"
    text = log.read_text()
    assert "cesres-job: CUDA_VISIBLE_DEVICES=0" in text or "cesres-job: CUDA_VISIBLE_DEVICES=1" in text
    workdir = next(line for line in text.splitlines() if line.startswith("cesres-job: workdir "))
    scratch = workdir.split()[2]
    assert scratch.startswith(str(sandbox.root / "scratch")), workdir
    assert "LOCALSCRATCH=" + str(sandbox.root / "scratch") in workdir
    assert sandbox.ssh(f"test -e {shlex.quote(scratch)}").returncode == 1, "scratch dir left behind"
    assert "exit code 0" in text

    # fetch again: nothing changed, nothing moves
    again = cli("fetch", run["run_id"], "--dest", str(dest))
    assert again.returncode == 0 and "(0 file(s) changed)" in again.stderr, again.stderr

    png = tmp_path / "curves.png"
    done = cli("plot", run["run_id"], "--output", str(png))
    assert done.returncode == 0, done.stderr
    assert is_png(png)


def test_logs_follow_streams_until_the_job_ends(cli, submitted):
    run = submitted["follow"]
    followed = cli("logs", run["run_id"], "-f", timeout=300)
    assert followed.returncode == 0, followed.stderr
    # Following stops only once the job has left the queue: its last lines are there.
    assert "epoch 1/60" in followed.stdout
    assert "results copied to" in followed.stdout
    assert "exit code 0" in followed.stdout
    assert cli.json("status", run["run_id"])["state"] == "COMPLETED"
    printed = cli("logs", run["run_id"])
    assert printed.returncode == 0
    assert "exit code 0" in printed.stdout


def _names(text: str) -> set[str]:
    return set(re.findall(r"`([a-z_]+)`", text))


def documented_fields() -> tuple[set[str], set[str]]:
    """docs/runs.md: the run record's table, and the backquoted names of the `status --json` line."""
    text = (PROJECT / "docs" / "runs.md").read_text()
    table = text[text.index("A **run record**") :].split("\n\n")[1]
    record = {name for line in table.splitlines() if line.startswith("| `") for name in _names(line.split("|")[1])}
    status_line = text[text.index("`status --json`:") :].split("\n\n")[0]
    # Parentheses list a field's values, not fields.
    status = _names(re.sub(r"\([^)]*\)", "", status_line.replace("`status --json`", "")))
    return record, status


def test_json_output_has_the_documented_fields(cli, submitted):
    record_fields, status_fields = documented_fields()
    run = submitted["demo"]
    # train --json: a run record plus the two documented additions.
    assert set(run) == record_fields | {"submitted", "previous_job_id"}
    listed = cli.json("runs")
    assert listed and all(set(item) == record_fields for item in listed)
    assert set(cli.json("status", run["run_id"])) == status_fields


def test_time_limit_copies_partial_results_back(cli, submitted, sandbox, tmp_path):
    run = submitted["timeout"]
    assert run["resources"]["time"] == "00:01:00"
    assert run["resources"]["signal_grace"] == 30
    status = cli.wait_final(run["run_id"], timeout=240)
    assert status["state"] == "TIMEOUT", status
    # The model was stopped: its exit code as the job recorded it, never a 0 that reads as success.
    assert status["exit_code"] not in ("", "0"), status
    dest = tmp_path / "partial"
    cli.json("fetch", run["run_id"], "--dest", str(dest))
    assert (dest / "results" / "metrics_epoch_0.json").is_file(), "partial results were not copied back"
    log = (dest / f"slurm-{run['job_id']}.out").read_text()
    assert "copying partial results" in log
    assert "results copied to" in log


def test_failing_model_shows_failed_with_its_exit_code_and_log(cli, submitted):
    run = submitted["failing"]
    status = cli.wait_final(run["run_id"])
    assert status["state"] == "FAILED", status
    assert status["exit_code"] == "2"
    logs = cli("logs", run["run_id"])
    assert logs.returncode == 0
    assert "cesres-mini: error:" in logs.stdout
    assert "cesres-job: exit code 2" in logs.stdout


def test_cancelled_job_shows_cancelled(cli, submitted):
    run = submitted["cancel"]
    # Let it start (the cancel path must stop a running model and still copy back).
    deadline = time.monotonic() + 60
    while cli.json("status", run["run_id"])["state"] == "PENDING" and time.monotonic() < deadline:
        time.sleep(1)
    time.sleep(3)
    cancelled = cli.json("cancel", run["run_id"])
    assert cancelled["cancelled"] is True
    status = cli.wait_final(run["run_id"], timeout=120)
    assert status["state"] == "CANCELLED", status
    listed = {r["run_id"]: r for r in cli.json("runs")}
    assert listed[run["run_id"]]["state"] == "CANCELLED"


def test_same_inputs_give_one_job_and_new_gives_another(cli, cluster_code):
    name = f"idem-{uuid.uuid4().hex[:6]}"
    first = cli._train(("--name", name, "--partition", "batch"), ("-l", "1", "-d", "cpu"))
    second = cli._train(("--name", name, "--partition", "batch"), ("-l", "1", "-d", "cpu"))
    assert first["submitted"] is True
    assert second["submitted"] is False
    assert (second["run_id"], second["job_id"]) == (first["run_id"], first["job_id"])
    third = cli._train(("--name", name, "--partition", "batch", "--new"), ("-l", "1", "-d", "cpu"))
    assert third["submitted"] is True
    assert third["run_id"] != first["run_id"] and third["job_id"] != first["job_id"]
    for run in (first, third):
        cli.wait_final(run["run_id"])


@pytest.fixture
def no_ssh(tmp_path):
    """A PATH whose ssh/scp/rsync only record that they were called."""
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    marker = tmp_path / "ssh-called"
    for tool in ("ssh", "scp", "rsync"):
        stub = bin_dir / tool
        stub.write_text(f'#!/bin/sh\necho "$0 $*" >> {marker}\nexit 255\n')
        stub.chmod(0o755)
    return bin_dir, marker


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (("configs/demo.yaml", "--partition", "debug", "--time", "01:00:00"), "over the limit of partition debug"),
        (("configs/demo.yaml", "--partition", "nope"), "unknown partition 'nope'"),
        (("configs/demo.yaml", "--partition", "batch", "--gpus", "1"), "has no GPUs"),
        (("configs/missing.yaml",), "config file configs/missing.yaml not found"),
        (("{bad}",), "not valid YAML"),
        (("{nodata}",), "data file CONFIG.training"),
        (("configs/demo.yaml", "--name", 'x"; touch ~/pwned; "'), "run name"),
        (("configs/demo.yaml", "--", "-n"), "not allowed"),
        (("configs/demo.yaml", "--", "-b", "0"), "must be >= 1"),
        (("configs/demo.yaml", "--partition", "batch"), "is cuda but the run has no GPU"),
        (("configs/demo.yaml", "--partition", "batch", "--", "-d", "cpu; touch ~/pwned"), "only on 'cpu' or 'cuda'"),
        (("configs/demo.yaml", "--", "-d", "cuda:1"), "only on 'cpu' or 'cuda'"),
        (("{badhead}",), "must be 9: 7 labels + 2"),
        (("configs/demo.yaml", "--time", "soon"), "invalid time"),
    ],
)
def test_bad_inputs_fail_before_any_ssh(tmp_path, no_ssh, args, message):
    bin_dir, marker = no_ssh
    bad = tmp_path / "bad.yaml"
    bad.write_text("VOCABULARY: {}\nREADER: [unclosed\n")
    nodata = tmp_path / "nodata.yaml"
    nodata.write_text((MINI / "configs" / "demo.yaml").read_text().replace("data/train.txt", "data/absent.txt"))
    badhead = demo_config_with(tmp_path, "arg: [ 1, 64, 9 ]", "arg: [ 1, 64, 7 ]")
    named = {"{bad}": str(bad), "{nodata}": str(nodata), "{badhead}": badhead}
    args = tuple(named.get(a, a) for a in args)
    cli = Cli(tmp_path / "state", path_prefix=bin_dir)
    done = cli("train", *args)
    assert done.returncode != 0
    lines = [line for line in done.stderr.splitlines() if line.strip()]
    assert len(lines) == 1, done.stderr
    assert lines[0].startswith("cesres-ctl: error:") and message in lines[0], lines[0]
    assert not marker.exists(), marker.read_text()
    assert cli.json("runs") == []


def test_the_real_template_config_trains_unchanged(cli, tmp_path):
    """The fork's own template_config.yaml and demo data: the job loads its model offline and trains."""
    template = PROJECT / "tests" / "data" / "template_config.yaml"
    dest = tmp_path / "template"
    name = f"template-{uuid.uuid4().hex[:6]}"
    done = cli("train", str(template), *SETS, "--name", name, "--wait", "--dest", str(dest), "--json", timeout=900)
    assert done.returncode == 0, done.stdout + done.stderr
    run = json.loads(done.stdout)
    assert run["state"] == "COMPLETED", run
    assert len(list((dest / "results").glob("metrics_epoch_*.json"))) == 10  # the template's loops: 10
    log = (dest / f"slurm-{run['job_id']}.out").read_text()
    assert "models loaded: Enoch/graphcodebert-py" in log, log


def test_a_model_not_in_the_clusters_cache_is_refused_and_nothing_recorded(cli, sandbox, tmp_path):
    config = demo_config_with(
        tmp_path,
        'huggingface_model: "Enoch/graphcodebert-py"       # loaded',
        'huggingface_model: "nobody/uncached-model"       # loaded',
    )
    done = cli("train", config, *SETS, "--name", f"nomodel-{uuid.uuid4().hex[:6]}")
    assert done.returncode == 1
    lines = [line for line in done.stderr.splitlines() if line.startswith("cesres-ctl: error:")]
    assert len(lines) == 1, done.stderr
    assert "model nobody/uncached-model, named by the config, is not in the cluster's model cache" in lines[0]
    assert "cesres-ctl setup --cluster sandbox" in lines[0]
    assert not [r for r in cli.json("runs") if r["name"].startswith("nomodel-")]


def test_dry_run_prints_the_script_and_submits_nothing(tmp_path, no_ssh):
    bin_dir, marker = no_ssh
    cli = Cli(tmp_path / "state", path_prefix=bin_dir)
    done = cli("train", "configs/demo.yaml", "--dry-run", "--", "-l", "3")
    assert done.returncode == 0, done.stderr
    assert "#!/bin/bash -l" in done.stdout
    assert "#SBATCH --gres=gpu:1" in done.stdout
    assert "data/train.txt -> inputs/training.txt" in done.stdout
    assert not marker.exists()
    assert cli.json("runs") == []


def test_train_playbook_is_idempotent(cluster_code, tmp_path, monkeypatch):
    """What molecule's idempotence step checks: the second run of train.yml reports changed=0."""
    from cesres_ctl.runner import run_playbook
    from cesres_ctl.runs.submit import PLAYBOOK, prepare

    monkeypatch.setenv("XDG_STATE_HOME", str(tmp_path / "state"))
    monkeypatch.chdir(MINI)
    prepared = prepare(
        Path("configs/demo.yaml"),
        cluster="sandbox",
        name=f"molecule-{uuid.uuid4().hex[:6]}",
        overrides={"partition": "batch"},
        model_args=["-l", "1", "-d", "cpu"],
        new=False,
        settings=[f"root={ROOT}", f"venv={VENV}"],
    )
    extravars = prepared.spec.extravars()
    first = run_playbook(PLAYBOOK, limit="sandbox", extravars=extravars, quiet=True)
    assert first.ok, first.failure
    assert first.hosts["sandbox"].changed > 0
    second = run_playbook(PLAYBOOK, limit="sandbox", extravars=extravars, quiet=True)
    assert second.ok, second.failure
    assert second.hosts["sandbox"].changed == 0


def test_piped_train_prints_only_the_run_id_and_it_names_the_run(cli, cluster_code):
    """`cesres-ctl train ... | cat`: the run's id alone on stdout (RUN=$(cesres-ctl train ...)); the playbook's
    progress, the submission and the wait on stderr."""
    name = f"piped-{uuid.uuid4().hex[:6]}"
    words = [*CESRES_CTL, "train", "configs/demo.yaml", *SETS, "--name", name, "--partition", "batch", "--wait"]
    script = f'RUN=$({shlex.join([*words, "--", "-l", "1", "-d", "cpu"])} | cat) && echo "RUN=$RUN"'
    done = subprocess.run(
        ["bash", "-c", script], capture_output=True, text=True, cwd=MINI, env=cli.env, timeout=600, check=False
    )
    assert done.returncode == 0, done.stderr
    [run] = [run for run in cli.json("runs") if run["name"] == name]
    assert done.stdout == f"RUN={run['run_id']}\n"
    assert f"submitted {run['run_id']}: job {run['job_id']} on sandbox" in done.stderr
    assert "TASK" in done.stderr and f"{run['run_id']} job {run['job_id']}: COMPLETED" in done.stderr
