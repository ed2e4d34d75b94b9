"""``cesres-ctl runs | status | logs | cancel``: the quick commands, one ssh call each (or none).

They import only what asking a job needs (no Ansible, no tables of other commands): their time is
close to one `ssh … squeue` (issue 9).
"""

import subprocess
import sys

import typer

from cesres_ctl import completion, console
from cesres_ctl.app import App
from cesres_ctl.console import echo, print_json
from cesres_ctl.errors import CesresError
from cesres_ctl.runs import jobs, remote
from cesres_ctl.runs.registry import Registry, Run
from cesres_ctl.runs.run_options import Json, RunCluster, RunOrSweepArgument

app = App()


@app.command()
def runs(
    cluster: str | None = RunCluster,
    as_json: bool = Json,
    no_refresh: bool = typer.Option(False, "--no-refresh", help="Show the recorded states without asking."),
    sweep: str | None = typer.Option(
        None,
        "--sweep",
        metavar="SWEEP",
        autocompletion=completion.sweeps,
        help="Only the points of this sweep (its id or a prefix).",
    ),
) -> None:
    """List the recorded runs; the states of unfinished ones are asked of their clusters first."""
    registry = Registry()

    def chosen() -> list[Run]:
        if sweep is None:
            return registry.list(cluster)
        points = registry.sweep(sweep, cluster)
        if not points:
            raise CesresError(f"no sweep {sweep!r} in the registry: see `cesres-ctl runs`")
        return points

    if not no_refresh:
        jobs.refresh_unfinished(registry, chosen())
    recorded = chosen()
    if as_json:
        print_json([run.to_dict() for run in recorded])
        return
    if not recorded:
        console.note("no runs recorded yet: cesres-ctl train CONFIG.yaml")
        return
    from rich.table import Table  # here: the other commands of this module print no table

    table = Table(box=None, pad_edge=False)
    columns = ("RUN", "CLUSTER", "JOB", "STATE", "EXIT", "SUBMITTED", "PARTITION", "GPUS", "TIME")
    for column in (*columns, "POINT") if sweep else columns:
        table.add_column(column, no_wrap=True)
    for run in recorded:
        res = run.resources
        table.add_row(
            run.run_id,
            run.cluster,
            run.job_id,
            run.state,
            run.exit_code,
            run.submitted_at,
            str(res.get("partition", "")),
            str(res.get("gpus", "")),
            str(res.get("time", "")),
            *([jobs.describe_point(run.point)] if sweep else []),
        )
    console.out.print(table)


@app.command()
def status(run_ref: str = RunOrSweepArgument, cluster: str | None = RunCluster, as_json: bool = Json) -> None:
    """State of a run's job (or of every point of a sweep): squeue, then sacct; final only when terminal."""
    registry = Registry()
    points = registry.sweep(run_ref, cluster)
    if not points:
        run = registry.find(run_ref, cluster)
        job = jobs.refresh(run, registry=registry)
        if as_json:
            print_json(_status_dict(run, job))
            return
        echo(f"{run.run_id} (job {run.job_id} on {run.cluster}): {jobs.describe(job)}")
        echo(f"log: {run.cluster}:{run.log_path}")
        return
    # A sweep: one ssh call for all its unfinished points.
    jobs.refresh_unfinished(registry, points)
    points = [registry.get(run.cluster, run.run_id) or run for run in points]
    if as_json:
        print_json([_status_dict(run, jobs.recorded(run)) for run in points])
        return
    for run in points:
        state = jobs.describe(jobs.recorded(run))
        echo(f"{run.run_id} [{jobs.describe_point(run.point)}] (job {run.job_id}): {state}")


def _status_dict(run: Run, job: remote.JobStatus) -> dict[str, object]:
    return {
        "run_id": run.run_id,
        "cluster": run.cluster,
        "job_id": run.job_id,
        "state": job.state,
        "final": job.final,
        "reason": job.reason,
        "elapsed": job.elapsed,
        "time_limit": job.time_limit,
        "exit_code": job.exit_code,
        "source": job.source,
        "controller": job.controller,
        "remote_dir": run.remote_dir,
        "log": run.log_path,
        "sweep_id": run.sweep_id,
        "values": run.point,
    }


@app.command()
def logs(
    run_ref: str = RunOrSweepArgument,
    follow: bool = typer.Option(False, "--follow", "-f", help="Follow the log until the job ends."),
    lines: int | None = typer.Option(None, "--lines", "-n", metavar="N", min=1, help="Only the last N lines."),
    cluster: str | None = RunCluster,
) -> None:
    """Print the job's Slurm log (stdout and stderr of the job), or follow it; of a sweep, each point's."""
    registry = Registry()
    points = registry.sweep(run_ref, cluster)
    if points and follow:
        raise CesresError("--follow takes one run: give the run id of one point of the sweep")
    for run in points or [registry.find(run_ref, cluster)]:
        if points:
            echo(f"== {run.run_id} [{jobs.describe_point(run.point)}]")
            sys.stdout.flush()
        _print_log(run, follow=follow, lines=lines)


def _print_log(run: Run, *, follow: bool, lines: int | None) -> None:
    argv = remote.logs_argv(jobs.settings_of(run), run, follow=follow, lines=lines)
    # The log streams to stdout; ssh's own complaints are kept for a one-line error. Ctrl-C (the way out of
    # --follow too) is interrupted, exit 130, as for every command.
    done = subprocess.run(argv, check=False, stderr=subprocess.PIPE, text=True)
    if done.returncode == 255:
        raise remote.unreachable(jobs.settings_of(run), done.stderr, " to read the log")
    if done.returncode != 0 and not follow:
        raise CesresError(f"no log yet at {run.cluster}:{run.log_path} (is the job still pending?)")


@app.command()
def cancel(run_ref: str = RunOrSweepArgument, cluster: str | None = RunCluster, as_json: bool = Json) -> None:
    """Cancel the run's job (scancel) and record it; of a sweep, every point that has not ended."""
    registry = Registry()
    points = registry.sweep(run_ref, cluster)
    if points:
        live = [run for run in points if not run.final]
        if not live:
            raise CesresError(f"every point of sweep {points[0].sweep_id} already ended: nothing to cancel")
        results = [
            {"run_id": run.run_id, "job_id": run.job_id, "state": state, "cancelled": state == "CANCELLED"}
            for run in live
            for state in [jobs.cancel(run, registry)]
        ]
        if as_json:
            print_json(results)
        else:
            for item in results:
                echo(f"{item['run_id']} (job {item['job_id']}): {item['state']}")
        return
    run = registry.find(run_ref, cluster)
    if run.final:
        raise CesresError(f"{run.run_id} already ended ({run.state}): nothing to cancel")
    state = jobs.cancel(run, registry)
    # The registry may lag behind: a job that ended before scancel reached it was not cancelled.
    cancelled = state == "CANCELLED"
    if as_json:
        print_json({"run_id": run.run_id, "job_id": run.job_id, "state": state, "cancelled": cancelled})
    elif cancelled:
        echo(f"cancelled {run.run_id} (job {run.job_id}): {state}")
    else:
        echo(f"{run.run_id} (job {run.job_id}) had already ended: {state}")
