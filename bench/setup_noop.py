"""No-op re-run of `cesres-ctl setup` against the sandbox, side by side with the floor.

The floor is one ssh command that checks the same state by hand: a login shell with the modules
loaded, the venv's ready stamp, the deployed commit against the remote's, the model cache. Both run in
the same process, alternately, after one warm-up setup (so both find a ready environment and a warm
ssh ControlMaster). Prints the median times and the ratio.

    /tmp/cvenv/bin/python bench/setup_noop.py [--repeat 5]
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

FLOOR_SCRIPT = """
set -e
module purge; module load "$1"; shift; module load "$@"
test -f "$HOME/cesres_env/.cesres-ready"
head=$(git -C "$HOME/cesres" rev-parse HEAD)
remote=$(git -C "$HOME/cesres" ls-remote origin main | cut -f1)
test "$head" = "$remote"
python3 -c 'import sys; print(sys.version)' >/dev/null
test -d "$HOME/.cache/huggingface" || true
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
    names = ["cesres_cluster_modules", "cesres_cluster_git_module", "cesres_cluster_modules_release"]
    host_vars, _ = Inventory().resolve("sandbox", {}, [*names, "ansible_ssh_common_args", "ansible_host"])
    modules = [*host_vars["cesres_cluster_modules"], host_vars["cesres_cluster_git_module"]]
    ssh_config = host_vars["ansible_ssh_common_args"].split("-F", 1)[1].strip()
    bin_dir = Path(sys.executable).parent
    setup = [str(bin_dir / "cesres-ctl"), "setup", "--cluster", "sandbox"]
    playbook = [str(bin_dir / "ansible-playbook"), "playbooks/setup.yml", "-l", "sandbox"]
    remote = shlex.join(["bash", "-lc", FLOOR_SCRIPT, "floor", host_vars["cesres_cluster_modules_release"], *modules])
    floor = ["ssh", "-F", ssh_config, host_vars["ansible_host"], remote]

    print("warm-up: one setup run (makes the environment ready)...", flush=True)
    timed(setup)
    results: dict[str, list[float]] = {"cesres-ctl setup": [], "ansible-playbook setup.yml": [], "one ssh command": []}
    for _ in range(args.repeat):
        results["cesres-ctl setup"].append(timed(setup))
        results["ansible-playbook setup.yml"].append(timed(playbook))
        results["one ssh command"].append(timed(floor))
    base = statistics.median(results["one ssh command"])
    print(f"\nno-op setup vs the floor, median of {args.repeat} (sandbox, 2-core VM):")
    for name, times in results.items():
        median = statistics.median(times)
        print(f"  {name:28} {median:6.2f} s   x{median / base:5.1f}   (min {min(times):.2f}, max {max(times):.2f})")


if __name__ == "__main__":
    main()
