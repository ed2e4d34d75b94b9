"""No-op re-run of setup against the sandbox: against issue 9's and issue 19's goals, next to two floors.

The floor is one new ssh command that checks the same state by hand: a login shell with the modules
loaded, the venv's ready stamp, the deployed commit against the remote's, the model cache. Ansible's floor is
a play of one raw task against the sandbox (ansible-playbook's own start, inventory and connection). The
commands run alternately, after one warm-up setup (so all find a ready environment), each from a cold start:
a fresh login for the floor, no master connection left for the others. At 0 ms every ssh goes straight to the
sandbox's gateway, as its ssh config does; at each other --rtt round trip (default 0,25 ms), through
bench/delay_proxy.py (bench/netsim.py).
Prints, per command, the median, issue 9's goal, now/goal, the ratio to the floor and to Ansible's floor, then
issue 19's goals at 0 ms: `ansible-playbook setup.yml` within 1.3x of Ansible's floor, `cesres-ctl setup`
within 3x of the fresh ssh.

With --baseline REF, the same two setups of the project at git REF (exported to a temporary directory, run
with its own cesres_ctl) run in the same rounds, so that a shared, busy machine slows both alike. They set up
their own environment in the sandbox's home (BASELINE_PATHS: code, venv, model cache), warmed up once like
this project's: the venv's ready stamp holds the hash of the requirements policy's source (and the model
cache records its models per venv stamp), so two projects that differ there, sharing one venv, would each find
it not ready and reinstall it at every turn, and the "before" column would time installs, not no-ops. They
stay in the home after the bench, for the next one to find warm.

    .venv/bin/python bench/setup_noop.py [--repeat 5] [--rtt 0,25] [--baseline main]
"""

import argparse
import json
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

sys.path.insert(0, str(Path(__file__).resolve().parent))
from netsim import HOST, Net, network  # noqa: E402

# Issue 9: a no-op setup, in seconds (measured before it: 3.7 s and 4.8 s), at loopback; and its ratio to
# one fresh ssh command: at most 7x at loopback, 5x at 25 ms.
GOALS = {
    "ansible-playbook setup.yml": 1.5,
    "cesres-ctl setup": 2.0,
    "ansible-playbook setup.yml, warm": 1.5,
    "cesres-ctl setup, warm": 2.0,
}
FLOOR_GOALS = {0.0: 7.0, 25.0: 5.0}
FLOOR = "one fresh ssh command"
ANSIBLE_FLOOR = "Ansible's floor (one-task play)"
# Issue 19, at 0 ms (direct): (row, floor, at most this times the floor).
FLOOR_RATIOS = [("ansible-playbook setup.yml", ANSIBLE_FLOOR, 1.3), ("cesres-ctl setup", FLOOR, 3.0)]
ANSIBLE_FLOOR_PLAY = """- name: Ansible's floor
  hosts: sandbox
  gather_facts: false
  tasks:
    - name: Run one command
      ansible.builtin.raw: "true"
      changed_when: false
"""

# The baseline's own paths on the cluster (group_vars/ceci.yml's settings, which every ref since issue 3 reads).
BASELINE_PATHS = {
    "cesres_root": "~/cesres-bench-baseline",
    "cesres_venv": "~/cesres_env-bench-baseline",
    "cesres_hf_home": "~/.cache/huggingface-bench-baseline",
}

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
    parser.add_argument("--rtt", default="0,25", help="round-trip delays to measure at, in ms (0: loopback)")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="setup-noop-") as tmp:
        baseline = export(args.baseline, Path(tmp) / "baseline") if args.baseline else None
        floor_play = Path(tmp) / "floor.yml"
        floor_play.write_text(ANSIBLE_FLOOR_PLAY)
        for rtt in (float(value) for value in args.rtt.split(",")):
            with network(rtt, direct=rtt == 0) as net:
                run_bench(net, rtt, args.repeat, baseline, args.baseline, floor_play)


def export(ref: str, where: Path) -> Path:
    """The project at git `ref`, as files in `where` (no worktree, nothing changed in the repository)."""
    archive = subprocess.run(["git", "archive", ref], cwd=PROJECT, capture_output=True, check=True).stdout
    where.mkdir()
    subprocess.run(["tar", "-x", "-C", str(where)], input=archive, check=True)
    # The checkout's symlink (inventory/group_vars) comes with the archive.
    return where


def run_bench(net: Net, rtt: float, repeat: int, baseline: Path | None, ref: str | None, floor_play: Path) -> None:
    names = [
        "cesres_cluster_modules",
        "cesres_cluster_git_module",
        "cesres_cluster_modules_release",
        "cesres_repo_version",
    ]
    host_vars, _ = Inventory().resolve("sandbox", {}, [*names, "ansible_ssh_common_args", "ansible_host"])
    modules = [*host_vars["cesres_cluster_modules"], host_vars["cesres_cluster_git_module"]]
    bin_dir = Path(sys.executable).parent
    # Through the proxy: the ssh settings only (the sandbox's root names its git repository too, which a
    # no-op setup must find unchanged).
    via_proxy = ["-e", json.dumps({"ansible_ssh_common_args": f"-F {net.ssh_config}"})]
    setup = [str(bin_dir / "cesres-ctl"), "setup", "--cluster", "sandbox", *via_proxy]
    playbook = [str(bin_dir / "ansible-playbook"), "playbooks/setup.yml", "-l", "sandbox", *via_proxy]
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
    floor = ["ssh", "-F", str(net.ssh_config), HOST, remote]
    ansible_floor = [str(bin_dir / "ansible-playbook"), str(floor_play), "-l", "sandbox", *via_proxy]

    # The baseline's own cesres_ctl and project (paths.project_dir: the checkout next to the package).
    # (Its ansible.cfg too: reading the inventory above set ANSIBLE_CONFIG to this project's.)
    env = {key: value for key, value in net.env.items() if key != "CESRES_SANDBOX_ROOT"}
    old_env = None
    if baseline:
        old_env = {**env, "PYTHONPATH": str(baseline), "ANSIBLE_CONFIG": str(baseline / "ansible.cfg")}

    def cold(argv: list[str], cwd: Path = PROJECT, run_env: dict[str, str] | None = None) -> float:
        net.stop_masters()
        return timed(argv, cwd, run_env or env)

    own_paths = ["-e", json.dumps(BASELINE_PATHS)]
    old_setup = [sys.executable, "-m", "cesres_ctl", "setup", "--cluster", "sandbox", *via_proxy, *own_paths]
    old_playbook = [*playbook, *own_paths]

    print("warm-up: one setup run (makes the environment ready)...", flush=True)
    # Forced: the test suite leaves its own commits of cesres-mini in ~/cesres, which setup refuses to overwrite.
    forced = ["-e", json.dumps({"cesres_repo_force": True})]
    timed(setup + forced, env=env)
    if baseline:
        timed(old_setup + forced, baseline, old_env)
    # Cold: no master connection left (a setup of the day); warm: right after another command (its master).
    results: dict[str, list[float]] = {
        "ansible-playbook setup.yml": [],
        "cesres-ctl setup": [],
        "ansible-playbook setup.yml, warm": [],
        "cesres-ctl setup, warm": [],
        FLOOR: [],
        ANSIBLE_FLOOR: [],
    }
    before: dict[str, list[float]] = {"ansible-playbook setup.yml": [], "cesres-ctl setup": []}
    for _ in range(repeat):
        results["cesres-ctl setup"].append(cold(setup))
        results["cesres-ctl setup, warm"].append(timed(setup, env=env))
        results["ansible-playbook setup.yml"].append(cold(playbook))
        results["ansible-playbook setup.yml, warm"].append(timed(playbook, env=env))
        results[FLOOR].append(cold(floor))
        results[ANSIBLE_FLOOR].append(cold(ansible_floor))
        if baseline:
            before["cesres-ctl setup"].append(cold(old_setup, baseline, old_env))
            before["ansible-playbook setup.yml"].append(cold(old_playbook, baseline, old_env))
    base = statistics.median(results[FLOOR])
    ansible_base = statistics.median(results[ANSIBLE_FLOOR])
    where = f"; before: the project at {ref}, in the same rounds" if baseline else ""
    distance = "loopback, direct (no proxy)" if rtt == 0 else f"{rtt:g} ms round trip (delay proxy)"
    floor_goal = FLOOR_GOALS.get(rtt)
    print(f"\nno-op setup, median of {repeat} (sandbox, {distance}{where}; x floor goal: {floor_goal or '-'}):")
    columns = f"{'before':>7}  {'now':>7}  {'goal':>7}  {'now/goal':>8}  {'x floor':>7}  {'x ansible':>9}"
    print(f"  {'':34} {columns}   min-max")
    for name, times in results.items():
        median = statistics.median(times)
        goal = GOALS.get(name) if rtt == 0 else None
        old = before.get(name)
        before_text = f"{statistics.median(old):6.2f}s" if old else f"{'-':>7}"
        goal_text = f"{goal:6.2f}s" if goal else f"{'-':>7}"
        ratio_text = f"{median / goal:8.2f}" if goal else f"{'-':>8}"
        verdict = "" if goal is None else ("  ok" if median <= goal else "  over")
        if name not in (FLOOR, ANSIBLE_FLOOR) and floor_goal is not None:
            verdict += "  x ok" if median / base <= floor_goal else "  x over"
        print(
            f"  {name:34} {before_text}  {median:6.2f}s  {goal_text}  {ratio_text}  x{median / base:6.1f}"
            f"  x{median / ansible_base:8.2f}   {min(times):.2f}-{max(times):.2f}{verdict}"
        )
    if rtt == 0:
        print("issue 19's goals (0 ms, direct):")
        for name, floor_name, most in FLOOR_RATIOS:
            ratio = statistics.median(results[name]) / statistics.median(results[floor_name])
            verdict = "ok" if ratio <= most else "over"
            print(f"  {name} / {floor_name}: x{ratio:.2f} (goal: at most x{most:g}) {verdict}")


if __name__ == "__main__":
    main()
