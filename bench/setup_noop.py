"""No-op re-run of setup against the sandbox: now against issue 9's goals, next to one fresh ssh command.

The floor is one new ssh command that checks the same state by hand: a login shell with the modules
loaded, the venv's ready stamp, the deployed commit against the remote's, the model cache. The three
commands run in the same process, alternately, after one warm-up setup (so all find a ready environment
and a warm ssh ControlMaster). Prints, per command, the median, issue 9's goal, now/goal and the ratio to
the floor.

    .venv/bin/python bench/setup_noop.py [--repeat 5]
"""

import argparse
import shlex
import statistics
import subprocess
import sys
import time
from pathlib import Path

PROJECT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(PROJECT))

from cesres_ctl.inventory import Inventory  # noqa: E402

# Issue 9: a no-op setup, in seconds (measured before it: 3.7 s and 4.8 s).
GOALS = {"ansible-playbook setup.yml": 1.5, "cesres-ctl setup": 2.0}
FLOOR = "one fresh ssh command"

FLOOR_SCRIPT = """
set -e
version=$1 release=$2
shift 2
module purge; module load "$release"; module load "$@"
test -f "$HOME/cesres_env/.cesres-ready"
head=$(git -C "$HOME/cesres" rev-parse HEAD)
remote=$(git -C "$HOME/cesres" ls-remote origin "$version" | cut -f1)
test "$head" = "$remote"
python3 -c 'import sys; print(sys.version)' >/dev/null
test -f "$HOME/.cache/huggingface/cesres-models.list"
"""


def timed(argv: list[str]) -> float:
    start = time.perf_counter()
    done = subprocess.run(argv, capture_output=True, text=True, check=False, cwd=PROJECT)
    elapsed = time.perf_counter() - start
    if done.returncode != 0:
        sys.exit(f"failed: {shlex.join(argv)}\n{done.stdout[-2000:]}\n{done.stderr[-2000:]}")
    return elapsed


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeat", type=int, default=5)
    args = parser.parse_args()
    names = [
        "cesres_cluster_modules",
        "cesres_cluster_git_module",
        "cesres_cluster_modules_release",
        "cesres_repo_version",
    ]
    host_vars, _ = Inventory().resolve("sandbox", {}, [*names, "ansible_ssh_common_args", "ansible_host"])
    modules = [*host_vars["cesres_cluster_modules"], host_vars["cesres_cluster_git_module"]]
    ssh_config = host_vars["ansible_ssh_common_args"].split("-F", 1)[1].strip()
    bin_dir = Path(sys.executable).parent
    setup = [str(bin_dir / "cesres-ctl"), "setup", "--cluster", "sandbox"]
    playbook = [str(bin_dir / "ansible-playbook"), "playbooks/setup.yml", "-l", "sandbox"]
    remote = shlex.join(
        [
            "bash",
            "-lc",
            FLOOR_SCRIPT,
            "floor",
            str(host_vars["cesres_repo_version"]),
            host_vars["cesres_cluster_modules_release"],
            *modules,
        ]
    )
    floor = ["ssh", "-F", ssh_config, host_vars["ansible_host"], remote]

    print("warm-up: one setup run (makes the environment ready)...", flush=True)
    timed(setup)
    results: dict[str, list[float]] = {"ansible-playbook setup.yml": [], "cesres-ctl setup": [], FLOOR: []}
    for _ in range(args.repeat):
        results["cesres-ctl setup"].append(timed(setup))
        results["ansible-playbook setup.yml"].append(timed(playbook))
        results[FLOOR].append(timed(floor))
    base = statistics.median(results[FLOOR])
    print(f"\nno-op setup, median of {args.repeat} (sandbox):")
    print(f"  {'':28} {'now':>7}  {'goal':>7}  {'now/goal':>8}  {'x floor':>7}   min-max")
    for name, times in results.items():
        median = statistics.median(times)
        goal = GOALS.get(name)
        goal_text = f"{goal:6.2f}s" if goal else f"{'-':>7}"
        ratio_text = f"{median / goal:8.2f}" if goal else f"{'-':>8}"
        verdict = "" if goal is None else ("  ok" if median <= goal else "  over")
        print(
            f"  {name:28} {median:6.2f}s  {goal_text}  {ratio_text}  x{median / base:6.1f}"
            f"   {min(times):.2f}-{max(times):.2f}{verdict}"
        )


if __name__ == "__main__":
    main()
