"""`cesres-ctl plot`: the training curves of a run, from its metrics_epoch_N.json files, as a PNG."""

import importlib.util
import json
import re
from pathlib import Path
from typing import Any

from cesres_ctl import paths
from cesres_ctl.errors import CesresError

_EPOCH_FILE = re.compile(r"^metrics_epoch_(\d+)\.json$")


def read_epochs(results: Path) -> list[dict[str, Any]]:
    """The per-epoch metrics, sorted by epoch; unreadable files are skipped (a run still writing)."""
    epochs = []
    for path in results.glob("metrics_epoch_*.json"):
        match = _EPOCH_FILE.match(path.name)
        if not match:
            continue
        try:
            data = json.loads(path.read_text(encoding="utf-8"))
        except (OSError, ValueError):
            continue
        if isinstance(data, dict):
            data.setdefault("epoch", int(match.group(1)))
            epochs.append(data)
    return sorted(epochs, key=lambda item: int(item["epoch"]))


# AllenNLP's per-epoch files also count epochs and time them: bookkeeping, not curves.
_BOOKKEEPING = frozenset({"training_duration", "training_epochs", "training_start_epoch"})


def series(epochs: list[dict[str, Any]]) -> dict[str, list[tuple[int, float]]]:
    """Numeric training_*/validation_* series by name (loss and metrics)."""
    found: dict[str, list[tuple[int, float]]] = {}
    for item in epochs:
        for key, value in item.items():
            if not key.startswith(("training_", "validation_")) or key in _BOOKKEEPING:
                continue
            if isinstance(value, bool) or not isinstance(value, int | float):
                continue
            found.setdefault(key, []).append((int(item["epoch"]), float(value)))
    return found


def check_output(output: Path) -> Path:
    """The PNG's path, checked creating nothing: not a directory, in a directory that can be written."""
    if output.is_dir():
        raise CesresError(f"--output {output} is a directory: give a file name such as {output / 'curves.png'}")
    paths.check_dir(output.resolve().parent, "the plot's directory", "give --output a file you can write")
    return output


# matplotlib (with numpy, fonttools, pillow: most of an install's size) is for `plot` only: an extra.
MISSING = (
    "plot needs matplotlib, an extra: pip install 'cesres-ctl[plot]' (with pipx: pipx inject cesres-ctl matplotlib)"
)


def check_matplotlib() -> None:
    """CesresError when matplotlib is not installed: said before a fetch, not after it."""
    if importlib.util.find_spec("matplotlib") is None:
        raise CesresError(MISSING)


def pyplot() -> Any:
    """matplotlib's pyplot, drawing to files only (Agg)."""
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        raise CesresError(MISSING) from None
    return plt


def save(fig: Any, output: Path, title: str) -> Path:
    """Title, lay out and write `fig` as a PNG at `output`, then free it."""
    fig.suptitle(title)
    fig.tight_layout()
    try:
        paths.ensure_dir(output.parent, "the plot's directory", "give --output a file you can write")
        fig.savefig(output, format="png", dpi=100)
    except OSError as exc:
        raise CesresError(f"cannot write the plot {output}: {exc.strerror or exc}") from None
    finally:
        pyplot().close(fig)
    return output


def plot(results: Path, output: Path, title: str) -> Path:
    epochs = read_epochs(results)
    if not epochs:
        raise CesresError(f"no metrics_epoch_N.json in {results}: has the run finished an epoch?")
    plt = pyplot()
    data = series(epochs)
    losses = {k: v for k, v in data.items() if k.endswith("_loss")}
    metrics = {k: v for k, v in data.items() if not k.endswith("_loss") and not k.endswith("_MB")}
    fig, (ax_loss, ax_metric) = plt.subplots(1, 2, figsize=(11, 4.2))
    for name, points in sorted(losses.items()):
        ax_loss.plot([p[0] for p in points], [p[1] for p in points], marker="o", label=name)
    ax_loss.set_title("loss")
    for name, points in sorted(metrics.items()):
        ax_metric.plot([p[0] for p in points], [p[1] for p in points], marker=".", label=name)
    ax_metric.set_title("metrics")
    for axis in (ax_loss, ax_metric):
        axis.set_xlabel("epoch")
        axis.grid(alpha=0.3)
        if axis.lines:
            axis.legend(fontsize=7)
    return save(fig, output, title)
