"""The states of unfinished runs, asked of their clusters: one ssh call per cluster (`runs`, `prune`)."""

from cesres_ctl.console import err
from cesres_ctl.errors import CesresError
from cesres_ctl.runs import cluster as clusters
from cesres_ctl.runs import remote
from cesres_ctl.runs.registry import Registry, Run


def refresh_unfinished(registry: Registry, recorded: list[Run]) -> None:
    """One ssh call per cluster for the runs whose last known state is not final; a cluster that
    cannot be asked keeps its runs' last known states, and a note says so."""
    unfinished: dict[str, list[Run]] = {}
    for run in recorded:
        if not run.final:
            unfinished.setdefault(run.cluster, []).append(run)
    for name, pending in unfinished.items():
        try:
            found = remote.statuses(clusters.load(name).ssh, pending)
        except CesresError as exc:
            err.print(
                f"note: could not ask {name} ({exc}); its {len(pending)} unfinished run(s) show their last known state",
                markup=False,
                soft_wrap=True,
            )
            continue
        for run in pending:
            job = found[run.run_id]
            if job.state != "UNKNOWN" and (job.state, job.exit_code) != (run.state, run.exit_code):
                registry.update(
                    name, run.run_id, state=job.state, exit_code=job.exit_code, reason=job.reason, elapsed=job.elapsed
                )
