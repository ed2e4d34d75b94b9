"""Submit latency and data sent (issue 9): `cesres-ctl train`, `ansible-playbook playbooks/train.yml`, `status`
and `logs` next to the same work done by hand over fresh ssh connections, measured side by side in one run,
at loopback and behind a delay proxy (25 ms round trip by default); prints every row with its goal.

    python bench/submit_latency.py [--repeat 5] [--rtt 0,25] [--root '~/cesres-it' --venv '~/cesres-it-env']

All ssh traffic to the sandbox goes through bench/delay_proxy.py in front of its gateway (0 ms at
loopback), which also counts the ssh connections each command opens. The ssh config used is the
sandbox's without its ControlMaster lines: "by hand" is then a fresh login each time, as with the CÉCI
wizard's config, and cesres-ctl and Ansible use only the master connections they open themselves. Each
timed cesres-ctl or ansible-playbook command starts cold (its master connection is stopped first).
The timed runs' jobs are submitted held (live, PENDING, for `status`); `logs` reads the log of
a warm-up run that ran to its end (reading a log costs the same whatever the job's state; without -f
logs asks no squeue). Every job is cancelled at the end. Needs the sandbox up and the CESReS checkout
+ venv on it (the tests' ~/cesres-it, or setup's).
"""

import argparse
import hashlib
import json
import shlex
import shutil
import statistics
import subprocess
import sys
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from netsim import BIN, DEMO, HOST, PROJECT, SANDBOX_ROOT, Net, network


def timed(net: Net, action: Callable[[], object], *, cold: bool = True) -> tuple[float, int]:
    """Seconds taken by `action` and the ssh connections it opened (through the proxy)."""
    if cold:
        net.stop_masters()
    before = net.proxy.connections
    start = time.perf_counter()
    action()
    return time.perf_counter() - start, net.proxy.connections - before


def wait_for_log(net: Net, log: str, *, timeout: float = 120) -> None:
    deadline = time.monotonic() + timeout
    while net.ssh(f"test -s {shlex.quote(log)} && echo yes || true").stdout.strip() != "yes":
        if time.monotonic() > deadline:
            sys.exit(f"no log at {log} after {timeout:.0f} s: is the sandbox's batch partition up?")
        time.sleep(1)


@dataclass
class Row:
    measure: str
    value: str
    goal: str
    ok: bool | None


def measure(net: Net, args: argparse.Namespace, jobs: list[str]) -> list[Row]:
    sets = ["--set", f"root={args.root}", "--set", f"venv={args.venv}"]
    train_args = ["train", "configs/demo.yaml", *sets, "--partition", "batch", "--time", "00:02:00"]
    train_args += ["--name", "bench", "--new", "--json"]
    model_args = ["--", "-l", "1", "-d", "cpu"]

    def train(*extra: str) -> dict:
        run = json.loads(net.cli(*train_args, *extra, *model_args).stdout)
        jobs.append(run["job_id"])
        return run

    # Warm-up: the demo data is in the cluster's store from now on, and this run's job runs to its end,
    # leaving the log that `logs` reads. The timed runs are held (--hold): live (PENDING) for `status`,
    # as a queued job is, and no job competes with the measurements. A finished run's status would add
    # sacct to squeue; a pending one has no log yet.
    logged = train()
    wait_for_log(net, logged["log"])
    times: dict[str, list[float]] = {}
    conns: dict[str, list[int]] = {}

    def record(name: str, result: tuple[float, int]) -> None:
        times.setdefault(name, []).append(result[0])
        conns.setdefault(name, []).append(result[1])

    last: dict = {}
    for _ in range(args.repeat):
        record("train", timed(net, lambda: last.update(train("--sbatch", "--hold"))))
        record("train_warm", timed(net, lambda: train("--sbatch", "--hold"), cold=False))
        run_dir = last["remote_dir"]
        script = net.state / "job.sbatch"
        script.write_text(net.ssh(f"cat {shlex.quote(run_dir)}/job.sbatch").stdout)

        def by_hand(script: Path = script, run_dir: str = run_dir) -> None:
            subprocess.run(
                ["scp", "-q", "-F", str(net.ssh_config), str(script), f"{HOST}:{run_dir}/job-by-hand.sbatch"],
                check=True,
                timeout=120,
            )
            done = net.ssh(f"cd {shlex.quote(run_dir)} && sbatch --parsable job-by-hand.sbatch")
            jobs.append(done.stdout.strip().split(";")[0])

        record("hand", timed(net, by_hand))
        record("playbook", timed(net, lambda: playbook_train(net, args)))
        record("status", timed(net, lambda: net.cli("status", last["run_id"])))
        record("logs", timed(net, lambda: net.cli("logs", logged["run_id"], "-n", "5")))
        record("squeue", timed(net, lambda: net.ssh(f"squeue -h -j {shlex.quote(last['job_id'])}")))

    med = {name: statistics.median(values) for name, values in times.items()}
    ratio = {name: med[name] / med["hand"] for name in ("train", "playbook")}
    loopback = args.current_rtt == 0
    rows = [
        Row(
            "cesres-ctl train (new run, cold)",
            f"{med['train']:.2f} s",
            "<= 2.0 s" if loopback else "-",
            med["train"] <= 2.0 if loopback else None,
        ),
        Row("  by hand: scp + ssh sbatch, fresh logins", f"{med['hand']:.2f} s", "-", None),
        Row(
            "  train / by hand",
            f"{ratio['train']:.1f}x",
            "<= 5x" if loopback else "<= 1.5x",
            ratio["train"] <= (5 if loopback else 1.5),
        ),
        Row("cesres-ctl train, warm (2nd command)", f"{med['train_warm']:.2f} s", "-", None),
        Row(
            "ansible-playbook playbooks/train.yml",
            f"{med['playbook']:.2f} s",
            "<= 1.8 s" if loopback else "-",
            med["playbook"] <= 1.8 if loopback else None,
        ),
        Row(
            "status of a live run / one ssh squeue",
            f"{med['status'] / med['squeue']:.2f}x",
            "<= 1.3x",
            med["status"] / med["squeue"] <= 1.3,
        ),
        Row(
            "logs -n 5 of a run / one ssh squeue",
            f"{med['logs'] / med['squeue']:.2f}x",
            "<= 1.3x",
            med["logs"] / med["squeue"] <= 1.3,
        ),
    ]
    most = {name: max(conns[name]) for name in ("train", "playbook", "status", "logs")}
    rows.append(
        Row(
            "ssh connections per command (train/playbook/status/logs)",
            "/".join(str(most[n]) for n in most),
            "1",
            all(count == 1 for count in most.values()),
        )
    )
    rows += data_rows(net, sets, jobs)
    for name in ("train", "hand", "playbook", "status", "logs", "squeue"):
        rows.append(Row(f"  runs: {name}", " ".join(f"{t:.2f}" for t in times[name]), "", None))
    return rows


def playbook_train(net: Net, args: argparse.Namespace) -> None:
    """The same inputs as `cesres-ctl train`, through ansible-playbook (extra vars written by the CLI's own code)."""
    code = (
        "import json, sys; from pathlib import Path; from cesres_ctl.runs import submit, spec\n"
        "p = submit.prepare(Path('configs/demo.yaml'), cluster='sandbox', name='bench', overrides={'partition': "
        "'batch', 'time': '00:02:00'}, model_args=['-l', '1', '-d', 'cpu'], new=True, settings=sys.argv[1:])\n"
        "print(json.dumps(p.spec.extravars()))"
    )
    variables = subprocess.run(
        [sys.executable, "-c", code, f"root={args.root}", f"venv={args.venv}"],
        capture_output=True,
        text=True,
        cwd=DEMO,
        env=net.env,
        check=True,
    ).stdout
    extravars = net.state / "extravars.json"
    extravars.write_text(variables)
    done = subprocess.run(
        [
            str(BIN / "ansible-playbook"),
            str(PROJECT / "playbooks" / "train.yml"),
            "-l",
            "sandbox",
            "-e",
            f"@{extravars}",
        ],
        capture_output=True,
        text=True,
        cwd=PROJECT,
        env=net.env,
        check=False,
        timeout=600,
    )
    if done.returncode != 0:
        sys.exit(f"ansible-playbook train.yml failed:\n{done.stdout[-2000:]}")


def data_rows(net: Net, sets: list[str], jobs: list[str]) -> list[Row]:
    """A data set the cluster has never seen, trained twice with different configs: what the second sends
    and stores. Data bytes sent are counted by an rsync wrapper on PATH (the only way data leaves here)."""
    here = net.state / "dataset"
    (here / "data").mkdir(parents=True)
    tag = uuid.uuid4().hex
    for name in ("train.txt", "validation.txt", "test.txt"):
        (here / "data" / name).write_text((DEMO / "data" / name).read_text() + f"\n# {tag}\n")
    shutil.copy(DEMO / "configs" / "demo.yaml", here / "demo.yaml")
    wrapper = net.state / "bin"
    wrapper.mkdir()
    calls = net.state / "rsync-calls"
    (wrapper / "rsync").write_text(
        f'#!/bin/sh\nprintf "%s\\n" "$*" >> {shlex.quote(str(calls))}\nexec {shutil.which("rsync")} "$@"\n'
    )
    (wrapper / "rsync").chmod(0o755)
    env = {**net.env, "PATH": f"{wrapper}:{net.env['PATH']}"}

    def train(loops: str) -> tuple[dict, int]:
        before = len(calls.read_text().splitlines()) if calls.exists() else 0
        train_args = ["train", "demo.yaml", *sets, "--partition", "batch", "--time", "00:02:00", "--json"]
        done = net.cli(*train_args, "--", "-l", loops, "-d", "cpu", cwd=here, env=env)
        run = json.loads(done.stdout)
        jobs.append(run["job_id"])
        sent = calls.read_text().splitlines()[before:] if calls.exists() else []
        # Each call sends one data file to <store>/<its sha256>.incoming.
        sent_bytes = sum(size for line in sent for digest, size in sizes.items() if f"/{digest}.incoming" in line)
        return run, sent_bytes

    sizes = {hashlib.sha256(path.read_bytes()).hexdigest(): path.stat().st_size for path in (here / "data").iterdir()}

    def store_bytes(run: dict) -> int:
        store = f"{shlex.quote(str(Path(run['remote_dir']).parent))}/.store"
        return sum(int(s) for s in net.ssh(f"find {store} -type f -printf '%s\\n'").stdout.split())

    first, first_sent = train("1")
    store_after_first = store_bytes(first)
    second, second_sent = train("2")
    own = net.ssh(f"find {shlex.quote(second['remote_dir'])}/inputs -type f -links 1 -printf '%s\\n'").stdout.split()
    added = store_bytes(second) - store_after_first + sum(int(s) for s in own)
    return [
        Row("data bytes sent by a first run of a new data set", f"{first_sent} B", "-", None),
        Row("data bytes sent by a 2nd run, same data, another config", f"{second_sent} B", "0", second_sent == 0),
        Row("  the same, in the cluster's disk usage", f"{added} B", "0", added == 0),
    ]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeat", type=int, default=5)
    parser.add_argument("--rtt", default="0,25", help="round-trip delays to measure at, in ms (0: loopback)")
    parser.add_argument("--root", default="~/cesres-it")
    parser.add_argument("--venv", default="~/cesres-it-env")
    args = parser.parse_args()
    jobs: list[str] = []
    failed = False
    try:
        for rtt in (float(value) for value in args.rtt.split(",")):
            args.current_rtt = rtt
            with network(rtt) as net:
                rows = measure(net, args, jobs)
            title = "loopback" if rtt == 0 else f"{rtt:g} ms round trip (delay proxy in front of the gateway)"
            print(f"\n== {title}, medians of {args.repeat} ==")
            print(f"{'measure':60} {'now':>14} {'goal':>10}  ok")
            for row in rows:
                mark = "" if row.ok is None else ("yes" if row.ok else "NO")
                failed |= row.ok is False
                print(f"{row.measure:60} {row.value:>14} {row.goal:>10}  {mark}")
    finally:
        if jobs:
            subprocess.run(
                ["ssh", "-F", str(SANDBOX_ROOT / "ssh" / "ssh_config"), HOST, "scancel " + " ".join(jobs)],
                capture_output=True,
                check=False,
                timeout=120,
            )
    sys.exit(1 if failed else 0)


if __name__ == "__main__":
    main()
