"""`cesres-ctl prune`: free the cluster's space of runs whose results are safe here, through playbooks/prune.yml.

Which runs may go is decided here, from the registry: finished, and fetched after they finished (the local
copy has the job's exit code and its Slurm log). The cluster decides the rest (roles/cesres_prune): a live
job is never removed, run directories that never got a job and data no run links to are.
"""

from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from cesres_ctl.errors import CesresError
from cesres_ctl.rules import EXIT_CODE_FILE, RUNS_DIR, log_name
from cesres_ctl.runner import run_playbook
from cesres_ctl.runs import cluster as clusters
from cesres_ctl.runs.jobs import refresh_unfinished
from cesres_ctl.runs.registry import Registry, Run

PLAYBOOK = "playbooks/prune.yml"
PRUNED = "run directory pruned from the cluster"
MAX_DAYS = 36500


@dataclass
class Plan:
    """The runs cesres-ctl asks the cluster to remove, and those it keeps, with why."""

    chosen: list[Run] = field(default_factory=list)
    kept: list[dict[str, str]] = field(default_factory=list)


def fetched_after_the_end(run: Run) -> bool:
    """Whether the local copy holds the finished job's results: its exit code and its own Slurm log."""
    if not run.local_dir:
        return False
    local = Path(run.local_dir)
    return (local / EXIT_CODE_FILE).is_file() and (local / log_name(run.job_id)).is_file()


def plan(runs: list[Run], *, older_than_days: float | None, states: list[str]) -> Plan:
    """Which of `runs` (the registry's, already refreshed) may go."""
    result = Plan()
    cutoff = datetime.now(UTC) - timedelta(days=older_than_days) if older_than_days is not None else None
    wanted = {state.upper() for state in states}
    for run in runs:
        if run.reason == PRUNED:
            continue
        if cutoff is not None and datetime.fromisoformat(run.submitted_at.replace("Z", "+00:00")) > cutoff:
            continue
        if wanted and run.state not in wanted:
            continue
        if not run.final:
            result.kept.append({"run_id": run.run_id, "reason": f"job {run.job_id} is {run.state}"})
        elif not fetched_after_the_end(run):
            result.kept.append(
                {"run_id": run.run_id, "reason": f"results not fetched since it ended: cesres-ctl fetch {run.run_id}"}
            )
        else:
            result.chosen.append(run)
    return result


def usage(cluster: str, *, registry: Registry | None = None) -> list[dict[str, Any]]:
    """How much the runs and the data store take on the cluster (prune.yml in check mode: nothing removed)."""
    report = prune(cluster, [], older_than_days=None, states=[], dry_run=True, quiet=True, registry=registry)
    return list(report["usage"])


def prune(
    cluster: str,
    refs: list[str],
    *,
    older_than_days: float | None,
    states: list[str],
    dry_run: bool,
    quiet: bool = False,
    registry: Registry | None = None,
) -> dict[str, Any]:
    """Run playbooks/prune.yml for `cluster`; returns what was (would be) removed and kept, and the usage."""
    # `not 0 <= x` refuses NaN too; beyond MAX_DAYS the cut-off date would be before year 1.
    if older_than_days is not None and not 0 <= older_than_days <= MAX_DAYS:
        raise CesresError(f"--older-than must be a number of days from 0 to {MAX_DAYS}, got {older_than_days}")
    registry = registry or Registry()
    target = clusters.load(cluster)
    runs = [registry.find(ref, cluster) for ref in refs] if refs else registry.list(cluster)
    refresh_unfinished(registry, runs)
    runs = [registry.get(run.cluster, run.run_id) or run for run in runs]
    chosen = plan(runs, older_than_days=older_than_days, states=states)
    by_dir = {run.remote_dir: run for run in chosen.chosen}
    # The configured checkout, and those of the cluster's recorded runs (trained with --set root=...).
    roots = [str(target.job_vars.get("cesres_job_root", "~/cesres"))]
    recorded = registry.list(cluster)
    roots += sorted({str(Path(run.remote_dir).parent.parent) for run in [*recorded, *runs]} - set(roots))
    result = run_playbook(
        PLAYBOOK,
        limit=cluster,
        extravars={"cesres_prune_roots": roots, "cesres_prune_runs": sorted(by_dir)},
        title=f"prune {cluster}",
        quiet=quiet,
        check=dry_run,
        inventory=list(target.inventory_sources) or None,
    )
    if not result.ok:
        raise CesresError(f"prune failed: {result.failure}", log_path=str(result.log_path), exit_code=result.exit_code)
    outcome = result.facts.get(cluster, {}).get("cesres_prune_outcome")
    if not isinstance(outcome, dict):
        raise CesresError(f"prune ran but reported nothing on {cluster}", log_path=str(result.log_path))
    removed = []
    for item in outcome.get("removed", []):
        run = by_dir.get(item["path"])
        removed.append({"run_id": run.run_id if run else Path(item["path"]).name, **item})
        if run is not None and not dry_run:
            registry.update(run.cluster, run.run_id, reason=PRUNED)
    kept = chosen.kept + [
        {"run_id": by_dir[item["path"]].run_id if item["path"] in by_dir else Path(item["path"]).name, **item}
        for item in outcome.get("kept", [])
    ]
    return {
        "cluster": cluster,
        "dry_run": dry_run,
        "removed": removed,
        "kept": kept,
        "store_removed": outcome.get("store_removed", []),
        "freed_bytes": int(outcome.get("freed_bytes", 0)),
        "usage": outcome.get("usage", []),
    }


def human_bytes(count: float) -> str:
    for unit in ("B", "KiB", "MiB", "GiB"):
        if count < 1024 or unit == "GiB":
            return f"{count:.0f} {unit}" if unit == "B" else f"{count:.1f} {unit}"
        count /= 1024
    raise AssertionError("unreachable")


def usage_lines(usage: list[dict[str, Any]]) -> list[str]:
    return [
        f"{item['root']}/{RUNS_DIR}: {item['runs']} run(s), {human_bytes(item['runs_bytes'])}; "
        f"data store: {item['store_files']} file(s), {human_bytes(item['store_bytes'])}"
        for item in usage
    ]
