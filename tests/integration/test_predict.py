"""Predictions with a trained run against the sandbox: a demo run trained by a real job, then its best.th
classifies held-out snippets in a prediction job (the program's no_loop mode), from its cluster's copy
and from the fetched copy sent once; a run without best.th is refused in one line.

The runs use their own code root, ~/cesres-it-predict: this checkout's cesres-mini pushed without git
(the sandbox may publish another version of it), with the runs' venv ~/cesres-it-env.
"""

import hashlib
import json
import shlex
import subprocess
import uuid

import pytest
import yaml

from tests.integration.runs_support import MINI, VENV, cluster_runs, demo_config_with, one_error_line

pytestmark = pytest.mark.sandbox

ROOT = "~/cesres-it-predict"
SETS = ("--set", f"root={ROOT}", "--set", f"venv={VENV}")
HELDOUT = MINI / "data" / "test.txt"


@pytest.fixture(scope="module")
def pushed(cluster_code):
    """This checkout's cesres-mini as the runs' code on the cluster."""
    sandbox = cluster_code
    ssh = f"ssh -F {shlex.quote(str(sandbox.ssh_config))}"
    done = subprocess.run(
        [
            "rsync",
            "-rt",
            "--delete",
            "--exclude=/runs/",
            "--exclude=output/",
            "--exclude=__pycache__/",
            "-e",
            ssh,
            f"{MINI}/",
            f"{sandbox.alias}:cesres-it-predict/",
        ],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert done.returncode == 0, done.stderr
    return sandbox


@pytest.fixture(scope="module")
def runs(cli, pushed, tmp_path_factory):
    """A demo run that completes and one that fails, trained at once: {label: train --json output}."""
    tag = uuid.uuid4().hex[:6]
    failing = demo_config_with(tmp_path_factory.mktemp("failing"), "learning_rate: 2.e-3", "learning_rate: -1.0")
    found = {}
    for label, config, name in (("demo", "configs/demo.yaml", f"pdemo-{tag}"), ("failing", failing, f"pfail-{tag}")):
        done = cli("train", config, *SETS, "--name", name, "--partition", "batch", "--json", "--", "-d", "cpu")
        assert done.returncode == 0, done.stderr
        found[label] = json.loads(done.stdout)
    for run in found.values():
        cli.wait_final(run["run_id"])
    return found


def labels_of_demo() -> list[str]:
    return yaml.safe_load((MINI / "configs" / "demo.yaml").read_text())["MODEL"]["labels"]


def heldout_snippets() -> list[str]:
    parts = HELDOUT.read_text().split("\n$$$\n")
    return [part.split(" $x$ ")[0].strip() for part in parts if part.strip()]


def test_predict_wait_json_labels_every_heldout_snippet_from_the_runs_label_set(cli, runs, tmp_path):
    run = runs["demo"]
    assert cli.json("status", run["run_id"])["state"] == "COMPLETED"
    done = cli("predict", run["run_id"], str(HELDOUT), *SETS, "--wait", "--dest", str(tmp_path / "p"), "--json")
    assert done.returncode == 0, done.stderr
    report = json.loads(done.stdout)
    assert report["state"] == "COMPLETED" and report["submitted"] is True
    assert report["model_run"] == run["run_id"]
    assert report["labels"] == labels_of_demo() and report["multi_label"] is True
    snippets = heldout_snippets()
    predictions = report["predictions"]
    assert [p["index"] for p in predictions] == list(range(1, len(snippets) + 1))
    assert [p["snippet"] for p in predictions] == snippets
    for item in predictions:
        assert set(item["labels"]) <= set(report["labels"])
        assert set(item["probabilities"]) == set(report["labels"])
        assert all(0.0 <= p <= 1.0 for p in item["probabilities"].values())
        assert item["labels"] == [lab for lab in report["labels"] if item["probabilities"][lab] > 0.5]
    # A model trained 10 epochs labels most held-out snippets.
    assert sum(1 for item in predictions if item["labels"]) > len(snippets) // 2
    fetched = tmp_path / "p"
    assert (fetched / "results" / "predictions.txt").is_file() and not (fetched / "results" / "best.th").exists()
    # The prediction is a recorded run, shown again by `predictions` (and `status`, `fetch` like any run).
    again = cli.json("predictions", report["run_id"], "--no-fetch")
    assert again["predictions"] == predictions
    # The same prediction again: the existing run, no new job.
    same = cli("predict", run["run_id"], str(HELDOUT), *SETS, "--json")
    assert same.returncode == 0, same.stderr
    assert json.loads(same.stdout)["run_id"] == report["run_id"]
    assert json.loads(same.stdout)["submitted"] is False
    # The run's name still names it alone (a prediction's name does not extend it).
    assert cli.json("status", run["name"])["run_id"] == run["run_id"]
    assert report["run_id"].startswith(f"predict-{run['name']}-")
    table = cli("predictions", report["run_id"], "--no-fetch")
    assert table.returncode == 0 and "SNIPPET" in table.stdout and "LABELS" in table.stdout


def test_the_fetched_best_th_is_sent_when_the_cluster_lacks_it(cli, runs, pushed, tmp_path):
    run = runs["demo"]
    fetched = tmp_path / "train"
    cli.json("fetch", run["run_id"], "--dest", str(fetched))
    weights = fetched / "results" / "best.th"
    digest = hashlib.sha256(weights.read_bytes()).hexdigest()
    remote = shlex.quote(run["remote_dir"])
    store = f"~/cesres-it-predict/runs/.store/{digest}"
    # As after a prune, or for a run of another cluster: the cluster has neither its best.th nor a stored copy.
    moved = pushed.ssh(f"mv {remote}/results/best.th {remote}/results/best.th.away && rm -f {store}")
    assert moved.returncode == 0, moved.stderr
    try:
        snippets = tmp_path / "two.txt"
        snippets.write_text("def add(a, b):\n    return a + b\n$$$\ndef show(x):\n    print(x)\n")
        done = cli("predict", run["run_id"], str(snippets), *SETS, "--wait", "--dest", str(tmp_path / "p"), "--json")
        assert done.returncode == 0, done.stderr
        report = json.loads(done.stdout)
        assert [p["snippet"] for p in report["predictions"]] == [
            "def add(a, b):\n    return a + b",
            "def show(x):\n    print(x)",
        ]
        assert all(set(p["labels"]) <= set(report["labels"]) for p in report["predictions"])
        # Sent once, into the store: the run's own results still lack it.
        assert pushed.ssh(f"test -f {store} && test ! -e {remote}/results/best.th").returncode == 0
    finally:
        pushed.ssh(f"mv {remote}/results/best.th.away {remote}/results/best.th")


def test_a_run_without_best_th_is_refused_in_one_line_nothing_submitted(cli, runs, pushed, tmp_path):
    run = runs["failing"]
    assert cli.json("status", run["run_id"])["state"] == "FAILED"
    before = cli.json("runs", "--no-refresh")
    done = cli("predict", run["run_id"], str(HELDOUT), *SETS, "--wait")
    assert done.returncode == 1
    line = one_error_line(done)
    assert f"{run['run_id']} has no best.th to predict with" in line and "ended FAILED" in line
    missing = cli("predict", run["run_id"], str(tmp_path / "none.txt"), *SETS)
    assert "snippets file" in one_error_line(missing) and "not found" in one_error_line(missing)
    assert cli.json("runs", "--no-refresh") == before
    assert cluster_runs(pushed, f"predict-{run['name']}") == []


def test_predict_dry_run_prints_the_job_and_submits_nothing(cli, runs):
    run = runs["demo"]
    before = cli.json("runs")
    done = cli("predict", run["run_id"], str(HELDOUT), *SETS, "--partition", "batch", "--dry-run", "--name", "dry")
    assert done.returncode == 0, done.stderr
    assert done.stdout.startswith("# dry run: nothing is sent to sandbox\n")
    assert "inputs/evaluation.txt" in done.stdout and "inputs/weights.th" in done.stdout
    assert "no_loop: true" in done.stdout and "#!/bin/bash -l" in done.stdout
    assert cli.json("runs") == before
