"""What the shell completes (typer's completion: `cesres-ctl --install-completion`): run ids and sweep ids
from the registry, each with its state and cluster; file names are the shell's own.

Called by the shell at every Tab: it imports what `status` does and nothing more, and never fails (no
registry yet, or one that cannot be read, completes nothing).
"""

import typer

from cesres_ctl import paths
from cesres_ctl.errors import CesresError
from cesres_ctl.runs.registry import REGISTRY_FILE, Registry, Run


def runs(ctx: typer.Context, incomplete: str) -> list[tuple[str, str]]:
    """The recorded run ids (of --cluster, when given before)."""
    return [
        (run.run_id, f"{run.state} on {run.cluster}") for run in _recorded(ctx) if run.run_id.startswith(incomplete)
    ]


def sweeps(ctx: typer.Context, incomplete: str) -> list[tuple[str, str]]:
    """The recorded sweep ids, with their number of points."""
    points: dict[str, list[Run]] = {}
    for run in _recorded(ctx):
        if run.sweep_id and run.sweep_id.startswith(incomplete):
            points.setdefault(run.sweep_id, []).append(run)
    return [(sweep, f"sweep of {len(found)} points on {found[0].cluster}") for sweep, found in points.items()]


def runs_and_sweeps(ctx: typer.Context, incomplete: str) -> list[tuple[str, str]]:
    return [*sweeps(ctx, incomplete), *runs(ctx, incomplete)]


def files() -> list[str]:
    """Nothing, so that bash completes file names itself (the script's `complete -o default`): click's own
    completion of a path would offer back the word as typed."""
    return []


def _recorded(ctx: typer.Context) -> list[Run]:
    path = paths.state_path() / REGISTRY_FILE
    if not path.is_file():
        return []  # nothing recorded: no registry created for a Tab
    try:
        return Registry(path).list(ctx.params.get("cluster"))
    except (CesresError, OSError):
        return []
