"""A job that sbatch accepted is recorded, whatever happens after (issue 18): stop signals at every point of
the submission, a state disk that is or becomes full, a kill while a sweep records; and what must be refused
before anything is submitted (--sbatch options that cesres-ctl sets, grids that JSON cannot record or whose
points are the same run). The real CLI, playbook, role and cesres_run module, on a cluster on this machine
(tests/fake_cluster.py)."""

import os
import shutil
import signal
import subprocess
import sys
from pathlib import Path

import pytest

from cesres_ctl.runs.registry import Registry
from tests.fake_cluster import MINI, FakeCluster

TRAIN = ("train", "configs/demo.yaml", "--cluster", "fake", "--new")
MODEL = ("--", "-d", "cpu", "-l", "1")

# Run by sbatch's hook in the background: holds the registry's write lock until the playbook has ended, then,
# while cesres-ctl waits for that lock to record the job, sends it a signal or fills the state disk, and lets
# the lock go.
LOCKER = """
import glob, os, signal, sqlite3, subprocess, sys, time
state, cli, action = sys.argv[1:]
db = sqlite3.connect(f"{state}/cesres-ctl/runs.sqlite", timeout=30, isolation_level=None)
db.execute("BEGIN IMMEDIATE")
deadline = time.time() + 90
while time.time() < deadline:
    logs = sorted(glob.glob(f"{state}/cesres-ctl/logs/*.log"), key=os.path.getmtime)
    if logs and "PLAY RECAP" in open(logs[-1]).read():
        break
    time.sleep(0.1)
time.sleep(2)
if action == "fill":
    subprocess.run(["dd", "if=/dev/zero", f"of={state}/filler", "bs=1M"], capture_output=True)
else:
    os.kill(int(cli), getattr(signal, action))
time.sleep(1)
db.execute("COMMIT")
"""


def _while_recording(action: str, tmp_path: Path) -> str:
    """sbatch's hook that starts LOCKER with `action` (a signal's name, or "fill")."""
    locker = tmp_path / "locker.py"
    locker.write_text(LOCKER)
    return f'setsid {sys.executable} {locker} "$STATE" "$CLI" {action} </dev/null >/dev/null 2>&1 &'


def _second_module_call(code: str) -> str:
    """Hook code run when cesres_run starts the second time: the call that stages and submits (the first
    one found the data missing from the cluster's store)."""
    return 'n=$(( $(cat "$FAKE/module-calls" 2>/dev/null || echo 0) + 1 )); echo $n > "$FAKE/module-calls"\n' + (
        f'if [ "$n" = 2 ]; then {code}; fi'
    )


def _recorded(cluster: FakeCluster) -> list[tuple[str, str]]:
    registry = Registry(cluster.state / "cesres-ctl" / "runs.sqlite")
    return [(run.run_id, run.job_id) for run in registry.list()]


def _line(done: subprocess.CompletedProcess[str]) -> str:
    lines = [line for line in done.stderr.splitlines() if line.startswith("cesres-ctl: error:")]
    assert len(lines) == 1 and "Traceback" not in done.stderr, done.stderr
    return lines[0]


@pytest.mark.parametrize(
    ("point", "name"),
    [
        ("module", "SIGTERM"),  # cesres_run starts the staging and submitting call
        ("sbatch", "SIGINT"),  # sbatch has just accepted the job
        ("sbatch", "SIGHUP"),
        ("recording", "SIGTERM"),  # cesres-ctl waits to write the record
    ],
)
def test_a_stop_signal_after_the_submission_began_records_the_job_and_says_so(tmp_path, point, name):
    kill = f'kill -{name.removeprefix("SIG")} "$CLI"; sleep 2'
    hooks = {
        "module": {"module": _second_module_call(kill)},
        "sbatch": {"sbatch": kill},
        "recording": {"sbatch": _while_recording(name, tmp_path)},
    }[point]
    cluster = FakeCluster(tmp_path, hooks)
    done = cluster.run(*TRAIN, "--name", f"sig-{point}", *MODEL)
    [job] = cluster.jobs()
    job_id = job.split()[0]
    [(run_id, recorded_job)] = _recorded(cluster)
    assert recorded_job == job_id
    assert done.returncode == 130, done.stderr
    assert _line(done) == (
        f"cesres-ctl: error: interrupted ({'Ctrl-C' if name == 'SIGINT' else name}): job {job_id} of run {run_id} "
        f"submitted and recorded; it runs on (`cesres-ctl cancel {run_id}` stops it)"
    )


def test_a_stop_signal_before_the_submission_submits_nothing_and_says_so(tmp_path):
    # While the data file is sent (the run's first cesres_run call found it missing): nothing submitted yet.
    cluster = FakeCluster(tmp_path, {"rsync": 'kill -TERM "$CLI"; sleep 5'})
    done = cluster.run(*TRAIN, "--name", "sig-rsync", *MODEL)
    assert done.returncode == 130, done.stderr
    assert _line(done) == "cesres-ctl: error: interrupted (SIGTERM) before anything was submitted"
    assert cluster.jobs() == []
    assert _recorded(cluster) == []


def test_a_kill_while_a_sweep_records_loses_no_point(tmp_path):
    """kill -9 while the 40 points' records wait for the registry: the next command records all of them."""
    cluster = FakeCluster(tmp_path, {"sbatch": _while_recording("SIGKILL", tmp_path)})
    seeds = "CONFIG.random_seed=" + ",".join(str(n) for n in range(1, 41))
    done = cluster.run("sweep", "configs/demo.yaml", "--cluster", "fake", "--vary", seeds, *MODEL)
    assert done.returncode == -signal.SIGKILL, done.stderr
    [array] = cluster.jobs()
    listed = cluster.run("runs", "--no-refresh", "--json")
    assert listed.returncode == 0, listed.stderr
    assert len(_recorded(cluster)) == 40
    assert {job for _, job in _recorded(cluster)} == {f"{array.split()[0]}_{index}" for index in range(40)}


@pytest.fixture
def small_state_disk(tmp_path):
    """A 24 MB tmpfs as the state directory: a real disk that fills up."""
    if os.geteuid() != 0 or shutil.which("mount") is None:
        pytest.skip("mounting a tmpfs needs root")
    mount = tmp_path / "state"
    mount.mkdir()
    subprocess.run(["mount", "-t", "tmpfs", "-o", "size=24m", "tmpfs", str(mount)], check=True)
    try:
        yield mount
    finally:
        subprocess.run(["umount", "-l", str(mount)], check=False)


def test_a_nearly_full_state_disk_stops_the_submission_before_sbatch(tmp_path, small_state_disk):
    cluster = FakeCluster(tmp_path)
    (cluster.state / "cesres-ctl").mkdir()
    subprocess.run(
        ["dd", "if=/dev/zero", f"of={cluster.state}/filler", "bs=1M", "count=20"], capture_output=True, check=True
    )
    done = cluster.run(*TRAIN, "--name", "full", *MODEL)
    assert done.returncode == 1
    line = _line(done)
    assert f"the state directory {cluster.state}/cesres-ctl has" in line and "nothing was submitted" in line, line
    assert cluster.jobs() == []


def test_a_state_disk_full_when_the_job_is_recorded_keeps_it_and_names_it(tmp_path, small_state_disk):
    cluster = FakeCluster(tmp_path, {"sbatch": _while_recording("fill", tmp_path)})
    done = cluster.run(*TRAIN, "--name", "filled", *MODEL)
    [job] = cluster.jobs()
    job_id = job.split()[0]
    assert done.returncode == 1
    line = _line(done)
    assert f"job {job_id} of run filled-" in line and "was submitted on fake but not recorded" in line, line
    assert f"kept in {cluster.state}/cesres-ctl/unrecorded/fake--filled-" in line, line
    # Once there is room again, the next command records it.
    (cluster.state / "filler").unlink()
    assert cluster.run("runs", "--no-refresh").returncode == 0
    assert [job for _, job in _recorded(cluster)] == [job_id]


def test_a_state_disk_that_fills_up_while_the_job_is_submitted_says_so_in_one_line(tmp_path, small_state_disk):
    # Ansible's events are files of the state directory: once it is full, the outcome cannot come back.
    fill = 'dd if=/dev/zero of="$STATE/filler" bs=1M >/dev/null 2>&1 || true'
    cluster = FakeCluster(tmp_path, {"sbatch": fill})
    done = cluster.run(*TRAIN, "--name", "filling", *MODEL)
    assert len(cluster.jobs()) == 1
    assert done.returncode == 1
    assert _line(done).startswith(
        "cesres-ctl: error: train may have submitted a job on fake, but its outcome did not reach cesres-ctl "
        "(cesres-ctl lost track of the run (No space left on device)): `cesres-ctl train` with the same inputs"
    )


@pytest.mark.parametrize(
    ("option", "message"),
    [
        ("--parti=debug", "--parti (--partition) is set by cesres-ctl: use --partition"),
        ("--outp=/tmp/x.out", "--outp (--output) is set by cesres-ctl"),
        ("--array=0-2", "--array (--array) is set by cesres-ctl: use cesres-ctl sweep"),
        ("--gpus-per-node=1", "--gpus-per-node (--gpus-per-node) is set by cesres-ctl: use --gpus"),
    ],
)
def test_sbatch_options_that_cesres_ctl_sets_are_refused_before_anything_is_sent(tmp_path, option, message):
    cluster = FakeCluster(tmp_path)
    done = cluster.run(*TRAIN, "--name", "sbatch", f"--sbatch={option}", *MODEL)
    assert done.returncode == 1
    assert _line(done).startswith(f"cesres-ctl: error: extra sbatch option {message}")
    assert cluster.jobs() == []
    assert not cluster.runs_dir().exists()


def _config_with_a_null_key(tmp_path: Path) -> Path:
    config = tmp_path / "notes.yaml"
    text = (MINI / "configs" / "demo.yaml").read_text()
    config.write_text(text.replace("TRAINER:\n", "TRAINER:\n    note: null\n", 1))
    return config


@pytest.mark.parametrize(
    ("grid", "message"),
    [
        ("TRAINER.note: [2024-01-01, 2024-02-01]\n", "TRAINER.note[0] (line 1) is a date or time"),
        ("TRAINER.note: [!!binary aGk=, text]\n", "TRAINER.note[0] (line 1) is binary data (!!binary)"),
    ],
)
def test_a_sweep_whose_values_json_cannot_hold_is_refused_before_anything_is_sent(tmp_path, grid, message):
    cluster = FakeCluster(tmp_path)
    vary = tmp_path / "grid.yaml"
    vary.write_text(grid)
    config = _config_with_a_null_key(tmp_path)
    done = cluster.run("sweep", str(config), "--cluster", "fake", "--vary-file", str(vary), *MODEL)
    assert done.returncode == 1
    assert message in _line(done)
    assert cluster.jobs() == []


@pytest.mark.parametrize("values", ["CONFIG.loops=1,1", "TRAINER.learning_rate=1e-3,0.001"])
def test_a_sweep_whose_points_are_the_same_run_is_refused(tmp_path, values):
    cluster = FakeCluster(tmp_path)
    done = cluster.run("sweep", "configs/demo.yaml", "--cluster", "fake", "--vary", values, *MODEL)
    assert done.returncode == 1
    assert _line(done).endswith("are the same run: give each value once")
    assert cluster.jobs() == []


def test_a_run_directory_that_cannot_keep_the_job_id_keeps_the_job_and_warns(tmp_path):
    # sbatch accepted the job, then the run directory cannot take its jobid file: the job runs, so it stays
    # recorded, and its directory stays on the cluster.
    cluster = FakeCluster(tmp_path, {"sbatch": 'mkdir "$PWD/jobid.partial"'})
    done = cluster.run(*TRAIN, "--name", "nojobid", *MODEL)
    assert done.returncode == 0, done.stderr
    [job] = cluster.jobs()
    job_id, run_dir = job.split()[:2]
    assert [job for _, job in _recorded(cluster)] == [job_id]
    assert Path(run_dir).is_dir()
    assert f"warning: job {job_id} was submitted, but {run_dir} could not keep its id (Is a directory)" in done.stderr
