"""A run's job on its cluster: its state asked (one ssh call per run, or per cluster for many), described,
or cancelled, and what the cluster says recorded in the registry."""

import json
import time
from typing import Any

from cesres_ctl.console import note
from cesres_ctl.errors import CesresError
from cesres_ctl.rules import UNKNOWN_STATE, SshTarget
from cesres_ctl.runs import cluster as clusters
from cesres_ctl.runs import remote
from cesres_ctl.runs.registry import Registry, Run


def settings_of(run: Run) -> SshTarget:
    """How ssh reaches the run's cluster."""
    return clusters.load(run.cluster).ssh


def refresh(run: Run, *, tail_lines: int = 0, registry: Registry | None = None) -> remote.JobStatus:
    """Ask the cluster (unless the registry already has a final state) and record what it says."""
    registry = registry or Registry()
    if run.final and not tail_lines:
        return recorded(run)
    job = remote.status(settings_of(run), run, tail_lines=tail_lines)
    if job.state != UNKNOWN_STATE:
        registry.update(
            run.cluster, run.run_id, state=job.state, exit_code=job.exit_code, reason=job.reason, elapsed=job.elapsed
        )
    return job


def recorded(run: Run) -> remote.JobStatus:
    """The run's job as the registry last saw it."""
    return remote.JobStatus(run.state, run.reason, run.elapsed, "", run.exit_code, "registry")


def refresh_unfinished(registry: Registry, runs: list[Run], *, keep_going: bool = True) -> None:
    """One ssh call per cluster for the runs whose last known state is not final; a cluster that
    cannot be asked keeps its runs' last known states, and a note says so (keep_going=False: its error)."""
    unfinished: dict[str, list[Run]] = {}
    for run in runs:
        if not run.final:
            unfinished.setdefault(run.cluster, []).append(run)
    for name, pending in unfinished.items():
        try:
            found = remote.statuses(clusters.load(name).ssh, pending)
        except CesresError as exc:
            if not keep_going:
                raise
            count = len(pending)
            note(f"note: could not ask {name} ({exc}); its {count} unfinished run(s) show their last known state")
            continue
        if not all(job.controller for job in found.values()):
            note(f"note: the Slurm controller of {name} does not answer: its runs show what accounting last saw")
        for run in pending:
            job = found[run.run_id]
            if job.state != UNKNOWN_STATE and (job.state, job.exit_code) != (run.state, run.exit_code):
                registry.update(
                    name, run.run_id, state=job.state, exit_code=job.exit_code, reason=job.reason, elapsed=job.elapsed
                )


def cancel(run: Run, registry: Registry) -> str:
    """scancel the run's job, wait briefly for its final state, record it; return that state."""
    settings = settings_of(run)
    done = remote.cancel(settings, run)
    if done.returncode != 0:
        raise CesresError(f"scancel {run.job_id} failed: {(done.stderr.strip().splitlines() or ['?'])[-1]}")
    job = remote.status(settings, run)
    for _ in range(10):
        if job.final:
            break
        time.sleep(0.5)
        job = remote.status(settings, run)
    state = job.state if job.final else "CANCELLED"
    registry.update(
        run.cluster, run.run_id, state=state, exit_code=job.exit_code, reason=job.reason, elapsed=job.elapsed
    )
    return state


def describe(job: remote.JobStatus) -> str:
    """The job's state in words: reason, elapsed of the time limit, exit code once it means something."""
    text = job.state
    if job.reason:
        text += f" ({job.reason})"
    if job.elapsed:
        text += f", elapsed {job.elapsed}"
        if job.time_limit:
            text += f" of {job.time_limit}"
    # "exit code 0" of a job that did not complete would read as a success.
    if job.final and job.exit_code and (job.exit_code != "0" or job.state == "COMPLETED"):
        text += f", exit code {job.exit_code}"
    if not job.controller:
        # slurmctld is down or unreachable: a RUNNING from accounting may be long over.
        seen = "as accounting last saw it" if job.source == "sacct" else "nothing else says"
        text += f" (the Slurm controller does not answer: {seen})"
    elif job.state == UNKNOWN_STATE:
        text += " (neither squeue nor sacct knows the job)"
    return text


def describe_point(values: dict[str, Any]) -> str:
    """A sweep point's values, as `key=value …` (strings quoted)."""
    return " ".join(f"{key}={json.dumps(value) if isinstance(value, str) else value}" for key, value in values.items())
