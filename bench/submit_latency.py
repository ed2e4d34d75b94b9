"""Submit latency: `cesres-ctl train` against the sandbox, next to the same job script submitted by hand
(`scp` + `ssh ... sbatch`), in one run; prints both times and their ratio.

    python bench/submit_latency.py [--repeat 3] [--root '~/cesres-it' --venv '~/cesres-it-env']

Each `train` uses --new (a fresh run id, so a real submission every time) with a private registry;
the hand submission copies the job script that train wrote and submits it from the same directory.
Every job is cancelled at the end. Needs the sandbox up and the CESReS checkout + venv on it.
"""

import argparse
import json
import os
import shlex
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

PROJECT = Path(__file__).resolve().parent.parent
DEMO = PROJECT / "sandbox" / "cesres-mini"
SSH_CONFIG = Path(os.environ.get("CESRES_SANDBOX_ROOT", "/var/lib/cesres-sandbox")) / "ssh" / "ssh_config"
HOST = "cesres-sandbox"


def ssh(command: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        ["ssh", "-F", str(SSH_CONFIG), HOST, command], capture_output=True, text=True, check=True, timeout=120
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--root", default="~/cesres-it")
    parser.add_argument("--venv", default="~/cesres-it-env")
    args = parser.parse_args()

    state = tempfile.mkdtemp(prefix="cesres-bench-")
    env = {**os.environ, "XDG_STATE_HOME": state, "CESRES_CLUSTER": "sandbox"}
    cli = [sys.executable, "-m", "cesres_ctl"]
    base = ["train", "configs/demo.yaml", "--set", f"root={args.root}", "--set", f"venv={args.venv}"]
    base += ["--partition", "batch", "--time", "00:02:00", "--name", "bench", "--new", "--json", "--", "-l", "1"]
    train_times, hand_times, jobs = [], [], []
    local_script = Path(state) / "job.sbatch"
    try:
        for _ in range(args.repeat):
            start = time.perf_counter()
            done = subprocess.run(
                [*cli, *base], capture_output=True, text=True, cwd=DEMO, env=env, check=False, timeout=300
            )
            train_times.append(time.perf_counter() - start)
            if done.returncode != 0:
                sys.exit(f"train failed: {done.stderr.strip()}")
            run = json.loads(done.stdout)
            jobs.append(run["job_id"])
            remote_dir = run["remote_dir"]
            local_script.write_text(ssh(f"cat {shlex.quote(remote_dir)}/job.sbatch").stdout)

            # By hand: copy the script, then sbatch it from the run directory.
            start = time.perf_counter()
            subprocess.run(
                ["scp", "-q", "-F", str(SSH_CONFIG), str(local_script), f"{HOST}:{remote_dir}/job-by-hand.sbatch"],
                check=True,
                timeout=120,
            )
            job = ssh(f"cd {shlex.quote(remote_dir)} && sbatch --parsable job-by-hand.sbatch").stdout.strip()
            hand_times.append(time.perf_counter() - start)
            jobs.append(job.split(";")[0])
    finally:
        if jobs:
            subprocess.run(
                ["ssh", "-F", str(SSH_CONFIG), HOST, "scancel " + " ".join(map(shlex.quote, jobs))],
                check=False,
                timeout=120,
            )
    train_median = statistics.median(train_times)
    hand_median = statistics.median(hand_times)
    print(f"cesres-ctl train (playbook):  median {train_median:6.2f} s  runs {[round(t, 2) for t in train_times]}")
    print(f"scp + ssh sbatch (by hand):   median {hand_median:6.2f} s  runs {[round(t, 2) for t in hand_times]}")
    print(f"ratio train / by hand:        {train_median / hand_median:6.1f}x")


if __name__ == "__main__":
    main()
