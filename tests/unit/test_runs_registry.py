"""The run registry (SQLite, several processes at once) and the training-curve plot."""

import json
import multiprocessing
import os
import sqlite3
import struct
import threading
from dataclasses import asdict
from pathlib import Path

import pytest

from cesres_ctl.errors import CesresError
from cesres_ctl.runs import plot
from cesres_ctl.runs.registry import Registry, Run, now


def make_run(run_id="demo-0123456789", job_id="13", cluster="sandbox", **fields):
    return Run(
        cluster=cluster,
        run_id=run_id,
        name=run_id.rsplit("-", 1)[0],
        job_id=job_id,
        remote_dir=f"/home/u/cesres/runs/{run_id}",
        submitted_at=now(),
        state="PENDING",
        resources={"partition": "gpu", "gpus": 1, "time": "00:30:00"},
        **fields,
    )


def test_record_find_update(tmp_path):
    registry = Registry(tmp_path / "runs.sqlite")
    registry.record_submission(make_run())
    registry.record_submission(make_run("other-aaaaaaaaaa", "14"))
    assert registry.find("demo-0123456789").job_id == "13"
    assert registry.find("demo-01").run_id == "demo-0123456789"
    assert registry.find("14").run_id == "other-aaaaaaaaaa"
    assert registry.find("other").run_id == "other-aaaaaaaaaa"
    registry.update("sandbox", "demo-0123456789", state="COMPLETED", exit_code="0")
    run = registry.get("sandbox", "demo-0123456789")
    assert (run.state, run.exit_code, run.final) == ("COMPLETED", "0", True)
    assert run.to_dict()["log"] == "/home/u/cesres/runs/demo-0123456789/slurm-13.out"
    with pytest.raises(CesresError, match="no run"):
        registry.find("nothing")
    json.dumps([r.to_dict() for r in registry.list()])


def test_resubmission_keeps_the_job_history(tmp_path):
    registry = Registry(tmp_path / "runs.sqlite")
    registry.record_submission(make_run())
    registry.update("sandbox", "demo-0123456789", state="FAILED", exit_code="1")
    run = registry.record_submission(make_run(job_id="20"))
    assert run.jobs == ["13", "20"]
    assert registry.find("13").job_id == "20"
    assert registry.get("sandbox", "demo-0123456789").state == "PENDING"


def test_same_job_reported_again_keeps_what_status_learnt(tmp_path):
    registry = Registry(tmp_path / "runs.sqlite")
    registry.record_submission(make_run())
    registry.update("sandbox", "demo-0123456789", state="COMPLETED", exit_code="0")
    registry.record_submission(make_run())
    assert registry.get("sandbox", "demo-0123456789").state == "COMPLETED"


def _writer(path: str, worker: int) -> None:
    registry = Registry(Path(path))
    for i in range(25):
        registry.record_submission(make_run(f"w{worker}-{i:010d}", str(worker * 100 + i)))
        registry.update("sandbox", f"w{worker}-{i:010d}", state="RUNNING")


def test_several_processes_write_at_once(tmp_path):
    path = tmp_path / "runs.sqlite"
    context = multiprocessing.get_context("spawn")
    workers = [context.Process(target=_writer, args=(str(path), n)) for n in range(4)]
    for worker in workers:
        worker.start()
    for worker in workers:
        worker.join(60)
        assert worker.exitcode == 0
    runs = Registry(path).list()
    assert len(runs) == 100
    assert {run.state for run in runs} == {"RUNNING"}


def test_a_registry_another_process_is_still_creating_is_waited_for(tmp_path):
    # The other process has created the file (rollback journal, as before its switch to WAL) and holds
    # its write lock for a moment: SQLite refuses the switch to WAL at once, without its busy handler.
    path = tmp_path / "runs.sqlite"
    creator = sqlite3.connect(path, isolation_level=None, check_same_thread=False)
    creator.execute("CREATE TABLE early (x)")
    creator.execute("BEGIN IMMEDIATE")
    release = threading.Timer(0.5, lambda: creator.execute("COMMIT"))
    release.start()
    try:
        assert Registry(path).list() == []
    finally:
        release.join()
        creator.close()
    registry = Registry(path)
    registry.record_submission(make_run())
    assert [run.run_id for run in registry.list()] == ["demo-0123456789"]


def test_plot_writes_a_png_of_the_curves(tmp_path):
    results = tmp_path / "results"
    results.mkdir()
    for epoch in range(4):
        metrics = {
            "epoch": epoch,
            "training_loss": 0.5 - 0.1 * epoch,
            "validation_loss": 0.45 - 0.08 * epoch,
            "validation_fscore": 0.1 * epoch,
            "training_duration": "0:00:01",
            "peak_worker_0_memory_MB": 100.0,
        }
        (results / f"metrics_epoch_{epoch}.json").write_text(json.dumps(metrics))
    (results / "metrics_epoch_9.json").write_text("{truncated")
    out = plot.plot(results, tmp_path / "curves.png", "demo")
    data = out.read_bytes()
    assert data[:8] == b"\x89PNG\r\n\x1a\n"
    width, height = struct.unpack(">II", data[16:24])
    assert width > 100 and height > 100
    series = plot.series(plot.read_epochs(results))
    assert set(series) == {"training_loss", "validation_loss", "validation_fscore"}
    assert [p[0] for p in series["training_loss"]] == [0, 1, 2, 3]


def test_plot_without_epochs_is_a_clear_error(tmp_path):
    with pytest.raises(CesresError, match=r"metrics_epoch_N\.json"):
        plot.plot(tmp_path, tmp_path / "x.png", "demo")


@pytest.mark.parametrize("ref", ["", " ", "\t\n"])
def test_find_refuses_an_empty_or_blank_run_id(tmp_path, ref):
    registry = Registry(tmp_path / "runs.sqlite")
    registry.record_submission(make_run())
    with pytest.raises(CesresError, match="empty run id") as raised:
        registry.find(ref)
    assert "\n" not in str(raised.value)


@pytest.mark.parametrize("ref", ["d", "de", "dem"])
def test_find_refuses_a_prefix_shorter_than_four_characters(tmp_path, ref):
    registry = Registry(tmp_path / "runs.sqlite")
    registry.record_submission(make_run())
    with pytest.raises(CesresError, match="too short"):
        registry.find(ref)


def test_find_takes_a_unique_prefix_of_four_characters_or_more(tmp_path):
    registry = Registry(tmp_path / "runs.sqlite")
    registry.record_submission(make_run())
    assert registry.find("demo").run_id == "demo-0123456789"
    registry.record_submission(make_run("demo-0199999999", "14"))
    with pytest.raises(CesresError, match="several runs"):
        registry.find("demo-01")


def test_find_takes_a_name_before_a_prefix_of_another_run(tmp_path):
    registry = Registry(tmp_path / "runs.sqlite")
    registry.record_submission(make_run("demo-0123456789", "7"))
    registry.record_submission(make_run("demo2-0123456789", "8"))
    # `demo` begins both ids, and names one run: that run.
    assert registry.find("demo").run_id == "demo-0123456789"
    assert registry.find("demo2").run_id == "demo2-0123456789"
    assert registry.find("demo2-01").run_id == "demo2-0123456789"


def test_find_takes_a_short_name_or_job_id_as_it_is(tmp_path):
    registry = Registry(tmp_path / "runs.sqlite")
    registry.record_submission(make_run("ab-0123456789", "7"))
    assert registry.find("ab").run_id == "ab-0123456789"
    assert registry.find("7").run_id == "ab-0123456789"
    with pytest.raises(CesresError, match="no run 'zz'"):
        registry.find("zz")


def test_plot_into_an_unwritable_place_is_a_clear_error(tmp_path):
    results = tmp_path / "results"
    results.mkdir()
    (results / "metrics_epoch_0.json").write_text(json.dumps({"training_loss": 0.5}))
    with pytest.raises(CesresError, match=r"cannot write in /proc") as raised:
        plot.plot(results, Path("/proc/cesres-curves.png"), "demo")
    assert "\n" not in str(raised.value)
    with pytest.raises(CesresError, match="is a directory"):
        plot.check_output(tmp_path)


# --- a registry or a kept record that is not one (issue 18) --------------------------------------


def test_a_truncated_registry_is_refused_and_kept_as_it_is(tmp_path):
    path = tmp_path / "runs.sqlite"
    path.write_bytes(b"")
    registry = Registry(path)
    for use in (registry.list, lambda: registry.record_submission(make_run()), registry.check_writable):
        with pytest.raises(CesresError, match=r"is empty \(0 bytes\): it was truncated") as info:
            use()
        assert "\n" not in str(info.value)
    assert path.read_bytes() == b""  # nothing written over it: the user decides
    path.rename(tmp_path / "runs.sqlite.truncated")
    registry.record_submission(make_run())
    assert [run.run_id for run in registry.list()] == ["demo-0123456789"]


def test_a_new_registry_is_never_seen_empty(tmp_path):
    path = tmp_path / "runs.sqlite"
    Registry(path).check_writable()
    assert path.stat().st_size > 0
    assert [p.name for p in tmp_path.iterdir() if p.name.startswith(".")] == []  # no partial left


@pytest.mark.parametrize("target", ["/dev/zero", "fifo", "directory"])
def test_a_registry_that_is_not_a_regular_file_is_refused(tmp_path, target):
    path = tmp_path / "runs.sqlite"
    if target == "fifo":
        os.mkfifo(path)
    elif target == "directory":
        path.mkdir()
    else:
        path.symlink_to(target)
    with pytest.raises(CesresError, match="is not a regular file: move it aside"):
        Registry(path).list()


@pytest.mark.parametrize(
    "content",
    [
        json.dumps({**asdict(make_run()), "cluster": None}),
        json.dumps({**asdict(make_run()), "jobs": "13"}),
        json.dumps({**asdict(make_run()), "point_index": True}),
        json.dumps({**asdict(make_run()), "colour": "blue"}),
        json.dumps({**asdict(make_run()), "resources": {"gpus": float("nan")}}),
        '{"cluster": "a", "cluster": "b"}',
        "[1]",
        "{",
    ],
)
def test_a_kept_record_that_is_not_a_run_is_left_alone(tmp_path, content):
    registry = Registry(tmp_path / "runs.sqlite")
    registry.unrecorded_dir.mkdir()
    kept = registry.unrecorded_dir / "sandbox--demo-0123456789.json"
    kept.write_text(content)
    (registry.unrecorded_dir / "zero.json").symlink_to("/dev/zero")
    assert registry.list() == []  # every command goes on
    assert kept.read_text() == content


def test_a_kept_record_is_recorded_by_the_next_command(tmp_path):
    registry = Registry(tmp_path / "runs.sqlite")
    registry.keep_unrecorded(make_run())
    assert [run.run_id for run in registry.list()] == ["demo-0123456789"]
    assert list(registry.unrecorded_dir.iterdir()) == []


@pytest.mark.parametrize(
    ("column", "value", "problem"),
    [("resources", "{", "is not valid JSON"), ("jobs", '["1", 2]', "jobs is not a list"), ("point", "NaN", "is nan")],
)
def test_a_damaged_row_is_one_line_naming_the_run(tmp_path, column, value, problem):
    path = tmp_path / "runs.sqlite"
    registry = Registry(path)
    registry.record_submission(make_run())
    with sqlite3.connect(path) as conn:
        conn.execute(f"UPDATE runs SET {column} = ?", (value,))
    with pytest.raises(CesresError, match=problem) as info:
        registry.list()
    assert f"the run registry {path}, run sandbox:demo-0123456789" in str(info.value)
