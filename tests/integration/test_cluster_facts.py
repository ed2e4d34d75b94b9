"""Issue 20: cluster facts read from the cluster. `doctor` reads the sandbox's partitions from its Slurm (sinfo,
scontrol) over the same Ansible connection as every command, shows where they differ from the facts cesres-ctl
enforces (group_vars/cluster_sandbox.yml: no GPU on batch, debug and long, while the sandbox's one node has 2 in
every partition), saves them as the user's with --save-facts, and train follows them. The sandbox again under
another name, defined in the user's configuration only, is reached and checked the same way.

doctor runs read-only commands and train runs --dry-run. One test changes the partitions as an admin would, with
scontrol on the controller at runtime (restored after it, and by any restart of slurmctld from its slurm.conf).
"""

import json
import os
import subprocess
import time
from pathlib import Path

import pytest
import yaml

from cesres_ctl.rules import slurm_seconds
from tests.conftest import MINI, PROJECT, run_cli

pytestmark = pytest.mark.sandbox

# The sandbox's slurm.conf (roles/sandbox_cluster/defaults: sandbox_cluster_partitions), as sinfo states it.
SLURM = {
    "batch": {"max_time": "5-00:00:00", "default": True},
    "gpu": {"max_time": "5-00:00:00", "default": False},
    "debug": {"max_time": "00:30:00", "default": False},
    "long": {"max_time": "21-00:00:00", "default": False},
}


@pytest.fixture
def user_env(tmp_path) -> dict[str, str]:
    env = {
        **os.environ,
        "XDG_CONFIG_HOME": str(tmp_path / "config"),
        "XDG_STATE_HOME": str(tmp_path / "state"),
        "PYTHONPATH": str(PROJECT),
    }
    for name in ("CESRES_CTL_CONFIG", "CESRES_CLUSTER"):
        env.pop(name, None)
    return env


def saved(env: dict[str, str]) -> dict:
    path = Path(env["XDG_CONFIG_HOME"]) / "cesres-ctl" / "config.yml"
    return yaml.safe_load(path.read_text(encoding="utf-8"))


def dry_run_on_batch_with_a_gpu(cluster: str, env: dict[str, str]):
    return run_cli(
        "train", "configs/demo.yaml", "-C", cluster, "-p", "batch", "--gpus", "1", "--dry-run",
        "--", "-d", "cuda", cwd=MINI, env=env, timeout=300,
    )  # fmt: skip


def test_doctor_reads_the_partitions_from_slurm_and_train_follows_them_once_saved(sandbox, user_env):
    done = run_cli("doctor", "-C", "sandbox", "--json", env=user_env, timeout=600)
    report = json.loads(done.stdout)
    assert done.returncode == 0, done.stderr[-2000:]
    partitions = report["partitions"]
    assert set(partitions) == set(SLURM)
    for name, facts in partitions.items():
        assert (facts["state"], facts["gpus"], facts["default"]) == ("up", 2, SLURM[name]["default"]), facts
        assert facts["max_seconds"] == slurm_seconds(SLURM[name]["max_time"])
        assert facts["default_mem"] == "1000M per CPU"  # slurm.conf's DefMemPerCPU
    checks = {check["id"]: check for check in report["checks"]}
    assert checks["partition:gpu"]["status"] == "pass"
    assert checks["partition:batch"]["status"] == "warn"
    assert "differs: 2 GPU(s) per node (cesres-ctl: 0)" in checks["partition:batch"]["detail"]

    # The project's facts: no GPU on batch, which train refuses.
    refused = dry_run_on_batch_with_a_gpu("sandbox", user_env)
    assert refused.returncode == 1 and "partition batch of sandbox has no GPUs" in refused.stderr

    done = run_cli("doctor", "-C", "sandbox", "--save-facts", env=user_env, timeout=600)
    assert done.returncode == 0, done.stderr[-2000:]
    assert "saved the partitions of sandbox as yours" in done.stderr
    assert saved(user_env)["clusters"]["sandbox"]["cesres_cluster_partitions"] == {
        name: {"gpus": 2, **facts} for name, facts in SLURM.items()
    }
    again = run_cli("doctor", "-C", "sandbox", "--json", env=user_env, timeout=600)
    statuses = {check["id"]: check["status"] for check in json.loads(again.stdout)["checks"]}
    assert {statuses[f"partition:{name}"] for name in SLURM} == {"pass"}
    followed = dry_run_on_batch_with_a_gpu("sandbox", user_env)
    assert followed.returncode == 0, followed.stderr[-2000:]
    assert "#SBATCH --partition=batch" in followed.stdout


def test_a_cluster_of_the_users_own_is_checked_and_used_as_a_shipped_one(sandbox, user_env):
    """The sandbox under another name, in the user's configuration only: its ssh alias and options, then the
    partitions that doctor reads from it."""
    common_args = f"-F {sandbox.ssh_config}"
    for key, value in (("ansible_host", sandbox.alias), ("ansible_ssh_common_args", common_args)):
        # After `--`: ssh's options start with a dash.
        done = run_cli("config", "set", "-C", "mysandbox", "--", key, value, env=user_env, timeout=120)
        assert done.returncode == 0, done.stderr
    done = run_cli("doctor", "-C", "mysandbox", "--save-facts", "--json", env=user_env, timeout=600)
    report = json.loads(done.stdout)
    checks = {check["id"]: check["status"] for check in report["checks"]}
    assert checks["reach"] == "pass" and checks["module:releases/2022a"] == "pass", report
    assert set(report["partitions"]) == set(SLURM)
    assert set(saved(user_env)["clusters"]["mysandbox"]["cesres_cluster_partitions"]) == set(SLURM)
    done = run_cli("config", "show", "-C", "mysandbox", "--json", env=user_env, timeout=120)
    settings = json.loads(done.stdout)["clusters"]["mysandbox"]
    assert settings["cesres_cluster_modules_release"]["source"] == "group_vars/ceci.yml"
    followed = dry_run_on_batch_with_a_gpu("mysandbox", user_env)
    assert followed.returncode == 0, followed.stderr[-2000:]
    assert "# dry run: nothing is sent to mysandbox" in followed.stdout


def scontrol(*args: str) -> None:
    subprocess.run(["scontrol", *args], check=True, capture_output=True, text=True, timeout=60)


def test_doctor_shows_a_changed_limit_and_a_new_partition_and_train_follows_them_once_saved(sandbox, user_env):
    """The cluster changes under cesres-ctl: debug's limit goes from 30 min to 1 h, a partition appears."""
    node = subprocess.run(
        ["sinfo", "-h", "-p", "debug", "-o", "%N"], capture_output=True, text=True, check=True, timeout=60
    ).stdout.strip()
    scontrol("update", "PartitionName=debug", "MaxTime=01:00:00")
    scontrol("create", "PartitionName=a100", f"Nodes={node}", "MaxTime=2-00:00:00", "State=UP")
    try:
        report = json.loads(run_cli("doctor", "-C", "sandbox", "--json", env=user_env, timeout=600).stdout)
        checks = {check["id"]: check for check in report["checks"]}
        assert checks["partition:debug"]["status"] == "warn"
        assert "time limit 01:00:00 (cesres-ctl: 00:30:00)" in checks["partition:debug"]["detail"]
        assert checks["partition:a100"]["status"] == "warn"
        assert "not among cesres-ctl's partitions of sandbox" in checks["partition:a100"]["detail"]
        # Each with the model's device that fits it: only the partition's facts can refuse them.
        cases = {
            ("-p", "debug", "--gpus", "0", "--time", "00:45:00", "--", "-d", "cpu"): (
                "time 00:45:00 is over the limit of partition debug on sandbox (00:30:00)"
            ),
            ("-p", "a100", "--", "-d", "cuda"): "unknown partition 'a100' on sandbox",
        }
        for args, error in cases.items():
            refused = run_cli(
                "train", "configs/demo.yaml", "-C", "sandbox", "--dry-run", *args, cwd=MINI, env=user_env, timeout=300
            )
            assert refused.returncode == 1 and error in refused.stderr, refused.stderr
        done = run_cli("doctor", "-C", "sandbox", "--save-facts", env=user_env, timeout=600)
        assert done.returncode == 0, done.stderr[-2000:]
        for args in cases:
            followed = run_cli(
                "train", "configs/demo.yaml", "-C", "sandbox", "--dry-run", *args, cwd=MINI, env=user_env, timeout=300
            )
            assert followed.returncode == 0, followed.stderr[-2000:]
    finally:
        subprocess.run(["scontrol", "delete", "PartitionName=a100"], check=False, timeout=60)
        subprocess.run(["scontrol", "update", "PartitionName=debug", "MaxTime=00:30:00"], check=False, timeout=60)


def slurm_conf_path() -> Path:
    """The slurm.conf that the sandbox's slurmctld reads, as it states it."""
    done = subprocess.run(["scontrol", "show", "config"], capture_output=True, text=True, check=True, timeout=60)
    for line in done.stdout.splitlines():
        key, _, value = line.partition("=")
        if key.strip() == "SLURM_CONF":
            return Path(value.strip())
    raise AssertionError("scontrol show config names no SLURM_CONF")


def reconfigure(expected: set[str]) -> None:
    """slurmctld (and slurmd) read slurm.conf again; waits until sinfo lists `expected` and the node takes jobs."""
    subprocess.run(["scontrol", "reconfigure"], check=True, capture_output=True, text=True, timeout=60)
    deadline = time.monotonic() + 60
    while True:
        done = subprocess.run(["sinfo", "-h", "-o", "%P|%a|%T"], capture_output=True, text=True, timeout=30)
        rows = [line.split("|") for line in done.stdout.splitlines()]
        names = {name.rstrip("*") for name, _, _ in rows}
        usable = all(state.rstrip("*~#!%$@^-") in ("idle", "mixed", "allocated", "completing") for *_, state in rows)
        if done.returncode == 0 and names == expected and usable:
            return
        assert time.monotonic() < deadline, f"after scontrol reconfigure, sinfo says: {done.stdout}{done.stderr}"
        time.sleep(1)


def table_rows(text: str) -> dict[str, tuple[str, str]]:
    """doctor's table as printed: each check's status and detail, its wrapped lines joined."""
    rows: dict[str, tuple[str, str]] = {}
    check = ""
    for line in text.splitlines():
        cells = [cell.strip() for cell in line.split("│")]
        if len(cells) != 5:
            continue
        if cells[1]:
            check = cells[1]
            rows[check] = (cells[2], cells[3])
        elif check:
            rows[check] = (rows[check][0], f"{rows[check][1]} {cells[3]}")
    return rows


@pytest.fixture
def renamed_partition(sandbox):
    """The sandbox's slurm.conf as an admin changes it: long becomes week (7 days), debug's limit goes from 30 to
    20 minutes; read by slurmctld with `scontrol reconfigure`. The file and the partitions are restored after the
    test, and the sandbox is healthy again (the tests after this one use long and debug)."""
    conf = slurm_conf_path()
    original = conf.read_text(encoding="utf-8")
    changed = original.replace("PartitionName=long Nodes=sbxnode01 Default=NO MaxTime=21-00:00:00", (
        "PartitionName=week Nodes=sbxnode01 Default=NO MaxTime=7-00:00:00"
    )).replace("PartitionName=debug Nodes=sbxnode01 Default=NO MaxTime=00:30:00", (
        "PartitionName=debug Nodes=sbxnode01 Default=NO MaxTime=00:20:00"
    ))  # fmt: skip
    assert changed.count("PartitionName=week") == 1 and "MaxTime=00:20:00" in changed, "slurm.conf's lines changed"
    try:
        conf.write_text(changed, encoding="utf-8")
        reconfigure({"batch", "gpu", "debug", "week"})
        yield sandbox
    finally:
        conf.write_text(original, encoding="utf-8")
        reconfigure(set(SLURM))
        status = json.loads(run_cli("sandbox", "status", "--json", timeout=120).stdout)
        assert status["healthy"], status
        limits = {partition["name"]: slurm_seconds(partition["max_time"]) for partition in status["partitions"]}
        assert limits == {name: slurm_seconds(facts["max_time"]) for name, facts in SLURM.items()}, limits


def test_doctor_shows_a_renamed_partition_and_a_changed_limit_of_slurm_conf_and_train_follows_them(
    renamed_partition, user_env
):
    """Issue 20: the cluster's slurm.conf changes (a partition renamed, a limit lowered); doctor shows it against
    what cesres-ctl enforces, --save-facts makes it cesres-ctl's, and train follows: the new name is accepted, the
    old one and a time over the new limit are refused, each in one line."""
    done = run_cli("doctor", "-C", "sandbox", env=user_env, timeout=600)
    assert done.returncode == 1, done.stdout + done.stderr  # long is gone: train would submit there
    rows = table_rows(done.stdout)
    assert rows["partition:long"][0] == "fail" and "not in sinfo" in rows["partition:long"][1]
    assert rows["partition:week"][0] == "warn"
    assert "time limit 7-00:00:00" in rows["partition:week"][1]
    assert "not among cesres-ctl's partitions of sandbox" in rows["partition:week"][1]
    assert rows["partition:debug"][0] == "warn"
    assert "time limit 00:20:00 (cesres-ctl: 00:30:00)" in rows["partition:debug"][1]

    def train(*args: str) -> subprocess.CompletedProcess[str]:
        return run_cli(
            "train", "configs/demo.yaml", "-C", "sandbox", "--dry-run", "--gpus", "0", *args, "--", "-d", "cpu",
            cwd=MINI, env=user_env, timeout=300,
        )  # fmt: skip

    def refused(done: subprocess.CompletedProcess[str], error: str) -> None:
        errors = [line for line in done.stderr.splitlines() if line.startswith("cesres-ctl: error:")]
        assert done.returncode == 1 and len(errors) == 1 and error in errors[0], done.stderr
        assert "Traceback" not in done.stderr and not done.stdout

    # Until the facts are saved, train follows the project's: week is unknown, 25 minutes fit debug.
    refused(train("-p", "week"), "unknown partition 'week' on sandbox")
    assert train("-p", "debug", "--time", "00:25:00").returncode == 0

    done = run_cli("doctor", "-C", "sandbox", "--save-facts", env=user_env, timeout=600)
    assert "saved the partitions of sandbox as yours" in done.stderr, done.stderr
    partitions = saved(user_env)["clusters"]["sandbox"]["cesres_cluster_partitions"]
    assert set(partitions) == {"batch", "gpu", "debug", "week"}
    assert (partitions["debug"]["max_time"], partitions["week"]["max_time"]) == ("00:20:00", "7-00:00:00")

    accepted = train("-p", "week", "--time", "6-00:00:00")
    assert accepted.returncode == 0, accepted.stderr[-2000:]
    assert "#SBATCH --partition=week" in accepted.stdout
    refused(train("-p", "long"), "unknown partition 'long' on sandbox")
    refused(train("-p", "debug", "--time", "00:25:00"), "over the limit of partition debug on sandbox (00:20:00)")
    refused(train("-p", "week", "--time", "8-00:00:00"), "over the limit of partition week on sandbox (7-00:00:00)")
