"""Direct ssh and rsync to a cluster, with its inventory ssh settings, for the quick commands
(status, logs, fetch, cancel): one multiplexed connection (ControlMaster) answers in ~10-20 ms where a
playbook takes a second or more. Host keys are checked as the user's ssh config says (never
disabled); every remote argument is quoted with shlex.quote; nothing runs as root."""

import shlex
import shutil
import subprocess
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from cesres_ctl import paths, rules, sshdiag
from cesres_ctl.errors import CesresError, ExitCode
from cesres_ctl.rules import EXIT_CODE_FILE, TERMINAL_STATES, SshTarget, job_state
from cesres_ctl.runs.registry import Run

_SEP = "@@cesres@@"
# Printed in sacct's section when sacct itself fails: a cluster without accounting, where the exit_code file
# is all there is once squeue forgets a job (elsewhere an empty sacct answer only means slurmdbd lags).
_NO_ACCOUNTING = "@@no-accounting@@"
# Printed in squeue's section when the controller does not answer (squeue -j of one job it no longer lists
# fails too, with "Invalid job id": that is an answer).
_NO_CONTROLLER = "@@no-controller@@"
# Where fetch's rsync keeps the files it is receiving, in the destination.
FETCH_TEMP_DIR = ".cesres-fetching"


def _squeue(jobs: str, fields: str) -> str:
    """A shell command setting $q to squeue's lines for `jobs` (quoted), or to _NO_CONTROLLER."""
    return (
        f"q=$(squeue -h -j {jobs} -o '{fields}' 2>&1) || "
        f'case "$q" in *"Invalid job id"*) q=;; *) q={_NO_CONTROLLER};; esac'
    )


def ssh_base(settings: SshTarget) -> list[str]:
    """`ssh` with the cluster's options, batch mode and the master connection that Ansible's runs of
    cesres-ctl share (paths.control_dir)."""
    return [*settings.argv(control_dir=str(paths.control_dir())), "-o", "BatchMode=yes"]


def ssh_argv(settings: SshTarget, words: Sequence[str] | str) -> list[str]:
    """ssh argv running `words` (each quoted) or a prepared command line (a str) on the cluster."""
    command = words if isinstance(words, str) else " ".join(shlex.quote(word) for word in words)
    return [*ssh_base(settings), "--", settings.host, command]


def execute(
    settings: SshTarget, words: Sequence[str] | str, *, timeout: float = 60
) -> subprocess.CompletedProcess[str]:
    argv = ssh_argv(settings, words)
    try:
        done = subprocess.run(argv, capture_output=True, text=True, timeout=timeout, check=False)
    except subprocess.TimeoutExpired:
        raise CesresError(
            f"ssh to {settings.host} timed out after {timeout:.0f} s", exit_code=ExitCode.UNREACHABLE
        ) from None
    if done.returncode == 255:
        raise unreachable(settings, done.stderr)
    return done


def unreachable(settings: SshTarget, stderr: str, doing: str = "") -> CesresError:
    """The error of an ssh call that could not reach the cluster (ssh's exit status 255); doing: what for."""
    reason = unreachable_reason(settings, stderr)
    return CesresError(f"cannot reach the cluster ({settings.host}){doing}: {reason}", exit_code=ExitCode.UNREACHABLE)


def unreachable_reason(settings: SshTarget, stderr: str) -> str:
    """Why ssh failed, in one line: its own message, or else what a fresh connection says."""
    return sshdiag.explain(stderr, settings.host) or diagnose(settings) or sshdiag.reason(stderr, settings.host)


def diagnose(settings: SshTarget) -> str | None:
    """Why ssh cannot connect to the cluster, from a fresh connection that shows ssh's own messages.

    Through master connections (ControlPersist, also the gateway's own, from the ssh config) ssh does
    not show why a gateway hop failed: a changed host key reads "Connection closed by UNKNOWN port
    65535". A direct connection does, with the gateway reached through an explicit ProxyCommand whose
    ssh has no master either.
    """
    direct = ["-o", "BatchMode=yes", "-o", "ControlMaster=no", "-o", "ControlPath=none", "-o", "ConnectTimeout=20"]
    argv = [*settings.argv(), *direct]
    try:
        resolved = subprocess.run([*argv, "-G", settings.host], capture_output=True, text=True, timeout=30, check=False)
        jump = next((line.split()[1] for line in resolved.stdout.splitlines() if line.startswith("proxyjump ")), "")
        if jump and jump != "none":
            if "," in jump:
                return None  # several hops: not diagnosed
            gateway = f"ssh://{jump}" if ":" in jump else jump
            hop = ["ssh", *settings.options, *direct, "-W", "%h:%p", gateway]
            argv += ["-o", "ProxyCommand=" + " ".join(shlex.quote(word) for word in hop)]
        done = subprocess.run(
            [*argv, "--", settings.host, "true"], capture_output=True, text=True, timeout=60, check=False
        )
    except (OSError, subprocess.TimeoutExpired):
        return None
    return None if done.returncode == 0 else sshdiag.explain(done.stderr, settings.host)


def diagnose_cluster(name: str) -> str | None:
    """diagnose() for an inventory host by name; None when it cannot be said (unknown host, ssh works)."""
    from cesres_ctl.runs import cluster  # the inventory, read only on this failure path

    try:
        return diagnose(cluster.load(name).ssh)
    except CesresError:
        return None


@dataclass(frozen=True)
class JobStatus:
    state: str
    reason: str = ""
    elapsed: str = ""
    time_limit: str = ""
    exit_code: str = ""
    source: str = ""  # squeue, sacct, exit_code file, or registry
    log_tail: tuple[str, ...] = ()
    controller: bool = True  # the controller answered (else the state is accounting's last word, or UNKNOWN)

    @property
    def final(self) -> bool:
        return self.state in TERMINAL_STATES


def status_command(run: Run, tail_lines: int = 0) -> str:
    job = shlex.quote(run.job_id)
    # sacct (~0.1 s, a slurmdbd round trip) only when squeue does not list the job, has it ended, or failed.
    ended = "|".join([*sorted(TERMINAL_STATES), _NO_CONTROLLER])
    parts = [
        _squeue(job, "%T|%r|%M|%l"),
        'printf "%s\\n" "$q"',
        f"echo {_SEP}",
        f'case "${{q%%|*}}" in ""|{ended}) sacct -X -n -P -j {job} -o State,ExitCode,Elapsed,Timelimit,Reason'
        f" 2>/dev/null || echo {_NO_ACCOUNTING};; esac",
        f"echo {_SEP}",
        f"cat {shlex.quote(run.remote_dir + '/' + EXIT_CODE_FILE)} 2>/dev/null",
    ]
    if tail_lines:
        parts += [f"echo {_SEP}", f"tail -n {int(tail_lines)} {shlex.quote(run.log_path)} 2>/dev/null"]
    return "; ".join(parts) + "; true"


def parse_status(output: str) -> JobStatus:
    """Combine squeue (live jobs, pending reason), sacct (after squeue forgot; exit code) and the exit_code
    file the job script writes (clusters without accounting)."""
    sections = [*output.split(_SEP + "\n"), "", "", "", ""]
    squeue, sacct, exit_file, tail = (s.strip("\n") for s in sections[:4])
    tail_lines = tuple(line for line in tail.splitlines() if line.strip())
    file_code = exit_file.strip().splitlines()[0].strip() if exit_file.strip() else ""
    queue_line = None if _NO_CONTROLLER in squeue else next((line for line in squeue.splitlines() if line.strip()), "")
    return _combine(queue_line, _accounting(sacct), file_code, tail_lines)


def _accounting(section: str, job: str | None = None) -> list[str] | None:
    """sacct's fields for a job: the first line of `section`, or with `job` that of the job in a `JobID|…`
    listing; [] when sacct has no record of it, None when there is no accounting to ask."""
    if _NO_ACCOUNTING in section:
        return None
    for line in section.splitlines():
        first, sep, rest = line.partition("|")
        if job is None and line.strip():
            return line.split("|")
        if job is not None and sep and first.strip() == job:
            return rest.split("|")
    return []


def _combine(
    queue_line: str | None, acct: list[str] | None, file_code: str, tail_lines: tuple[str, ...] = ()
) -> JobStatus:
    """One job's status from its squeue line (`state|reason|elapsed|limit`; "" when squeue does not list it,
    None when the controller did not answer), its sacct fields (`State`, `ExitCode`, `Elapsed`, `Timelimit`,
    `Reason`; [] without a record, None without accounting) and its exit_code file ("" without). The state
    is rules.job_state's: the cluster modules decide by the same rule."""
    queue = None if queue_line is None else queue_line.split("|")[0]
    state, source = job_state(queue, None if acct is None else (acct[0] if acct else ""), file_code)
    controller = queue_line is not None
    acct_exit = acct[1] if acct and len(acct) > 1 else ""
    if source == "squeue":
        _, reason, elapsed, limit = [*str(queue_line).split("|"), "", "", ""][:4]
        if state in TERMINAL_STATES and acct:
            # Ended, but still in squeue for MinJobAge: sacct has the exit code.
            exit_code = _final_exit(state, acct_exit, file_code)
            return JobStatus(state, "", elapsed, limit, exit_code, "squeue+sacct", tail_lines, controller)
        reason = "" if reason in ("None", "(null)") else reason
        return JobStatus(state, reason, elapsed, limit, "", "squeue", tail_lines, controller)
    if source == "sacct" and acct:
        elapsed = acct[2] if len(acct) > 2 else ""
        limit = acct[3] if len(acct) > 3 else ""
        reason = acct[4] if len(acct) > 4 and acct[4] not in ("None", "") else ""
        exit_code = _final_exit(state, acct_exit, file_code) if state in TERMINAL_STATES else ""
        return JobStatus(state, reason, elapsed, limit, exit_code, "sacct", tail_lines, controller)
    return JobStatus(state, "", "", "", file_code, source, tail_lines, controller)


def _final_exit(state: str, acct_exit: str, file_code: str) -> str:
    """The exit code of an ended job: the job script's own record of the model's code when it wrote one.

    sacct reports the batch step, which a stopped job (TIMEOUT, CANCELLED) often ends with `0:0`
    although the model was killed; the exit_code file holds what the model returned. Without it, a
    stopped job gets no code rather than a 0 that reads as a success.
    """
    if file_code:
        return file_code
    code = _exit(acct_exit)
    return "" if code == "0" and state != "COMPLETED" else code


def _exit(value: str) -> str:
    """sacct's `code:signal` as the job's exit code (`0:15` -> `0`, `2:0` -> `2`), signal kept if any."""
    code, _, signal = value.partition(":")
    if signal and signal != "0":
        return f"{code}:{signal}"
    return code


def status(settings: SshTarget, run: Run, *, tail_lines: int = 0) -> JobStatus:
    done = run_remote_script(settings, status_command(run, tail_lines))
    return parse_status(done.stdout)


def statuses_command(runs: Sequence[Run]) -> str:
    """One squeue and one sacct for every job of `runs`, then each run's exit_code file."""
    jobs = shlex.quote(",".join(run.job_id for run in runs))
    files = " ".join(shlex.quote(f"{run.remote_dir}/{EXIT_CODE_FILE}") for run in runs)
    return (
        "; ".join(
            [
                _squeue(jobs, "%i|%T|%r|%M|%l"),
                'printf "%s\\n" "$q"',
                f"echo {_SEP}",
                f"{{ sacct -X -n -P -j {jobs} -o JobID,State,ExitCode,Elapsed,Timelimit,Reason 2>/dev/null"
                f" || echo {_NO_ACCOUNTING}; }}",
                f"echo {_SEP}",
                f'for f in {files}; do printf "%s|" "$f"; head -n 1 "$f" 2>/dev/null || echo; done',
            ]
        )
        + "; true"
    )


def parse_statuses(output: str, runs: Sequence[Run]) -> dict[str, JobStatus]:
    """statuses_command's output as each run's JobStatus, keyed by run id (the rules of parse_status)."""
    squeue, sacct, files = [*output.split(_SEP + "\n"), "", ""][:3]
    queued: dict[str, str] = {}
    for line in squeue.splitlines():
        job, sep, rest = line.partition("|")
        if sep:
            queued.setdefault(job.strip(), rest)
    controller = _NO_CONTROLLER not in squeue
    codes = {path: code.strip() for path, sep, code in (line.rpartition("|") for line in files.splitlines()) if sep}
    return {
        run.run_id: _combine(
            queued.get(run.job_id, "") if controller else None,
            _accounting(sacct, run.job_id),
            codes.get(f"{run.remote_dir}/{EXIT_CODE_FILE}", ""),
        )
        for run in runs
    }


def statuses(settings: SshTarget, runs: Sequence[Run]) -> dict[str, JobStatus]:
    """The state of several runs of one cluster in one ssh call."""
    if not runs:
        return {}
    return parse_statuses(run_remote_script(settings, statuses_command(runs)).stdout, runs)


def run_remote_script(settings: SshTarget, script: str, *, timeout: float = 60) -> subprocess.CompletedProcess[str]:
    return execute(settings, script, timeout=timeout)


def cancel(settings: SshTarget, run: Run) -> subprocess.CompletedProcess[str]:
    return execute(settings, ["scancel", run.job_id])


def logs_argv(settings: SshTarget, run: Run, *, follow: bool, lines: int | None = None) -> list[str]:
    log = shlex.quote(run.log_path)
    start = f"-n {int(lines)}" if lines else "-n +1"
    if not follow:
        return ssh_argv(settings, f"cat {log}" if not lines else f"tail {start} {log}")
    job = shlex.quote(run.job_id)
    # Follow until the job leaves squeue (then a last moment for the final lines), so `logs -f` ends
    # with the job; tail -F waits for a log that does not exist yet (pending job).
    script = (
        f"tail {start} -F {log} 2>/dev/null & t=$!; "
        f'while [ -n "$(squeue -h -j {job} -o %T 2>/dev/null)" ]; do sleep 3; done; '
        "sleep 2; kill $t 2>/dev/null; wait $t 2>/dev/null; true"
    )
    return ssh_argv(settings, script)


def rsync_ssh(settings: SshTarget) -> str:
    """The `rsync -e` command: rsync splits it on spaces, honouring quotes."""
    return " ".join(shlex.quote(word) for word in ssh_base(settings))


def fetch(settings: SshTarget, run: Run, dest: Path, *, inputs: Sequence[str] = ()) -> tuple[int, str]:
    """rsync results/, the Slurm logs and the run's files into `dest`; return (files changed, output).
    inputs: names of files of the run's inputs/ to bring too (a prediction's snippets)."""
    # Asked first (one round trip on the master connection), so that nothing is created locally for a
    # cluster that cannot be reached or a run directory that is gone.
    if execute(settings, ["test", "-d", run.remote_dir]).returncode != 0:
        raise CesresError(f"the run directory {settings.host}:{run.remote_dir} of {run.run_id} is gone")
    dest.mkdir(parents=True, exist_ok=True)
    # rsync writes each file under a temporary name, then renames it: in a directory of its own (which a
    # fetch that was killed leaves behind, and the next one clears), never among the results; and a file cut
    # short is never kept under its own name (no --partial).
    staging = dest / FETCH_TEMP_DIR
    shutil.rmtree(staging, ignore_errors=True)
    staging.mkdir()
    target = f"{settings.host}:{run.remote_dir}/"
    argv = [
        "rsync",
        "-rtz",
        f"--temp-dir={staging}",
        "--itemize-changes",
        # The remote path is passed as is, not through the remote shell.
        "--protect-args",
        "-e",
        rsync_ssh(settings),
        f"--include=/{rules.RUN_RESULTS_DIR}/***",
        f"--include=/{rules.LOG_GLOB}",
        f"--include=/{rules.RUN_CONFIG_FILE}",
        f"--include=/{rules.RUN_SUBMITTED_FILE}",
        f"--include=/{rules.JOB_SCRIPT_FILE}",
        f"--include=/{rules.EXIT_CODE_FILE}",
        *([f"--include=/{rules.RUN_INPUTS_DIR}/"] if inputs else []),
        *(f"--include=/{rules.RUN_INPUTS_DIR}/{name}" for name in inputs),
        "--exclude=*",
        "--",
        target,
        f"{dest}/",
    ]
    try:
        done = subprocess.run(argv, capture_output=True, text=True, timeout=3600, check=False)
    except FileNotFoundError:
        raise CesresError("rsync is not installed on this machine (it copies the results)") from None
    finally:
        shutil.rmtree(staging, ignore_errors=True)
    if done.returncode not in (0, 24):  # 24: files vanished during the transfer (a running job)
        reason = unreachable_reason(settings, done.stderr) if done.stderr.strip() else f"rsync exit {done.returncode}"
        raise CesresError(f"fetching {run.run_id} failed: {reason}")
    changed = [line for line in done.stdout.splitlines() if line[:2] in (">f", "cd") and not line.endswith("/")]
    return len(changed), done.stdout
