"""A run's results brought into a local directory (rsync: only what changed moves), and the registry told
where: for fetch, plot, compare, predictions and train --wait."""

from pathlib import Path

from cesres_ctl import paths
from cesres_ctl.console import note
from cesres_ctl.runs import remote
from cesres_ctl.runs.jobs import settings_of
from cesres_ctl.runs.registry import Registry, Run

DEFAULT_FETCH_ROOT = Path("cesres-runs")


def check_dest(dest: Path) -> Path:
    """A fetch destination, checked before any ssh: a directory, or one that can be created."""
    return paths.check_dir(dest.resolve(), "the fetch destination", "give --dest a directory you can write")


def fetch_run(run: Run, dest: Path | None, *, quiet: bool = False, inputs: tuple[str, ...] = ()) -> Path:
    """Fetch into `dest` (default: where it was fetched before, else ./cesres-runs/RUN); return the directory."""
    target = check_dest(dest or (Path(run.local_dir) if run.local_dir else DEFAULT_FETCH_ROOT / run.run_id))
    changed, _ = remote.fetch(settings_of(run), run, target, inputs=inputs)
    Registry().update(run.cluster, run.run_id, local_dir=str(target))
    if not quiet:
        note(f"fetched {run.run_id} into {target} ({changed} file(s) changed)")
    return target
