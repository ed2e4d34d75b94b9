"""``cesres-ctl fetch | plot | compare | prune``: a run's results on the laptop, and space freed on the cluster."""

from pathlib import Path
from typing import Any

import typer
from rich.table import Table

from cesres_ctl import completion, userconfig
from cesres_ctl.app import App
from cesres_ctl.console import echo, out, print_json
from cesres_ctl.options import cluster_option
from cesres_ctl.runs import compare as comparing
from cesres_ctl.runs import jobs
from cesres_ctl.runs import plot as plots
from cesres_ctl.runs import prune as pruning
from cesres_ctl.runs.fetching import DEFAULT_FETCH_ROOT, fetch_run
from cesres_ctl.runs.registry import Registry, Run
from cesres_ctl.runs.run_options import Dest, Json, NoFetch, RunCluster, RunOrSweepArgument

app = App()

OutputOption = typer.Option(
    None,
    "--output",
    "-o",
    metavar="PNG",
    help="PNG file (default: <fetched run>/training_curves.png).",
    autocompletion=completion.files,
)
PruneRunsArgument = typer.Argument(
    None,
    metavar="RUN",
    help="Only these runs (default: every recorded run of the cluster).",
    autocompletion=completion.runs,
)
StateOption = typer.Option(
    [], "--state", metavar="STATE", help="Only runs in this final state (e.g. FAILED); repeatable."
)
ClusterOption = cluster_option()
CompareArgument = typer.Argument(
    ...,
    metavar="RUN|SWEEP",
    help="Runs and sweeps: their ids, prefixes, job ids or names.",
    autocompletion=completion.runs_and_sweeps,
)


@app.command()
def fetch(
    run_ref: str = RunOrSweepArgument, dest: Path | None = Dest, cluster: str | None = RunCluster, as_json: bool = Json
) -> None:
    """Bring results/ and the Slurm log back (rsync: only what changed moves); of every point of a sweep,
    each into its own directory (under --dest if given)."""
    registry = Registry()
    points = registry.sweep(run_ref, cluster)
    if points:
        fetched = [
            {"run_id": run.run_id, "dest": str(fetch_run(run, dest / run.run_id if dest else None, quiet=as_json))}
            for run in points
        ]
        if as_json:
            print_json(fetched)
        else:
            for item in fetched:
                echo(item["dest"])
        return
    run = registry.find(run_ref, cluster)
    target = fetch_run(run, dest, quiet=as_json)
    if as_json:
        print_json({"run_id": run.run_id, "dest": str(target)})
    else:
        echo(str(target))


@app.command()
def plot(
    run_ref: str = RunOrSweepArgument,
    output: Path | None = OutputOption,
    no_fetch: bool = NoFetch,
    cluster: str | None = RunCluster,
    as_json: bool = Json,
) -> None:
    """Write a PNG of the training curves (loss and metrics per epoch); of a sweep, every point's
    validation loss overlaid and the final F-score against each varied value."""
    plots.check_matplotlib()  # before the fetch, as the output
    registry = Registry()
    if output is not None:
        plots.check_output(output)
    points = registry.sweep(run_ref, cluster)
    if points:
        rows = _rows(points, no_fetch=no_fetch)
        data = comparing.sweep_plot_data(rows)
        target = output or DEFAULT_FETCH_ROOT / f"{points[0].sweep_id}.png"
        comparing.plot_sweep(data, target, f"{points[0].sweep_id} ({points[0].cluster}, {len(points)} points)")
    else:
        run = registry.find(run_ref, cluster)
        local = Path(run.local_dir) if no_fetch and run.local_dir else fetch_run(run, None, quiet=as_json)
        target = output or local / "training_curves.png"
        plots.plot(local / "results", target, f"{run.run_id} ({run.cluster}, job {run.job_id})")
        data = {}
    if as_json:
        print_json({"output": str(target), **data})
    else:
        echo(str(target))


@app.command()
def compare(
    refs: list[str] = CompareArgument,
    cluster: str | None = RunCluster,
    sort: str | None = typer.Option(
        None, "--sort", metavar="METRIC", help=f"Best first by: {', '.join(comparing.METRICS)}."
    ),
    no_fetch: bool = NoFetch,
    as_json: bool = Json,
) -> None:
    """Compare runs and sweeps side by side: varied values, best epoch, validation and test metrics."""
    comparing.check_sort(sort)  # before any ssh
    registry = Registry()
    chosen: list[Run] = []
    for ref in refs:
        for run in registry.sweep(ref, cluster) or [registry.find(ref, cluster)]:
            if run not in chosen:
                chosen.append(run)
    jobs.refresh_unfinished(registry, chosen)
    chosen = [registry.get(run.cluster, run.run_id) or run for run in chosen]
    rows = comparing.sort_rows(_rows(chosen, no_fetch=no_fetch, quiet=True), sort)
    if as_json:
        print_json(rows)
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
        local = Path(run.local_dir) if fetched else fetch_run(run, None, quiet=quiet)
        rows.append(comparing.row(run, local / "results"))
    return rows


@app.command()
def prune(
    run_refs: list[str] = PruneRunsArgument,
    cluster: str | None = ClusterOption,
    older_than: float | None = typer.Option(
        None, "--older-than", metavar="DAYS", help="Only runs submitted more than DAYS ago."
    ),
    state: list[str] = StateOption,
    dry_run: bool = typer.Option(False, "--dry-run", "-n", help="Say what would be removed; remove nothing."),
    as_json: bool = Json,
) -> None:
    """Free space on the cluster: finished runs whose results are fetched, runs that never got a job, and
    stored data that no run uses any more. A live run or results not fetched are never removed."""
    name = userconfig.cluster_or_default(cluster)
    report = pruning.prune(
        name, list(run_refs or []), older_than_days=older_than, states=state, dry_run=dry_run, quiet=as_json
    )
    if as_json:
        print_json(report)
        return
    verb = "would remove" if dry_run else "removed"
    for item in report["removed"]:
        line = f"{verb} {item['run_id']} ({item['reason']}, {pruning.human_bytes(item['bytes'])})"
        echo(line)
    for item in report["kept"]:
        echo(f"kept {item['run_id']}: {item['reason']}")
    stored = report["store_removed"]
    stored_bytes = pruning.human_bytes(sum(item["bytes"] for item in stored))
    echo(f"{verb} {len(stored)} stored data file(s) that no run uses ({stored_bytes})")
    freed = pruning.human_bytes(report["freed_bytes"])
    echo(f"{'would free' if dry_run else 'freed'} {freed} on {name}")
    for line in pruning.usage_lines(report["usage"]):
        echo(line)
