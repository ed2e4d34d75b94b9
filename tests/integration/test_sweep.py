"""Sweeps against the sandbox (issue 10): a 2x2 grid as one Slurm job array, each point a run of its own;
the same sweep again submits nothing; a failed point is retried alone; compare and the sweep plot show
what the runs' own files say."""

import json
import struct
import uuid
from pathlib import Path

import pytest

from tests.integration.runs_support import SETS, Cli, one_error_line

pytestmark = pytest.mark.sandbox

GRID = ("--vary", "TRAINER.learning_rate=1e-3,3e-3", "--vary", "CONFIG.batch_size=8,16")
QUICK = ("--partition", "batch", "--time", "00:05:00")
MODEL = ("--", "-l", "2", "-d", "cpu")
TAG = uuid.uuid4().hex[:6]  # names of this session's sweeps: new inputs, new sweeps


@pytest.fixture(scope="module")
def cli(tmp_path_factory, cluster_code):
    return Cli(tmp_path_factory.mktemp("state"))


def sweep(cli, name: str, *args: str, model: tuple[str, ...] = MODEL) -> dict:
    done = cli("sweep", "configs/demo.yaml", *SETS, "--name", f"{name}-{TAG}", *args, *QUICK, "--json", *model)
    assert done.returncode == 0, done.stderr
    return json.loads(done.stdout)


@pytest.fixture(scope="module")
def grid(cli):
    report = sweep(cli, "grid", *GRID)
    for point in report["points"]:
        cli.wait_final(point["run_id"])
    return report


def test_a_grid_is_one_job_array_and_every_point_a_run(cli, grid):
    assert len(grid["submitted"]) == 4
    assert {point["job_id"].split("_")[0] for point in grid["points"]} == {grid["array_job_id"]}  # one sbatch
    assert sorted(point["job_id"].split("_")[1] for point in grid["points"]) == ["0", "1", "2", "3"]
    recorded = cli.json("runs", "--sweep", grid["sweep_id"])
    assert [run["point"] for run in recorded] == [
        {"TRAINER.learning_rate": 0.001, "CONFIG.batch_size": 8},
        {"TRAINER.learning_rate": 0.001, "CONFIG.batch_size": 16},
        {"TRAINER.learning_rate": 0.003, "CONFIG.batch_size": 8},
        {"TRAINER.learning_rate": 0.003, "CONFIG.batch_size": 16},
    ]
    assert len({run["run_id"] for run in recorded}) == 4
    assert {run["state"] for run in cli.json("status", grid["sweep_id"])} == {"COMPLETED"}


def test_the_same_sweep_again_submits_nothing(cli, grid):
    again = sweep(cli, "grid", *GRID)
    assert again["sweep_id"] == grid["sweep_id"]
    assert again["submitted"] == []
    assert [p["job_id"] for p in again["points"]] == [p["job_id"] for p in grid["points"]]


def test_compare_and_the_plot_show_what_each_runs_files_say(cli, grid, tmp_path):
    # Run from elsewhere: compare fetches what it needs into ./cesres-runs/.
    compared = cli("compare", grid["sweep_id"], "--sort", "best_validation_loss", "--json", cwd=tmp_path)
    assert compared.returncode == 0, compared.stderr
    rows = json.loads(compared.stdout)
    assert len(rows) == 4
    assert len({row["values"]["TRAINER.learning_rate"] for row in rows}) == 2
    losses = [row["best_validation_loss"] for row in rows]
    assert losses == sorted(losses)
    fetched = {run["run_id"]: Path(run["local_dir"]) for run in cli.json("runs", "--sweep", grid["sweep_id"])}
    assert all(path.is_relative_to(tmp_path) for path in fetched.values())
    for row in rows:
        files = fetched[row["run_id"]].glob("results/metrics_epoch_*.json")
        metrics = [json.loads(path.read_text()) for path in sorted(files, key=lambda p: int(p.stem.rsplit("_")[-1]))]
        assert row["best_validation_loss"] == metrics[-1]["best_validation_loss"]
        assert row["validation_loss"] == [item["validation_loss"] for item in metrics]
    output = tmp_path / "sweep.png"
    plotted = cli("plot", grid["sweep_id"], "--output", str(output), "--json", cwd=tmp_path)
    assert plotted.returncode == 0, plotted.stderr
    drawn = json.loads(plotted.stdout)
    data = output.read_bytes()
    assert data[:8] == b"\x89PNG\r\n\x1a\n" and struct.unpack(">II", data[16:24])[0] > 100
    by_label = {
        f"learning_rate={row['values']['TRAINER.learning_rate']}, batch_size={row['values']['CONFIG.batch_size']}": row
        for row in rows
    }
    assert sorted(drawn["curves"]) == sorted(by_label)  # four curves, one per point
    for label, points in drawn["curves"].items():
        assert [loss for _, loss in points] == by_label[label]["validation_loss"]
    assert sorted(drawn["panels"]) == ["CONFIG.batch_size", "TRAINER.learning_rate"]


def test_a_failed_point_is_retried_alone(cli):
    # A negative learning rate: only the model itself rejects it (it exits with 2), as the real one does.
    axis = ("--vary", "TRAINER.learning_rate=2e-3,-1.0")
    first = sweep(cli, "fail", *axis)
    good, bad = (point["run_id"] for point in first["points"])
    assert [cli.wait_final(run)["state"] for run in (good, bad)] == ["COMPLETED", "FAILED"]
    assert {run["state"] for run in cli.json("runs", "--sweep", first["sweep_id"])} == {"COMPLETED", "FAILED"}
    # The same sweep again submits nothing; with --retry-failed, only the failed point.
    assert sweep(cli, "fail", *axis)["submitted"] == []
    retried = sweep(cli, "fail", *axis, "--retry-failed")
    assert retried["sweep_id"] == first["sweep_id"]
    assert retried["submitted"] == [bad]
    jobs = {point["run_id"]: point["job_id"] for point in retried["points"]}
    before = {point["run_id"]: point["job_id"] for point in first["points"]}
    assert jobs[good] == before[good] and jobs[bad] != before[bad]
    assert jobs[bad] == f"{retried['array_job_id']}_1"
    cli.wait_final(bad)


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (("--vary", "TRAINER.lerning_rate=1,2"), "did you mean learning_rate"),
        (("--vary", "CONFIG.batch_size=8.5"), "is not of the kind"),
        (("--vary", "CONFIG.batch_size="), "use SECTION.key=VALUE"),
        (("--vary", "CONFIG.batch_size=1,2,3", "--max-points", "2"), "more than the limit of 2"),
        (("--vary", "CONFIG.batch_size=8,16", "--max-parallel", "0"), "--max-parallel must be 1 or more"),
    ],
)
def test_bad_grids_are_one_line_and_nothing_is_sent_or_recorded(cli, args, message):
    done = cli("sweep", "configs/demo.yaml", *SETS, "--name", f"bad-{TAG}", *args, *QUICK, *MODEL)
    assert done.returncode != 0
    assert message in one_error_line(done)
    assert not [run for run in cli.json("runs", "--no-refresh") if run["name"] == f"bad-{TAG}"]


def test_logs_fetch_and_cancel_take_a_sweep(cli, grid, tmp_path):
    logs = cli("logs", grid["sweep_id"], "-n", "2")
    assert logs.returncode == 0, logs.stderr
    for point in grid["points"]:
        assert f"== {point['run_id']} [" in logs.stdout
    assert logs.stdout.count("cesres-job: exit code 0") == 4
    fetched = cli.json("fetch", grid["sweep_id"], "--dest", str(tmp_path / "all"))
    assert [item["dest"] for item in fetched] == [str(tmp_path / "all" / p["run_id"]) for p in grid["points"]]
    assert all((Path(item["dest"]) / "results" / "best.th").is_file() for item in fetched)
    # A long sweep, cancelled as a whole.
    axis = ("--vary", "CONFIG.batch_size=8,16", "--max-parallel", "1")
    long = sweep(cli, "long", *axis, model=("--", "-l", "100000", "-d", "cpu"))
    cancelled = cli.json("cancel", long["sweep_id"])
    assert {item["run_id"] for item in cancelled} == {point["run_id"] for point in long["points"]}
    assert {cli.wait_final(point["run_id"])["state"] for point in long["points"]} == {"CANCELLED"}


def test_sweep_wait_follows_every_point_then_fetches_each_into_dest(cli, tmp_path):
    """Issue 20: sweep had no --wait (it was taken for a model option); it follows the points as train --wait
    follows its job, then fetches each point into DEST/RUN; the sweep's id alone on stdout."""
    dest = tmp_path / "points"
    args = (
        "--vary",
        "TRAINER.learning_rate=1e-3,3e-3",
        "--name",
        f"waited-{TAG}",
        *QUICK,
        "--wait",
        "--dest",
        str(dest),
    )
    done = cli("sweep", "configs/demo.yaml", *SETS, *args, *MODEL, timeout=900)
    assert done.returncode == 0, done.stderr
    [sweep_id] = done.stdout.split()
    points = cli.json("runs", "--sweep", sweep_id)
    assert [run["state"] for run in points] == ["COMPLETED", "COMPLETED"]
    for run in points:
        assert (dest / run["run_id"] / "results").is_dir() and run["local_dir"] == str(dest / run["run_id"])
    assert f"{sweep_id}: 2 COMPLETED" in done.stderr


def test_sweep_dry_run_sends_nothing_and_records_nothing(cli):
    done = cli("sweep", "configs/demo.yaml", *SETS, *GRID, "--name", f"dry-{TAG}", *QUICK, "--dry-run", *MODEL)
    assert done.returncode == 0, done.stderr
    assert done.stdout.startswith("# dry run: nothing is sent to sandbox\n# sweep sweep-dry-")
    assert "#SBATCH --output=slurm-%A_%a.out" in done.stdout
    assert not [run for run in cli.json("runs") if run["name"] == f"dry-{TAG}"]
