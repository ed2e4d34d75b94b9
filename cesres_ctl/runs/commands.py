"""``cesres-ctl train | runs | status | logs | fetch | cancel | plot`` (registered on the main app)."""

import json
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import typer
from rich.live import Live
from rich.table import Table
from rich.text import Text

from cesres_ctl import paths, userconfig
from cesres_ctl.console import err, out
from cesres_ctl.errors import CesresError
from cesres_ctl.options import cluster_option
from cesres_ctl.rules import SshTarget
from cesres_ctl.runs import cluster as clusters
from cesres_ctl.runs import compare as comparing
from cesres_ctl.runs import plot as plots
from cesres_ctl.runs import predict as predicting
from cesres_ctl.runs import prune as pruning
from cesres_ctl.runs import remote, run_options
from cesres_ctl.runs import sweep as sweeping
from cesres_ctl.runs.refresh import refresh_unfinished
from cesres_ctl.runs.registry import Registry, Run
from cesres_ctl.runs.submit import dry_run_text, prepare, submit

DEFAULT_FETCH_ROOT = Path("cesres-runs")
EXIT_INTERRUPTED = 130
ClusterOption = cluster_option()
# A run id names its cluster: here --cluster only narrows the search, and has no default.
RunClusterOption = typer.Option(None, "--cluster", "-C", help="Only look for the run on this cluster.")
JsonOption = typer.Option(False, "--json", help="Print JSON (fields: docs/runs.md).")
ConfigArgument = typer.Argument(..., help="CESReS config file (the model's YAML format).")
DestOption = typer.Option(None, "--dest", "-d", help="Local directory (default: ./cesres-runs/RUN).")
WaitDestOption = typer.Option(
    None, "--dest", "-d", help="With --wait: where to fetch the results (default: ./cesres-runs/RUN)."
)
OutputOption = typer.Option(None, "--output", "-o", help="PNG file (default: <fetched run>/training_curves.png).")
PruneRunsArgument = typer.Argument(None, help="Only these runs (default: every recorded run of the cluster).")
StateOption = typer.Option([], "--state", help="Only runs in this final state (e.g. FAILED); repeatable.")
CompareArgument = typer.Argument(..., help="Runs and sweeps: their ids, prefixes, job ids or names.")
RunArgument = typer.Argument(..., help="Run id, a unique prefix of it, its job id, or its name (latest run).")


def register(app: typer.Typer) -> None:
    """Add the run commands to the main app."""
    app.command(context_settings={"allow_extra_args": True, "ignore_unknown_options": True})(train)
    app.command(context_settings={"allow_extra_args": True, "ignore_unknown_options": True})(sweep)
    for command in (runs, status, logs, fetch, cancel, plot, compare, prune, predict, predictions):
        app.command()(command)


def _print_json(data: Any) -> None:
    sys.stdout.write(json.dumps(data, indent=2, sort_keys=True) + "\n")


def train(
    ctx: typer.Context,
    config: Path = ConfigArgument,
    cluster: str | None = ClusterOption,
    partition: str | None = run_options.Partition,
    gpus: int | None = run_options.Gpus,
    time_limit: str | None = run_options.Time,
    cpus: int | None = run_options.Cpus,
    mem: str | None = run_options.Mem,
    account: str | None = run_options.Account,
    qos: str | None = run_options.Qos,
    mail: str | None = run_options.Mail,
    sbatch: list[str] = run_options.Sbatch,
    settings: list[str] = run_options.Set,
    name: str | None = run_options.Name,
    dry_run: bool = typer.Option(False, "--dry-run", help="Print the job script and the copies; submit nothing."),
    wait: bool = typer.Option(False, "--wait", "-w", help="Follow the job until it ends, then fetch its results."),
    new: bool = typer.Option(False, "--new", help="Submit a new run even if one with the same inputs exists."),
    cancel_on_interrupt: bool = typer.Option(
        False, "--cancel-on-interrupt", help="With --wait: Ctrl-C cancels the job too (default: it runs on)."
    ),
    dest: Path | None = WaitDestOption,
    as_json: bool = JsonOption,
    verbose: bool = typer.Option(False, "--verbose", "-v", help="Show Ansible's own output."),
) -> None:
    """Submit a CESReS training run; model options go after `--` (e.g. `-- -l 3 -r 7`).

    The same inputs (config, data, code version, resources) give the same run: while its job is
    pending, running or completed, `train` returns it instead of submitting again (unless --new).
    """
    if wait and dest is not None:
        _check_fetch_dir(dest)  # before the job is submitted, not when it ends
    overrides = run_options.resources(partition, gpus, time_limit, cpus, mem, account, qos, mail, sbatch)
    prepared = prepare(
        config,
        cluster=userconfig.cluster_or_default(cluster),
        name=name,
        overrides=overrides,
        model_args=list(ctx.args),
        new=new,
        settings=settings,
    )
    if dry_run:
        text = dry_run_text(prepared)
        if as_json:
            _print_json({"dry_run": True, "cluster": prepared.cluster.name, "text": text})
        else:
            sys.stdout.write(text)
        return
    outcome = submit(prepared, verbose=verbose, quiet=as_json)
    run = outcome.run
    if not as_json:
        if outcome.submitted:
            again = f" (again; job {outcome.previous_job_id} did not complete)" if outcome.previous_job_id else ""
            out.print(f"submitted {run.run_id}: job {run.job_id} on {run.cluster}{again}", markup=False, soft_wrap=True)
        else:
            out.print(
                f"existing run {run.run_id}: job {run.job_id} is {run.state} (use --new for another run)", markup=False
            )
        out.print(f"run directory: {run.cluster}:{run.remote_dir}", markup=False, soft_wrap=True)
    if wait:
        try:
            run = _wait(run, quiet=as_json)
        except KeyboardInterrupt:
            raise CesresError(_interrupted(run, cancel_job=cancel_on_interrupt), exit_code=EXIT_INTERRUPTED) from None
        fetched_to = _fetch(run, dest, quiet=as_json)
        run = Registry().get(run.cluster, run.run_id) or run
        if as_json:
            _print_json({**run.to_dict(), "submitted": outcome.submitted, "fetched_to": str(fetched_to)})
        if run.state != "COMPLETED":
            raise typer.Exit(1)
        return
    if as_json:
        _print_json({**run.to_dict(), "submitted": outcome.submitted, "previous_job_id": outcome.previous_job_id})


VaryOption = typer.Option([], "--vary", help="SECTION.key=VALUE,VALUE,…: one axis of the grid; repeatable.")
VaryFileOption = typer.Option(None, "--vary-file", help="YAML: {SECTION.key: [values]}, more axes.")


def sweep(
    ctx: typer.Context,
    config: Path = ConfigArgument,
    vary: list[str] = VaryOption,
    vary_file: Path | None = VaryFileOption,
    cluster: str | None = ClusterOption,
    partition: str | None = run_options.Partition,
    gpus: int | None = run_options.Gpus,
    time_limit: str | None = run_options.Time,
    cpus: int | None = run_options.Cpus,
    mem: str | None = run_options.Mem,
    account: str | None = run_options.Account,
    qos: str | None = run_options.Qos,
    mail: str | None = run_options.Mail,
    sbatch: list[str] = run_options.Sbatch,
    settings: list[str] = run_options.Set,
    name: str | None = run_options.Name,
    max_parallel: int | None = typer.Option(None, "--max-parallel", help="At most K points at once (%K)."),
    max_points: int = typer.Option(sweeping.DEFAULT_MAX_POINTS, "--max-points", help="Refuse larger grids."),
    new: bool = typer.Option(False, "--new", help="Submit a new sweep even if the same one exists."),
    retry_failed: bool = typer.Option(
        False, "--retry-failed", help="Submit again only the points whose job failed or timed out."
    ),
    as_json: bool = JsonOption,
) -> None:
    """Train a grid of variants of a config as one Slurm job array; model options go after `--`.

    Each point is a run of its own (`runs --sweep ID`). The same sweep again is the existing one.
    """
    axes = sweeping.parse_vary(list(vary)) + (sweeping.parse_vary_file(vary_file) if vary_file else [])
    prepared = sweeping.prepare(
        config,
        axes,
        cluster=userconfig.cluster_or_default(cluster),
        name=name,
        overrides=run_options.resources(partition, gpus, time_limit, cpus, mem, account, qos, mail, sbatch),
        model_args=list(ctx.args),
        new=new,
        settings=list(settings),
        max_parallel=max_parallel,
        max_points=max_points,
        retry_failed=retry_failed,
    )
    report = sweeping.submit(prepared, quiet=as_json)
    if as_json:
        _print_json(report)
        return
    submitted = set(report["submitted"])
    verb = f"submitted {len(submitted)} point(s) as job {report['array_job_id']}" if submitted else "already submitted"
    out.print(f"sweep {report['sweep_id']} on {report['cluster']}: {verb}", markup=False, soft_wrap=True)
    for point in report["points"]:
        line = f"  {point['run_id']} [{sweeping.describe(point['values'])}] job {point['job_id']}: {point['state']}"
        out.print(line, markup=False, soft_wrap=True)


def _interrupted(run: Run, *, cancel_job: bool) -> str:
    """Ctrl-C while following a job: the job itself runs on unless asked; say where it is and what next."""
    registry = Registry()
    if cancel_job:
        state = _cancel(run, registry)
        if state == "CANCELLED":
            return f"interrupted: cancelled {run.run_id} (job {run.job_id})"
        return f"interrupted: {run.run_id} (job {run.job_id}) had already ended: {state}"
    latest = registry.get(run.cluster, run.run_id) or run
    if latest.final:
        return (
            f"interrupted: job {run.job_id} ended {latest.state}; get its results with `cesres-ctl fetch {run.run_id}`"
        )
    return (
        f"interrupted: job {run.job_id} is still {latest.state} on {run.cluster}. "
        f"Follow it with `cesres-ctl logs -f {run.run_id}`, get its results with `cesres-ctl fetch {run.run_id}`, "
        f"or stop it with `cesres-ctl cancel {run.run_id}`"
    )


def runs(
    cluster: str | None = RunClusterOption,
    as_json: bool = JsonOption,
    no_refresh: bool = typer.Option(False, "--no-refresh", help="Show the recorded states without asking."),
    sweep: str | None = typer.Option(None, "--sweep", help="Only the points of this sweep (its id or a prefix)."),
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
        refresh_unfinished(registry, chosen())
    recorded = chosen()
    if as_json:
        _print_json([run.to_dict() for run in recorded])
        return
    if not recorded:
        out.print("no runs recorded yet: cesres-ctl train CONFIG.yaml", markup=False, soft_wrap=True)
        return
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
            *([sweeping.describe(run.point)] if sweep else []),
        )
    out.print(table)


def _settings(run: Run) -> SshTarget:
    return clusters.load(run.cluster).ssh


def refresh(run: Run, *, tail_lines: int = 0, registry: Registry | None = None) -> remote.JobStatus:
    """Ask the cluster (unless the registry already has a final state) and record what it says."""
    registry = registry or Registry()
    if run.final and not tail_lines:
        return remote.JobStatus(run.state, run.reason, run.elapsed, "", run.exit_code, "registry")
    job = remote.status(_settings(run), run, tail_lines=tail_lines)
    if job.state != "UNKNOWN":
        registry.update(
            run.cluster, run.run_id, state=job.state, exit_code=job.exit_code, reason=job.reason, elapsed=job.elapsed
        )
    return job


def status(run_ref: str = RunArgument, cluster: str | None = RunClusterOption, as_json: bool = JsonOption) -> None:
    """State of a run's job (or of every point of a sweep): squeue, then sacct; final only when terminal."""
    registry = Registry()
    points = registry.sweep(run_ref, cluster)
    if not points:
        run = registry.find(run_ref, cluster)
        job = refresh(run, registry=registry)
        if as_json:
            _print_json(_status_dict(run, job))
            return
        out.print(f"{run.run_id} (job {run.job_id} on {run.cluster}): {_describe(job)}", markup=False, soft_wrap=True)
        out.print(f"log: {run.cluster}:{run.log_path}", markup=False, soft_wrap=True)
        return
    # A sweep: one ssh call for all its unfinished points.
    refresh_unfinished(registry, points)
    points = [registry.get(run.cluster, run.run_id) or run for run in points]
    if as_json:
        _print_json([_status_dict(run, _recorded(run)) for run in points])
        return
    for run in points:
        line = f"{run.run_id} [{sweeping.describe(run.point)}] (job {run.job_id}): {_describe(_recorded(run))}"
        out.print(line, markup=False, soft_wrap=True)


def _recorded(run: Run) -> remote.JobStatus:
    return remote.JobStatus(run.state, run.reason, run.elapsed, "", run.exit_code, "registry")


def _status_dict(run: Run, job: remote.JobStatus) -> dict[str, Any]:
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
        "remote_dir": run.remote_dir,
        "log": run.log_path,
        "sweep_id": run.sweep_id,
        "values": run.point,
    }


def _describe(job: remote.JobStatus) -> str:
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
    if job.state == "UNKNOWN":
        text += " (neither squeue nor sacct knows the job)"
    return text


def logs(
    run_ref: str = RunArgument,
    follow: bool = typer.Option(False, "--follow", "-f", help="Follow the log until the job ends."),
    lines: int | None = typer.Option(None, "--lines", "-n", help="Only the last N lines."),
    cluster: str | None = RunClusterOption,
) -> None:
    """Print the job's Slurm log (stdout and stderr of the job), or follow it; of a sweep, each point's."""
    registry = Registry()
    points = registry.sweep(run_ref, cluster)
    if points and follow:
        raise CesresError("--follow takes one run: give the run id of one point of the sweep")
    for run in points or [registry.find(run_ref, cluster)]:
        if points:
            out.print(f"== {run.run_id} [{sweeping.describe(run.point)}]", markup=False, soft_wrap=True)
            sys.stdout.flush()
        _print_log(run, follow=follow, lines=lines)


def _print_log(run: Run, *, follow: bool, lines: int | None) -> None:
    argv = remote.logs_argv(_settings(run), run, follow=follow, lines=lines)
    try:
        # The log streams to stdout; ssh's own complaints are kept for a one-line error.
        done = subprocess.run(argv, check=False, stderr=subprocess.PIPE, text=True)
    except KeyboardInterrupt:
        return
    if done.returncode == 255:
        reason = remote.unreachable_reason(_settings(run), done.stderr)
        raise CesresError(f"cannot reach {run.cluster} to read its log: {reason}")
    if done.returncode != 0 and not follow:
        raise CesresError(f"no log yet at {run.cluster}:{run.log_path} (is the job still pending?)")


def _default_dest(run: Run) -> Path:
    return DEFAULT_FETCH_ROOT / run.run_id


def _check_fetch_dir(dest: Path) -> Path:
    """A fetch destination, checked before any ssh: a directory, or one that can be created."""
    return paths.check_dir(dest.resolve(), "the fetch destination", "give --dest a directory you can write")


def _fetch(run: Run, dest: Path | None, *, quiet: bool = False, inputs: tuple[str, ...] = ()) -> Path:
    target = _check_fetch_dir(dest or (Path(run.local_dir) if run.local_dir else _default_dest(run)))
    changed, _ = remote.fetch(_settings(run), run, target, inputs=inputs)
    Registry().update(run.cluster, run.run_id, local_dir=str(target))
    if not quiet:
        err.print(f"fetched {run.run_id} into {target} ({changed} file(s) changed)", markup=False, soft_wrap=True)
    return target


def fetch(
    run_ref: str = RunArgument,
    dest: Path | None = DestOption,
    cluster: str | None = RunClusterOption,
    as_json: bool = JsonOption,
) -> None:
    """Bring results/ and the Slurm log back (rsync: only what changed moves); of every point of a sweep,
    each into its own directory (under --dest if given)."""
    registry = Registry()
    points = registry.sweep(run_ref, cluster)
    if points:
        fetched = [
            {"run_id": run.run_id, "dest": str(_fetch(run, dest / run.run_id if dest else None, quiet=as_json))}
            for run in points
        ]
        if as_json:
            _print_json(fetched)
        else:
            for item in fetched:
                out.print(item["dest"], markup=False, soft_wrap=True)
        return
    run = registry.find(run_ref, cluster)
    target = _fetch(run, dest, quiet=as_json)
    if as_json:
        _print_json({"run_id": run.run_id, "dest": str(target)})
    else:
        out.print(str(target), markup=False, soft_wrap=True)


def cancel(run_ref: str = RunArgument, cluster: str | None = RunClusterOption, as_json: bool = JsonOption) -> None:
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
            for state in [_cancel(run, registry)]
        ]
        if as_json:
            _print_json(results)
        else:
            for item in results:
                out.print(f"{item['run_id']} (job {item['job_id']}): {item['state']}", markup=False, soft_wrap=True)
        return
    run = registry.find(run_ref, cluster)
    if run.final:
        raise CesresError(f"{run.run_id} already ended ({run.state}): nothing to cancel")
    state = _cancel(run, registry)
    # The registry may lag behind: a job that ended before scancel reached it was not cancelled.
    cancelled = state == "CANCELLED"
    if as_json:
        _print_json({"run_id": run.run_id, "job_id": run.job_id, "state": state, "cancelled": cancelled})
    elif cancelled:
        out.print(f"cancelled {run.run_id} (job {run.job_id}): {state}", markup=False, soft_wrap=True)
    else:
        out.print(f"{run.run_id} (job {run.job_id}) had already ended: {state}", markup=False, soft_wrap=True)


def _cancel(run: Run, registry: Registry) -> str:
    """scancel the run's job, wait briefly for its final state, record it; return that state."""
    settings = _settings(run)
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


def plot(
    run_ref: str = RunArgument,
    output: Path | None = OutputOption,
    no_fetch: bool = typer.Option(False, "--no-fetch", help="Use the results fetched earlier as they are."),
    cluster: str | None = RunClusterOption,
    as_json: bool = JsonOption,
) -> None:
    """Write a PNG of the training curves (loss and metrics per epoch); of a sweep, every point's
    validation loss overlaid and the final F-score against each varied value."""
    registry = Registry()
    if output is not None:
        plots.check_output(output)  # before the fetch
    points = registry.sweep(run_ref, cluster)
    if points:
        rows = _rows(points, no_fetch=no_fetch)
        data = comparing.sweep_plot_data(rows)
        target = output or DEFAULT_FETCH_ROOT / f"{points[0].sweep_id}.png"
        comparing.plot_sweep(data, target, f"{points[0].sweep_id} ({points[0].cluster}, {len(points)} points)")
    else:
        run = registry.find(run_ref, cluster)
        local = Path(run.local_dir) if no_fetch and run.local_dir else _fetch(run, None, quiet=as_json)
        target = output or local / "training_curves.png"
        plots.plot(local / "results", target, f"{run.run_id} ({run.cluster}, job {run.job_id})")
        data = {}
    if as_json:
        _print_json({"output": str(target), **data})
    else:
        out.print(str(target), markup=False, soft_wrap=True)


def compare(
    refs: list[str] = CompareArgument,
    cluster: str | None = RunClusterOption,
    sort: str | None = typer.Option(None, "--sort", help=f"Best first by: {', '.join(comparing.METRICS)}."),
    no_fetch: bool = typer.Option(False, "--no-fetch", help="Use the results fetched earlier as they are."),
    as_json: bool = JsonOption,
) -> None:
    """Compare runs and sweeps side by side: varied values, best epoch, validation and test metrics."""
    comparing.check_sort(sort)  # before any ssh
    registry = Registry()
    chosen: list[Run] = []
    for ref in refs:
        for run in registry.sweep(ref, cluster) or [registry.find(ref, cluster)]:
            if run not in chosen:
                chosen.append(run)
    refresh_unfinished(registry, chosen)
    chosen = [registry.get(run.cluster, run.run_id) or run for run in chosen]
    rows = comparing.sort_rows(_rows(chosen, no_fetch=no_fetch, quiet=True), sort)
    if as_json:
        _print_json(rows)
        return
    table = Table(box=None, pad_edge=False)
    for column in ("RUN", "VALUES", "STATE", "EPOCHS", "BEST", "VAL LOSS", "VAL F1", "TEST LOSS", "TEST F1", "ELAPSED"):
        table.add_column(column, no_wrap=True)
    for item in rows:
        table.add_row(
            item["run_id"],
            comparing.label(item["values"]),
            item["state"],
            str(item["epochs"]),
            _cell(item["best_epoch"]),
            _cell(item["best_validation_loss"]),
            _cell(item["best_validation_fscore"]),
            _cell(item.get("test_loss")),
            _cell(item.get("test_fscore")),
            item["elapsed"],
        )
    out.print(table)


def _cell(value: object) -> str:
    if isinstance(value, float):
        return f"{value:.4f}"
    return "" if value is None else str(value)


def _rows(runs_: list[Run], *, no_fetch: bool, quiet: bool = True) -> list[dict[str, Any]]:
    """compare's rows, fetching each run's results unless they were fetched after it ended (or --no-fetch)."""
    rows = []
    for run in runs_:
        fetched = run.local_dir and (no_fetch or pruning.fetched_after_the_end(run))
        local = Path(run.local_dir) if fetched else _fetch(run, None, quiet=quiet)
        rows.append(comparing.row(run, local / "results"))
    return rows


# train --wait: the first poll after 1 s (a short job), then 1.5 times longer each time the job's state
# has not changed, up to 30 s; a change of state starts again from 1 s. One ssh call per poll.
FIRST_POLL = 1.0
MAX_POLL = 30.0


def next_poll(delay: float, *, state_changed: bool) -> float:
    """The wait before the next poll, after waiting `delay` (0 before the first)."""
    if state_changed or delay <= 0:
        return FIRST_POLL
    return min(MAX_POLL, delay * 1.5)


def prune(
    run_refs: list[str] = PruneRunsArgument,
    cluster: str | None = ClusterOption,
    older_than: float | None = typer.Option(None, "--older-than", help="Only runs submitted more than DAYS ago."),
    state: list[str] = StateOption,
    dry_run: bool = typer.Option(False, "--dry-run", "-n", help="Say what would be removed; remove nothing."),
    as_json: bool = JsonOption,
) -> None:
    """Free space on the cluster: finished runs whose results are fetched, runs that never got a job, and
    stored data that no run uses any more. A live run or results not fetched are never removed."""
    name = userconfig.cluster_or_default(cluster)
    report = pruning.prune(
        name, list(run_refs or []), older_than_days=older_than, states=state, dry_run=dry_run, quiet=as_json
    )
    if as_json:
        _print_json(report)
        return
    verb = "would remove" if dry_run else "removed"
    for item in report["removed"]:
        line = f"{verb} {item['run_id']} ({item['reason']}, {pruning.human_bytes(item['bytes'])})"
        out.print(line, markup=False, soft_wrap=True)
    for item in report["kept"]:
        out.print(f"kept {item['run_id']}: {item['reason']}", markup=False, soft_wrap=True)
    stored = report["store_removed"]
    stored_bytes = pruning.human_bytes(sum(item["bytes"] for item in stored))
    out.print(f"{verb} {len(stored)} stored data file(s) that no run uses ({stored_bytes})", markup=False)
    freed = pruning.human_bytes(report["freed_bytes"])
    out.print(f"{'would free' if dry_run else 'freed'} {freed} on {name}", markup=False, soft_wrap=True)
    for line in pruning.usage_lines(report["usage"]):
        out.print(line, markup=False, soft_wrap=True)


def _wait(run: Run, *, quiet: bool = False) -> Run:
    """Follow the job with a live line (state, elapsed, last log line) until it reaches a final state."""
    registry = Registry()
    live_view = err.is_terminal and not quiet
    last_line = ""

    def view(job: remote.JobStatus) -> Text:
        tail = job.log_tail[-1] if job.log_tail else ""
        text = Text(f"{run.run_id} job {run.job_id}: {_describe(job)}", style="bold")
        if tail:
            text.append(f"\n  {tail[:150]}", style="dim")
        return text

    job = remote.JobStatus("PENDING")
    delay = 0.0
    with Live(view(job), console=err, transient=False, auto_refresh=False) if live_view else _nothing() as live:
        while True:
            previous = job.state
            job = refresh(run, tail_lines=1, registry=registry)
            if live is not None:
                live.update(view(job), refresh=True)
            elif not quiet:
                line = f"{run.run_id} job {run.job_id}: {_describe(job)}"
                if line != last_line:
                    err.print(line, markup=False, soft_wrap=True)
                    last_line = line
            if job.final:
                break
            delay = next_poll(delay, state_changed=job.state != previous)
            time.sleep(delay)
    return registry.get(run.cluster, run.run_id) or run


class _nothing:  # a stand-in for Live when there is no terminal
    def __enter__(self) -> None:
        return None

    def __exit__(self, *exc: object) -> None:
        return None


SnippetsArgument = typer.Argument(
    ..., help="File of Python snippets separated by lines $$$ (the run's READER.snippet_splitter)."
)


def predict(
    run_ref: str = RunArgument,
    snippets: Path = SnippetsArgument,
    cluster: str | None = typer.Option(
        None,
        "--cluster",
        "-C",
        help="Cluster to predict on (default: the run's; another one gets the fetched best.th).",
    ),
    partition: str | None = run_options.Partition,
    gpus: int | None = run_options.Gpus,
    time_limit: str | None = run_options.Time,
    settings: list[str] = run_options.Set,
    name: str | None = typer.Option(
        None, "--name", "-n", help="Name of the prediction run (default: predict-<RUN's name>)."
    ),
    wait: bool = typer.Option(False, "--wait", "-w", help="Follow the job, then fetch and print the predictions."),
    new: bool = typer.Option(False, "--new", help="Predict again even if the same prediction exists."),
    dest: Path | None = WaitDestOption,
    as_json: bool = JsonOption,
    verbose: bool = typer.Option(False, "--verbose", "-v", help="Show Ansible's own output."),
) -> None:
    """Classify SNIPPETS with a trained run's best.th and exact config, in a job (a run of its own).

    With --wait: follow it, fetch it and print each snippet's labels. Without: print the prediction's run
    id; `cesres-ctl predictions ID` shows them once its job completed.
    """
    if wait and dest is not None:
        _check_fetch_dir(dest)
    registry = Registry()
    model_run = registry.find(run_ref)
    text = predicting.read_snippets_file(snippets)
    target = clusters.load(cluster or model_run.cluster)
    job = refresh(model_run, registry=registry)
    reason = predicting.no_weights_reason(model_run, job.state)
    if reason:
        raise CesresError(reason)
    source = predicting.locate(
        model_run,
        target.name,
        lambda script: remote.run_remote_script(_settings(model_run), script).stdout,
    )
    overrides = {"partition": partition, "gpus": gpus, "time": time_limit}
    prepared = predicting.prepare(
        model_run, snippets, text, source, target=target, overrides=overrides, name=name, new=new, settings=settings
    )
    outcome = submit(prepared, verbose=verbose, quiet=as_json, registry=registry, command="predict")
    run = outcome.run
    if not as_json:
        verb = "submitted" if outcome.submitted else "existing"
        out.print(
            f"{verb} prediction {run.run_id} with {model_run.run_id}: job {run.job_id} on {run.cluster} ({run.state})",
            markup=False,
            soft_wrap=True,
        )
    if not wait:
        if as_json:
            _print_json({**run.to_dict(), "submitted": outcome.submitted, "model_run": model_run.run_id})
        else:
            out.print(f"show its predictions once it completed: cesres-ctl predictions {run.run_id}", markup=False)
        return
    try:
        run = _wait(run, quiet=as_json)
    except KeyboardInterrupt:
        raise CesresError(_interrupted(run, cancel_job=False), exit_code=EXIT_INTERRUPTED) from None
    _show_predictions(run, dest, as_json=as_json, extra={"submitted": outcome.submitted, "model_run": model_run.run_id})


def predictions(
    run_ref: str = RunArgument,
    dest: Path | None = DestOption,
    no_fetch: bool = typer.Option(False, "--no-fetch", help="Use the results fetched earlier as they are."),
    cluster: str | None = RunClusterOption,
    as_json: bool = JsonOption,
) -> None:
    """Print the predictions of a prediction run (cesres-ctl predict), fetching them first."""
    registry = Registry()
    run = registry.find(run_ref, cluster)
    job = refresh(run, registry=registry)
    run = registry.get(run.cluster, run.run_id) or run
    if not job.final:
        raise CesresError(f"{run.run_id} is still {job.state}: no predictions yet (cesres-ctl status {run.run_id})")
    _show_predictions(run, dest, as_json=as_json, fetch_first=not (no_fetch and run.local_dir))


def _show_predictions(
    run: Run, dest: Path | None, *, as_json: bool, extra: dict[str, Any] | None = None, fetch_first: bool = True
) -> None:
    """Fetch a prediction run (its results and its snippets), then print its predictions; exit 1 without."""
    if run.state != "COMPLETED":
        if fetch_first:
            _fetch(run, dest, quiet=as_json)
        raise CesresError(
            f"prediction {run.run_id} (job {run.job_id}) ended {run.state}"
            + (f", exit code {run.exit_code}" if run.exit_code else "")
            + f": no predictions (see cesres-ctl logs {run.run_id})"
        )
    local = Path(run.local_dir)
    if fetch_first:
        # Its snippets only once its config says it is a prediction (a training run's are its data set).
        predicting.check_prediction(_fetch(run, dest, quiet=True), run.run_id)
        local = _fetch(run, dest, quiet=as_json, inputs=(predicting.SNIPPETS_INPUT,))
    model, found = predicting.load_results(local, run.run_id)
    if as_json:
        record = Registry().get(run.cluster, run.run_id) or run
        _print_json(
            {
                "run_id": record.run_id,
                "cluster": record.cluster,
                "job_id": record.job_id,
                "state": record.state,
                "fetched_to": str(local),
                "labels": list(model.labels),
                "multi_label": model.multi_label,
                "predictions": [item.to_dict() for item in found],
                **(extra or {}),
            }
        )
        return
    table = Table(box=None, pad_edge=False)
    table.add_column("#", justify="right", no_wrap=True)
    table.add_column("SNIPPET", overflow="ellipsis", no_wrap=True, max_width=60)
    table.add_column("LABELS")
    for item in found:
        first = next((line.strip() for line in item.snippet.splitlines() if line.strip()), "")
        labels = ", ".join(f"{label} ({item.probabilities[label]:.2f})" for label in item.labels) or "-"
        table.add_row(str(item.index), Text(first), Text(labels))
    out.print(table)
