"""No-op re-run of setup against the sandbox: now against issue 9's goals, next to one fresh ssh command.

The floor is one new ssh command that checks the same state by hand: a login shell with the modules
loaded, the venv's ready stamp, the deployed commit against the remote's, the model cache. The commands
run in the same process, alternately, after one warm-up setup (so all find a ready environment and a warm
ssh ControlMaster). Prints, per command, the median, issue 9's goal, now/goal and the ratio to the floor.

With --baseline REF, the same two setups of the project at git REF (exported to a temporary directory, run
with its own cesres_ctl) run in the same rounds, so that a shared, busy machine slows both alike.

    .venv/bin/python bench/setup_noop.py [--repeat 5] [--baseline main]
"""

import argparse
import os
import shlex
import statistics
import subprocess
import sys
import tempfile
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


def timed(argv: list[str], cwd: Path = PROJECT, env: dict[str, str] | None = None) -> float:
    start = time.perf_counter()
    done = subprocess.run(argv, capture_output=True, text=True, check=False, cwd=cwd, env=env)
    elapsed = time.perf_counter() - start
    if done.returncode != 0:
        sys.exit(f"failed in {cwd}: {shlex.join(argv)}\n{done.stdout[-2000:]}\n{done.stderr[-2000:]}")
    return elapsed


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeat", type=int, default=5)
    parser.add_argument("--baseline", metavar="REF", help="also time the setups of the project at this git ref")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="setup-noop-") as tmp:
        baseline = export(args.baseline, Path(tmp)) if args.baseline else None
        run_bench(args.repeat, baseline, args.baseline)


def export(ref: str, where: Path) -> Path:
    """The project at git `ref`, as files in `where` (no worktree, nothing changed in the repository)."""
    archive = subprocess.run(["git", "archive", ref], cwd=PROJECT, capture_output=True, check=True).stdout
    subprocess.run(["tar", "-x", "-C", str(where)], input=archive, check=True)
    # The checkout's symlink (inventory/group_vars) comes with the archive.
    return where


def run_bench(repeat: int, baseline: Path | None, ref: str | None) -> None:
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

    # The baseline's own cesres_ctl and project (paths.project_dir: the checkout next to the package).
    # (Its ansible.cfg too: reading the inventory above set ANSIBLE_CONFIG to this project's.)
    old_env = None
    if baseline:
        old_env = {**os.environ, "PYTHONPATH": str(baseline), "ANSIBLE_CONFIG": str(baseline / "ansible.cfg")}
    old_setup = [sys.executable, "-m", "cesres_ctl", "setup", "--cluster", "sandbox"]

    print("warm-up: one setup run (makes the environment ready)...", flush=True)
    timed(setup)
    if baseline:
        timed(old_setup, baseline, old_env)
    results: dict[str, list[float]] = {"ansible-playbook setup.yml": [], "cesres-ctl setup": [], FLOOR: []}
    before: dict[str, list[float]] = {"ansible-playbook setup.yml": [], "cesres-ctl setup": []}
    for _ in range(repeat):
        results["cesres-ctl setup"].append(timed(setup))
        results["ansible-playbook setup.yml"].append(timed(playbook))
        results[FLOOR].append(timed(floor))
        if baseline:
            before["cesres-ctl setup"].append(timed(old_setup, baseline, old_env))
            before["ansible-playbook setup.yml"].append(timed(playbook, baseline, old_env))
    base = statistics.median(results[FLOOR])
    where = f"; before: the project at {ref}, in the same rounds" if baseline else ""
    print(f"\nno-op setup, median of {repeat} (sandbox{where}):")
    print(f"  {'':28} {'before':>7}  {'now':>7}  {'goal':>7}  {'now/goal':>8}  {'x floor':>7}   min-max")
    for name, times in results.items():
        median = statistics.median(times)
        goal = GOALS.get(name)
        old = before.get(name)
        before_text = f"{statistics.median(old):6.2f}s" if old else f"{'-':>7}"
        goal_text = f"{goal:6.2f}s" if goal else f"{'-':>7}"
        ratio_text = f"{median / goal:8.2f}" if goal else f"{'-':>8}"
        verdict = "" if goal is None else ("  ok" if median <= goal else "  over")
        print(
            f"  {name:28} {before_text}  {median:6.2f}s  {goal_text}  {ratio_text}  x{median / base:6.1f}"
            f"   {min(times):.2f}-{max(times):.2f}{verdict}"
        )


if __name__ == "__main__":
    main()
