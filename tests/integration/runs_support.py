"""What the run tests share: cesres-ctl with a private registry, run from cesres-mini, and the
runs' own CESReS checkout and venv on the cluster (~/cesres-it, ~/cesres-it-env, set with `train --set`),
so that tests of the provisioning roles that reset ~/cesres cannot disturb them."""

import json
import os
import shlex
import subprocess
import time
from pathlib import Path

from tests.conftest import MINI, run_cli

ROOT = "~/cesres-it"
VENV = "~/cesres-it-env"
SETS = ("--set", f"root={ROOT}", "--set", f"venv={VENV}")
TERMINAL = {"COMPLETED", "FAILED", "CANCELLED", "TIMEOUT", "OUT_OF_MEMORY", "NODE_FAIL"}


class Cli:
    """cesres-ctl with a private state directory, run from cesres-mini (its demo config's data paths)."""

    def __init__(self, state: Path, path_prefix: Path | None = None) -> None:
        self.env = {**os.environ, "XDG_STATE_HOME": str(state), "CESRES_CLUSTER": "sandbox"}
        if path_prefix is not None:
            self.env["PATH"] = f"{path_prefix}:{self.env['PATH']}"

    def __call__(self, *args: str, timeout: float = 600, cwd: Path = MINI) -> subprocess.CompletedProcess[str]:
        return run_cli(*args, timeout=timeout, cwd=cwd, env=self.env)

    def json(self, *args: str, timeout: float = 600) -> dict:
        done = self(*args, "--json", timeout=timeout)
        assert done.returncode == 0, f"{args}: {done.stdout}\n{done.stderr}"
        return json.loads(done.stdout)

    def _train(self, args: tuple[str, ...], model: tuple[str, ...], config: str = "configs/demo.yaml") -> dict:
        done = self("train", config, *SETS, *args, "--json", "--", *model)
        assert done.returncode == 0, f"train {args} {model}: {done.stdout}\n{done.stderr}"
        return json.loads(done.stdout)

    def wait_final(self, run_id: str, timeout: float = 300) -> dict:
        deadline = time.monotonic() + timeout
        while True:
            status = self.json("status", run_id)
            if status["final"]:
                return status
            assert time.monotonic() < deadline, f"{run_id} still {status['state']} after {timeout} s"
            time.sleep(3)


def demo_config_with(directory: Path, old: str, new: str) -> str:
    """The demo config with one edit and absolute data paths, written into `directory`."""
    text = (MINI / "configs" / "demo.yaml").read_text()
    assert old in text
    text = text.replace(old, new).replace('"data/', f'"{MINI}/data/')
    path = directory / "edited.yaml"
    path.write_text(text)
    return str(path)


def one_error_line(done: subprocess.CompletedProcess[str], *, among_others: bool = False) -> str:
    """The one error line a failed command prints on stderr, and no traceback. among_others: other lines
    (a play's progress, setup's summary of the play) may stand beside it."""
    lines = [line for line in done.stderr.splitlines() if line.strip()]
    if among_others:
        lines = [line for line in lines if line.startswith("cesres-ctl: error: ")]
    assert "Traceback" not in done.stderr + done.stdout, done.stderr
    assert len(lines) == 1, done.stderr
    assert lines[0].startswith("cesres-ctl: error: "), lines[0]
    return lines[0]


def cluster_runs(sandbox, name: str) -> list[str]:
    """Run directories of runs named `name` on the cluster (every root the tests use)."""
    return sandbox.ssh(f"ls -d ~/cesres*/runs/{shlex.quote(name)}-* 2>/dev/null; true").stdout.split()
