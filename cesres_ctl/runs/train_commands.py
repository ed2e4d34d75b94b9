"""``cesres-ctl train | sweep | predict | predictions``: the commands that submit jobs (through the
train playbook), and follow them with --wait."""

import sys
import time
from collections import Counter
from pathlib import Path
from typing import Any

import typer
from rich.live import Live
from rich.table import Table
from rich.text import Text

from cesres_ctl import completion, userconfig
from cesres_ctl.app import App, TrailingCommand
from cesres_ctl.console import echo, err, note, out, print_json
from cesres_ctl.errors import CesresError, ExitCode
from cesres_ctl.options import VerboseOption, cluster_option
from cesres_ctl.runs import cluster as clusters
from cesres_ctl.runs import jobs, remote, run_options
from cesres_ctl.runs import predict as predicting
from cesres_ctl.runs import sweep as sweeping
from cesres_ctl.runs.config import RunConfig
from cesres_ctl.runs.fetching import check_dest, fetch_run
from cesres_ctl.runs.registry import Registry, Run
from cesres_ctl.runs.run_options import Dest, Json, NoFetch, RunArgument, RunCluster, WaitDest
from cesres_ctl.runs.submit import dry_run_text, prepare, submit

ClusterOption = cluster_option()
ConfigArgument = typer.Argument(
    ..., metavar="CONFIG", help="CESReS config file (the model's YAML format).", autocompletion=completion.files
)

app = App()


@app.command(cls=TrailingCommand)
@run_options.resource_options()
def train(
    ctx: typer.Context,
    config: Path = ConfigArgument,
    cluster: str | None = ClusterOption,
    overrides: dict[str, Any] = run_options.RESOURCES,
    settings: list[str] = run_options.Set,
    name: str | None = run_options.Name,
    dry_run: bool = run_options.DryRun,
    wait: bool = run_options.Wait,
    new: bool = typer.Option(False, "--new", help="Submit a new run even if one with the same inputs exists."),
    cancel_on_interrupt: bool = typer.Option(
        False, "--cancel-on-interrupt", help="With --wait: Ctrl-C cancels the job too (default: it runs on)."
    ),
    dest: Path | None = WaitDest,
    as_json: bool = Json,
    verbose: bool = VerboseOption,
) -> None:
    """Submit a CESReS training run; model options go after `--` (e.g. `-- -l 3 -r 7`).

    The same inputs (config, data, code version, resources) give the same run: while its job is
    pending, running or completed, `train` returns it instead of submitting again (unless --new).
    Prints the run id on stdout (RUN=$(cesres-ctl train ...)); what it does, on stderr.
    """
    if wait and dest is not None:
        check_dest(dest)  # before the job is submitted, not when it ends
    prepared = prepare(
        config,
        cluster=userconfig.cluster_or_default(cluster),
        name=name,
        overrides=overrides,
        model_args=list(ctx.args),
        new=new,
        settings=settings,
    )
    _notes(prepared.spec.config)
    if dry_run:
        _dry_run(prepared.cluster.name, dry_run_text(prepared), as_json=as_json)
        return
    outcome = submit(prepared, verbose=verbose, quiet=as_json)
    run = outcome.run
    if not as_json:
        if outcome.submitted:
            again = f" (again; job {outcome.previous_job_id} did not complete)" if outcome.previous_job_id else ""
            note(f"submitted {run.run_id}: job {run.job_id} on {run.cluster}{again}")
        else:
            note(f"existing run {run.run_id}: job {run.job_id} is {run.state} (use --new for another run)")
        note(f"run directory: {run.cluster}:{run.remote_dir}")
        _result(run.run_id)
    if wait:
        try:
            run = _wait(run, quiet=as_json)
        except KeyboardInterrupt:
            raise CesresError(
                _interrupted(run, cancel_job=cancel_on_interrupt), exit_code=ExitCode.INTERRUPTED
            ) from None
        fetched_to = fetch_run(run, dest, quiet=as_json)
        run = Registry().get(run.cluster, run.run_id) or run
        if as_json:
            print_json({**run.to_dict(), "submitted": outcome.submitted, "fetched_to": str(fetched_to)})
        if run.state != "COMPLETED":
            raise typer.Exit(1)
        return
    if as_json:
        print_json({**run.to_dict(), "submitted": outcome.submitted, "previous_job_id": outcome.previous_job_id})


VaryOption = typer.Option(
    [], "--vary", metavar="KEY=VALUES", help="SECTION.key=VALUE,VALUE,…: one axis of the grid; repeatable."
)
SweepDest = typer.Option(
    None,
    "--dest",
    "-d",
    metavar="DIR",
    help="With --wait: fetch each point into DIR/RUN (default: ./cesres-runs/RUN).",
    autocompletion=completion.files,
)
VaryFileOption = typer.Option(
    None,
    "--vary-file",
    metavar="FILE",
    help="YAML: {SECTION.key: [values]}, more axes.",
    autocompletion=completion.files,
)


@app.command(cls=TrailingCommand)
@run_options.resource_options()
def sweep(
    ctx: typer.Context,
    config: Path = ConfigArgument,
    vary: list[str] = VaryOption,
    vary_file: Path | None = VaryFileOption,
    cluster: str | None = ClusterOption,
    overrides: dict[str, Any] = run_options.RESOURCES,
    settings: list[str] = run_options.Set,
    name: str | None = run_options.Name,
    max_parallel: int | None = typer.Option(None, "--max-parallel", metavar="K", help="At most K points at once (%K)."),
    max_points: int = typer.Option(
        sweeping.DEFAULT_MAX_POINTS, "--max-points", metavar="N", help="Refuse larger grids."
    ),
    new: bool = typer.Option(False, "--new", help="Submit a new sweep even if the same one exists."),
    retry_failed: bool = typer.Option(
        False, "--retry-failed", help="Submit again only the points whose job failed or timed out."
    ),
    dry_run: bool = run_options.DryRun,
    wait: bool = typer.Option(
        False, "--wait", "-w", help="Follow the points until they all end, then fetch each one's results."
    ),
    dest: Path | None = SweepDest,
    as_json: bool = Json,
) -> None:
    """Train a grid of variants of a config as one Slurm job array; model options go after `--`.

    Each point is a run of its own (`runs --sweep ID`). The same sweep again is the existing one.
    Prints the sweep id on stdout; its points, on stderr.
    """
    if wait and dest is not None:
        check_dest(dest)
    axes = sweeping.parse_vary(list(vary)) + (sweeping.parse_vary_file(vary_file) if vary_file else [])
    prepared = sweeping.prepare(
        config,
        axes,
        cluster=userconfig.cluster_or_default(cluster),
        name=name,
        overrides=overrides,
        model_args=list(ctx.args),
        new=new,
        settings=list(settings),
        max_parallel=max_parallel,
        max_points=max_points,
        retry_failed=retry_failed,
    )
    _notes(prepared.points[0].spec.config)  # the points differ only in values of keys the config has
    if dry_run:
        _dry_run(prepared.cluster.name, sweeping.preview(prepared), as_json=as_json)
        return
    outcome = sweeping.submit(prepared, quiet=as_json)
    if not as_json:
        verb = (
            f"submitted {len(outcome.new_runs)} point(s) as job {outcome.job_id}"
            if outcome.new_runs
            else "already submitted"
        )
        note(f"sweep {outcome.sweep_id} on {outcome.run.cluster}: {verb}")
        for run in outcome.runs:
            note(f"  {run.run_id} [{jobs.describe_point(run.point)}] job {run.job_id}: {run.state}")
        _result(outcome.sweep_id)
    if not wait:
        if as_json:
            print_json(sweeping.to_json(outcome))
        return
    registry = Registry()
    points = registry.sweep(outcome.sweep_id, outcome.run.cluster)
    try:
        points = _wait_points(points, registry, quiet=as_json)
    except KeyboardInterrupt:
        raise CesresError(
            f"interrupted: the points of {outcome.sweep_id} run on. Follow them with `cesres-ctl status "
            f"{outcome.sweep_id}`, get their results with `cesres-ctl fetch {outcome.sweep_id}`, "
            f"or stop them with `cesres-ctl cancel {outcome.sweep_id}`",
            exit_code=ExitCode.INTERRUPTED,
        ) from None
    fetched = {run.run_id: str(fetch_run(run, dest / run.run_id if dest else None, quiet=as_json)) for run in points}
    if as_json:
        points = [registry.get(run.cluster, run.run_id) or run for run in points]
        records = [{**run.to_dict(), "values": run.point, "fetched_to": fetched[run.run_id]} for run in points]
        print_json({**sweeping.to_json(outcome), "points": records})
    if any(run.state != "COMPLETED" for run in points):
        raise typer.Exit(ExitCode.FAILED)


def _result(line: str) -> None:
    """The one line of a command's result on stdout, at once: a pipe reading it need not wait for --wait."""
    echo(line)
    sys.stdout.flush()


def _dry_run(cluster: str, text: str, *, as_json: bool) -> None:
    if as_json:
        print_json({"dry_run": True, "cluster": cluster, "text": text})
    else:
        sys.stdout.write(text)


def _notes(config: RunConfig) -> None:
    """What the real program would ignore in the config: it trains anyway, the user may have mistyped."""
    for line in config.notes:
        note(f"note: {line}")


def _interrupted(run: Run, *, cancel_job: bool) -> str:
    """Ctrl-C while following a job: the job itself runs on unless asked; say where it is and what next."""
    registry = Registry()
    if cancel_job:
        state = jobs.cancel(run, registry)
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


def _wait(run: Run, *, quiet: bool = False) -> Run:
    """Follow the job with a live line (state, elapsed, last log line) until it reaches a final state."""
    registry = Registry()
    live_view = err.is_terminal and not quiet
    last_line = ""

    def view(job: remote.JobStatus) -> Text:
        tail = job.log_tail[-1] if job.log_tail else ""
        text = Text(f"{run.run_id} job {run.job_id}: {jobs.describe(job)}", style="bold")
        if tail:
            text.append(f"\n  {tail[:150]}", style="dim")
        return text

    job = remote.JobStatus("PENDING")
    delay = 0.0
    with Live(view(job), console=err, transient=False, auto_refresh=False) if live_view else _nothing() as live:
        while True:
            previous = job.state
            job = jobs.refresh(run, tail_lines=1, registry=registry)
            if live is not None:
                live.update(view(job), refresh=True)
            elif not quiet:
                line = f"{run.run_id} job {run.job_id}: {jobs.describe(job)}"
                if line != last_line:
                    note(line)
                    last_line = line
            if job.final:
                break
            delay = next_poll(delay, state_changed=job.state != previous)
            time.sleep(delay)
    return registry.get(run.cluster, run.run_id) or run


def _wait_points(points: list[Run], registry: Registry, *, quiet: bool) -> list[Run]:
    """Follow a sweep's points (one ssh call per poll for them all) until every one has ended: a line on stderr
    each time their states change."""
    label = points[0].sweep_id
    delay, last = 0.0, ""
    while True:
        jobs.refresh_unfinished(registry, points, keep_going=False)
        points = [registry.get(run.cluster, run.run_id) or run for run in points]
        counts = Counter(run.state for run in points)
        line = f"{label}: " + ", ".join(f"{count} {state}" for state, count in sorted(counts.items()))
        if line != last and not quiet:
            note(line)
        if all(run.final for run in points):
            return points
        delay = next_poll(delay, state_changed=line != last)
        last = line
        time.sleep(delay)


class _nothing:  # a stand-in for Live when there is no terminal
    def __enter__(self) -> None:
        return None

    def __exit__(self, *exc: object) -> None:
        return None


# train --wait: the first poll after 1 s (a short job), then 1.5 times longer each time the job's state
# has not changed, up to 30 s; a change of state starts again from 1 s. One ssh call per poll.
FIRST_POLL = 1.0
MAX_POLL = 30.0


def next_poll(delay: float, *, state_changed: bool) -> float:
    """The wait before the next poll, after waiting `delay` (0 before the first)."""
    if state_changed or delay <= 0:
        return FIRST_POLL
    return min(MAX_POLL, delay * 1.5)


SnippetsArgument = typer.Argument(
    ...,
    metavar="SNIPPETS",
    help="File of Python snippets separated by lines $$$ (the run's READER.snippet_splitter).",
    autocompletion=completion.files,
)


@app.command()
@run_options.resource_options("partition", "gpus", "time_limit")
def predict(
    run_ref: str = RunArgument,
    snippets: Path = SnippetsArgument,
    cluster: str | None = typer.Option(
        None,
        "--cluster",
        "-C",
        metavar="CLUSTER",
        help="Cluster to predict on (default: the run's; another one gets the fetched best.th).",
    ),
    overrides: dict[str, Any] = run_options.RESOURCES,
    settings: list[str] = run_options.Set,
    name: str | None = typer.Option(
        None, "--name", "-n", metavar="NAME", help="Name of the prediction run (default: predict-<RUN's name>)."
    ),
    dry_run: bool = run_options.DryRun,
    wait: bool = typer.Option(False, "--wait", "-w", help="Follow the job, then fetch and print the predictions."),
    new: bool = typer.Option(False, "--new", help="Predict again even if the same prediction exists."),
    dest: Path | None = WaitDest,
    as_json: bool = Json,
    verbose: bool = VerboseOption,
) -> None:
    """Classify SNIPPETS with a trained run's best.th and exact config, in a job (a run of its own).

    With --wait: follow it, fetch it and print each snippet's labels. Without: print the prediction's run
    id; `cesres-ctl predictions ID` shows them once its job completed. With --dry-run: ask the cluster
    where the run's weights are, print the job script, submit nothing.
    """
    if wait and dest is not None:
        check_dest(dest)
    registry = Registry()
    model_run = registry.find(run_ref)
    text = predicting.read_snippets_file(snippets)
    target = clusters.load(cluster or model_run.cluster)
    job = jobs.refresh(model_run, registry=registry)
    reason = predicting.no_weights_reason(model_run, job.state)
    if reason:
        raise CesresError(reason)
    source = predicting.locate(
        model_run,
        target.name,
        lambda script: remote.run_remote_script(jobs.settings_of(model_run), script).stdout,
    )
    prepared = predicting.prepare(
        model_run, snippets, text, source, target=target, overrides=overrides, name=name, new=new, settings=settings
    )
    if dry_run:
        _dry_run(prepared.cluster.name, dry_run_text(prepared), as_json=as_json)
        return
    outcome = submit(prepared, verbose=verbose, quiet=as_json, registry=registry, command="predict")
    run = outcome.run
    if not as_json:
        verb = "submitted" if outcome.submitted else "existing"
        note(f"{verb} prediction {run.run_id} with {model_run.run_id}: job {run.job_id} on {run.cluster} ({run.state})")
    if not wait:
        if as_json:
            print_json({**run.to_dict(), "submitted": outcome.submitted, "model_run": model_run.run_id})
        else:
            note(f"show its predictions once it completed: cesres-ctl predictions {run.run_id}")
            _result(run.run_id)
        return
    try:
        run = _wait(run, quiet=as_json)
    except KeyboardInterrupt:
        raise CesresError(_interrupted(run, cancel_job=False), exit_code=ExitCode.INTERRUPTED) from None
    _show_predictions(run, dest, as_json=as_json, extra={"submitted": outcome.submitted, "model_run": model_run.run_id})


@app.command()
def predictions(
    run_ref: str = RunArgument,
    dest: Path | None = Dest,
    no_fetch: bool = NoFetch,
    cluster: str | None = RunCluster,
    as_json: bool = Json,
) -> None:
    """Print the predictions of a prediction run (cesres-ctl predict), fetching them first."""
    registry = Registry()
    run = registry.find(run_ref, cluster)
    job = jobs.refresh(run, registry=registry)
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
            fetch_run(run, dest, quiet=as_json)
        raise CesresError(
            f"prediction {run.run_id} (job {run.job_id}) ended {run.state}"
            + (f", exit code {run.exit_code}" if run.exit_code else "")
            + f": no predictions (see cesres-ctl logs {run.run_id})"
        )
    local = Path(run.local_dir)
    if fetch_first:
        # Its snippets only once its config says it is a prediction (a training run's are its data set).
        predicting.check_prediction(fetch_run(run, dest, quiet=True), run.run_id)
        local = fetch_run(run, dest, quiet=as_json, inputs=(predicting.SNIPPETS_INPUT,))
    model, found = predicting.load_results(local, run.run_id)
    if as_json:
        record = Registry().get(run.cluster, run.run_id) or run
        print_json(
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
