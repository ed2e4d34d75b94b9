"""`cesres-ctl compare` and the plot of a sweep: several runs side by side, from their fetched results.

A row is what a researcher compares: the point's values, the best epoch with its validation loss and
F-score, the evaluation's metrics (test_results.txt), the elapsed time and the state. The sweep plot
overlays every point's validation loss, labelled by its values, and draws the final metric against each
varied value; it returns the data it drew, so that what the figure shows can be checked.
"""

import json
from pathlib import Path
from typing import Any

from cesres_ctl.errors import CesresError
from cesres_ctl.runs import plot as plots
from cesres_ctl.runs.registry import Run

TEST_RESULTS = "test_results.txt"
# Sort keys of compare's table, and of its --json rows.
METRICS = ("best_validation_loss", "best_validation_fscore", "test_loss", "test_fscore", "best_epoch")


def row(run: Run, results: Path) -> dict[str, Any]:
    """One run's row, from its results directory (fetched); metrics missing when the run wrote none yet."""
    epochs = plots.read_epochs(results)
    last = epochs[-1] if epochs else {}
    try:
        test = json.loads((results / TEST_RESULTS).read_text(encoding="utf-8"))
    except (OSError, ValueError):
        test = {}
    test = test if isinstance(test, dict) else {}
    return {
        "run_id": run.run_id,
        "sweep_id": run.sweep_id,
        "values": run.point,
        "state": run.state,
        "elapsed": run.elapsed,
        "epochs": len(epochs),
        "best_epoch": last.get("best_epoch"),
        "best_validation_loss": last.get("best_validation_loss"),
        "best_validation_fscore": last.get("best_validation_fscore"),
        "validation_loss": [item.get("validation_loss") for item in epochs],
        **{f"test_{key}": value for key, value in test.items() if isinstance(value, int | float)},
    }


def check_sort(metric: str | None) -> None:
    if metric is not None and metric not in METRICS:
        raise CesresError(f"--sort {metric}: choose one of {', '.join(METRICS)}")


def sort_rows(rows: list[dict[str, Any]], metric: str | None) -> list[dict[str, Any]]:
    """Rows by `metric`, best first (lowest loss, highest score); rows without it last."""
    check_sort(metric)
    if metric is None:
        return rows
    lowest_first = metric.endswith("loss") or metric == "best_epoch"
    present = [item for item in rows if isinstance(item.get(metric), int | float)]
    missing = [item for item in rows if item not in present]
    return sorted(present, key=lambda item: item[metric], reverse=not lowest_first) + missing


def label(values: dict[str, Any]) -> str:
    return ", ".join(f"{key.rsplit('.', 1)[-1]}={value}" for key, value in values.items())


def sweep_plot_data(rows: list[dict[str, Any]], metric: str = "best_validation_fscore") -> dict[str, Any]:
    """What the sweep's figure shows: each point's validation loss per epoch, and `metric` against each
    varied value."""
    curves = {
        label(item["values"]) or item["run_id"]: [
            [epoch, loss] for epoch, loss in enumerate(item["validation_loss"]) if isinstance(loss, int | float)
        ]
        for item in rows
    }
    keys = list(rows[0]["values"]) if rows else []
    panels = {
        key: [[item["values"][key], item[metric]] for item in rows if isinstance(item.get(metric), int | float)]
        for key in keys
    }
    return {"curves": curves, "metric": metric, "panels": panels}


def plot_sweep(data: dict[str, Any], output: Path, title: str) -> Path:
    """The overlay of validation losses, and one panel of the final metric per varied value, as a PNG."""
    plt = plots.pyplot()
    panels = data["panels"]
    fig, axes = plt.subplots(1, 1 + len(panels), figsize=(5.5 * (1 + len(panels)), 4.2), squeeze=False)
    overlay = axes[0][0]
    for name, points in data["curves"].items():
        overlay.plot([p[0] for p in points], [p[1] for p in points], marker="o", label=name)
    overlay.set_title("validation loss")
    overlay.set_xlabel("epoch")
    if overlay.lines:
        overlay.legend(fontsize=7)
    for axis, (key, points) in zip(axes[0][1:], panels.items(), strict=True):
        ordered = sorted(points, key=lambda point: (str(type(point[0])), point[0]))
        axis.plot([str(p[0]) for p in ordered], [p[1] for p in ordered], marker="s", linestyle="none")
        axis.set_title(f"{data['metric']} by {key}")
        axis.set_xlabel(key)
    for axis in axes[0]:
        axis.grid(alpha=0.3)
    return plots.save(fig, output, title)
