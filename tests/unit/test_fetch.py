"""fetch's rsync never leaves a file it was receiving among the results: it receives into a directory of its
own, which a killed fetch leaves behind and the next fetch clears. Real rsync, with an ssh that runs the
remote side on this machine."""

import os

from cesres_ctl.rules import SshTarget
from cesres_ctl.runs import remote
from cesres_ctl.runs.registry import Run
from tests import fake_slurm

# ssh [options] [--] HOST COMMAND...: the command, run here.
SSH = r"""#!/bin/bash
while [ $# -gt 0 ]; do
    case "$1" in -o|-p|-l|-i|-F) shift 2;; --) shift; break;; -*) shift;; *) break;; esac
done
shift
exec bash -c "$*"
"""


def test_a_fetch_clears_what_a_killed_one_was_receiving(tmp_path, monkeypatch):
    monkeypatch.setenv("PATH", f"{fake_slurm.install(tmp_path / 'bin', ssh=SSH)}{os.pathsep}{os.environ['PATH']}")
    monkeypatch.setenv("XDG_STATE_HOME", str(tmp_path / "state"))
    run_dir = tmp_path / "cluster" / "run"
    (run_dir / "results").mkdir(parents=True)
    (run_dir / "results" / "best.th").write_bytes(b"w" * 100_000)
    (run_dir / "exit_code").write_text("0\n")
    dest = tmp_path / "fetched"
    # What a fetch killed while it received best.th left: rsync's temporary copy, cut short.
    (dest / remote.FETCH_TEMP_DIR).mkdir(parents=True)
    (dest / remote.FETCH_TEMP_DIR / ".best.th.Xa81Zq").write_bytes(b"w" * 1000)
    run = Run("c", "r-0123456789", "r", "7", str(run_dir), "now", "COMPLETED")
    changed, _ = remote.fetch(SshTarget("cluster"), run, dest)
    assert changed == 2
    assert (dest / "results" / "best.th").read_bytes() == b"w" * 100_000
    assert sorted(path.name for path in dest.rglob("*")) == ["best.th", "exit_code", "results"]
