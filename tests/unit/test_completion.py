"""Shell completion (typer's: `cesres-ctl --install-completion`): command names, options, and the run and
sweep ids of the registry; file names left to the shell. Driven as bash drives it: its completion function,
which runs cesres-ctl with the completion environment variables."""

import subprocess
import sys
from pathlib import Path

import pytest

from cesres_ctl.runs.registry import Registry, Run
from tests.conftest import PROJECT
from tests.unit.test_cli import HEAVY_MODULES

RUNS = ("demo-0123456789", "demo-abcdef0123", "other-5555555555")
SWEEP = "sweep-grid-9999999999"


@pytest.fixture(scope="module")
def home(tmp_path_factory) -> Path:
    """A state directory with three runs and a sweep of two points, and `cesres-ctl` on PATH."""
    root = tmp_path_factory.mktemp("completion")
    registry = Registry(root / "state" / "cesres-ctl" / "runs.sqlite")
    for cluster, run_id in zip(("sandbox", "sandbox", "dragon2"), RUNS, strict=True):
        registry.record_submission(
            Run(cluster, run_id, run_id[:-11], "7", f"/r/{run_id}", "2026-01-01T00:00:00Z", "PENDING")
        )
    for index in range(2):
        point = Run("sandbox", f"grid-{index}00000000{index}", "grid", "8", "/r/g", "2026-01-01T00:00:00Z", "RUNNING")
        point.sweep_id, point.point, point.point_index = SWEEP, {"TRAINER.lr": index}, index
        registry.record_submission(point)
    bin_dir = root / "bin"
    bin_dir.mkdir()
    wrapper = bin_dir / "cesres-ctl"
    wrapper.write_text(f'#!/bin/sh\nexec {sys.executable} -m cesres_ctl "$@"\n')
    wrapper.chmod(0o755)
    return root


def _env(home: Path) -> dict[str, str]:
    return {
        "PATH": f"{home / 'bin'}:/usr/bin:/bin",
        "HOME": str(home),
        "XDG_STATE_HOME": str(home / "state"),
        "PYTHONPATH": str(PROJECT),
    }


def bash_completes(home: Path, *words: str) -> list[str]:
    """COMPREPLY of bash's completion function for `cesres-ctl WORDS...` (the last word is the one completed),
    the function defined by the script that `cesres-ctl --show-completion` prints for bash."""
    script = """
        eval "$(cesres-ctl --show-completion)"
        COMP_WORDS=(cesres-ctl "$@")
        COMP_CWORD=$#
        _cesres_ctl_completion cesres-ctl
        printf '%s\\n' "${COMPREPLY[@]}"
    """
    done = subprocess.run(
        ["bash", "--norc", "-c", script, "bash", *words],
        capture_output=True,
        text=True,
        env={**_env(home), "SHELL": "/bin/bash"},
        cwd=home,
        check=False,
        timeout=60,
    )
    assert done.returncode == 0 and done.stderr == "", done.stderr
    return [line for line in done.stdout.splitlines() if line]


@pytest.mark.parametrize(
    ("words", "expected"),
    [
        (("st",), ["status"]),
        (("status", ""), [SWEEP, *RUNS, *(f"grid-{i}00000000{i}" for i in range(2))]),
        (("logs", "demo-"), ["demo-0123456789", "demo-abcdef0123"]),
        (("status", "-C", "dragon2", ""), ["other-5555555555"]),
        (("compare", "demo-0123456789", "sw"), [SWEEP]),
        (("runs", "--sweep", ""), [SWEEP]),
        (("predict", "oth"), ["other-5555555555"]),
        (("train", "--wa"), ["--wait"]),
        (("sweep", "--wa"), ["--wait"]),
        # Nothing: bash completes file names itself (complete -o default).
        (("train", "con"), []),
        (("predict", "demo-0123456789", "sni"), []),
    ],
)
def test_bash_completes_commands_options_and_the_registrys_run_and_sweep_ids(home, words, expected):
    assert sorted(bash_completes(home, *words)) == sorted(expected)


def test_completing_a_run_id_imports_nothing_heavy(home):
    """A Tab after `status` costs what `status` costs: no Ansible, rich, YAML (test_cli's quick commands)."""
    env = {
        **_env(home),
        "_CESRES_CTL_COMPLETE": "complete_bash",
        "COMP_WORDS": "cesres-ctl status demo",
        "COMP_CWORD": "2",
    }
    done = subprocess.run(
        [sys.executable, "-X", "importtime", "-m", "cesres_ctl"],
        capture_output=True,
        text=True,
        env=env,
        check=False,
        timeout=60,
    )
    assert done.returncode == 0, done.stderr[-500:]
    assert sorted(done.stdout.split()) == ["demo-0123456789", "demo-abcdef0123"]
    imported = {line.split("|")[-1].strip() for line in done.stderr.splitlines() if line.startswith("import time:")}
    heavy = sorted(name for name in imported if name.split(".")[0] in HEAVY_MODULES)
    assert heavy == []


def test_no_registry_completes_nothing_and_creates_nothing(tmp_path):
    env = {
        **_env(tmp_path),
        "_CESRES_CTL_COMPLETE": "complete_bash",
        "COMP_WORDS": "cesres-ctl status ",
        "COMP_CWORD": "2",
    }
    done = subprocess.run(
        [sys.executable, "-m", "cesres_ctl"], capture_output=True, text=True, env=env, check=False, timeout=60
    )
    assert (done.returncode, done.stdout.strip(), done.stderr) == (0, "", "")
    assert not (tmp_path / "state").exists()
    assert list(tmp_path.iterdir()) == []
