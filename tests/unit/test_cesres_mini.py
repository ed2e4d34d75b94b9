"""Behaviour of sandbox/cesres-mini, the numpy stand-in for the CESReS model (run as a subprocess)."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

MINI = Path(__file__).resolve().parents[2] / "sandbox" / "cesres-mini"
SCRIPT = "cesres_graphcodebert_model.py"
CONFIG = "configs/demo.yaml"

_missing = subprocess.run(
    [sys.executable, "-c", "import numpy, yaml, tabulate"], capture_output=True, text=True, check=False
)
pytestmark = pytest.mark.skipif(
    _missing.returncode != 0,
    reason=f"cesres-mini needs numpy, PyYAML and tabulate in {sys.executable}: {_missing.stderr.strip()[-200:]}",
)


@pytest.fixture
def repo(tmp_path: Path) -> Path:
    dst = tmp_path / "cesres-mini"
    shutil.copytree(MINI, dst, ignore=shutil.ignore_patterns("output", "__pycache__"))
    return dst


def run(repo: Path, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, SCRIPT, *args], cwd=repo, capture_output=True, text=True, timeout=120, check=False
    )


def epochs(out: Path) -> list[dict]:
    files = sorted(out.glob("metrics_epoch_*.json"), key=lambda p: int(p.stem.rsplit("_", 1)[1]))
    return [json.loads(p.read_text()) for p in files]


def test_demo_config_trains_and_writes_allennlp_layout(repo: Path) -> None:
    res = run(repo, "-c", CONFIG)
    assert res.returncode == 0, res.stderr
    assert "Traceback" not in res.stderr
    assert "epoch 10/10" in res.stdout
    out = repo / "output" / "demo"
    for name in ("best.th", "metrics.json", "test_results.txt", "predictions.txt", "vocabulary/labels.txt"):
        assert (out / name).is_file(), name
    history = epochs(out)
    assert [m["epoch"] for m in history] == list(range(10))
    assert history[-1]["validation_loss"] < history[0]["validation_loss"]
    summary = json.loads((out / "metrics.json").read_text())
    assert summary["training_epochs"] == 10
    assert 0 <= summary["best_epoch"] < 10
    assert summary["best_validation_loss"] == min(m["validation_loss"] for m in history)
    assert 0.0 <= summary["test_fscore"] <= 1.0
    labels = (out / "vocabulary" / "labels.txt").read_text().split()
    assert "correct" in labels
    predictions = [json.loads(line) for line in (out / "predictions.txt").read_text().splitlines()]
    assert len(predictions) == (repo / "data" / "test.txt").read_text().count("\n$$$\n")
    assert all(set(p["predicted"]) <= set(labels) and p["gold"] for p in predictions)
    assert "fscore" in (out / "test_results.txt").read_text()
    import numpy as np  # only needed here; the module is skipped without numpy

    with np.load(out / "best.th") as weights:
        assert "meta" in weights.files


def test_same_seed_gives_identical_metrics_other_seed_works(repo: Path) -> None:
    runs = {}
    for name, seed in (("a", "7"), ("b", "7"), ("c", "8")):
        res = run(repo, "-c", CONFIG, "-l", "3", "-r", seed, "-s", f"out_{name}")
        assert res.returncode == 0, res.stderr
        runs[name] = (repo / f"out_{name}" / "metrics.json").read_text()
    assert runs["a"] == runs["b"]
    assert runs["a"] != runs["c"]
    assert json.loads(runs["c"])["random_seed"] == 8


def test_loops_and_serialization_dir_override(repo: Path) -> None:
    res = run(repo, "-c", CONFIG, "-l", "2", "-s", "elsewhere", "-b", "16", "-d", "cuda:0", "-ne", "-n")
    # -n (no_loop) means "do not train, load best.th", as in the real model: nothing to load yet
    assert res.returncode == 1
    assert res.stderr.startswith("cesres-mini: error: no_loop")
    res = run(repo, "-c", CONFIG, "-l", "2", "-s", "elsewhere", "-b", "16", "-d", "cuda:0", "-ne")
    assert res.returncode == 0, res.stderr
    out = repo / "elsewhere"
    names = sorted(p.name for p in out.glob("metrics_epoch_*.json"))
    assert names == ["metrics_epoch_0.json", "metrics_epoch_1.json"]
    assert not (out / "test_results.txt").exists()  # -ne
    assert not (repo / "output").exists()
    assert "cuda:0" in res.stdout and "CPU" in res.stdout
    # evaluate the trained weights without training again
    res = run(repo, "-c", CONFIG, "-s", "elsewhere", "-n")
    assert res.returncode == 0, res.stderr
    assert (out / "test_results.txt").is_file()
    assert len(list(out.glob("metrics_epoch_*.json"))) == 2


@pytest.mark.parametrize(
    ("setup", "args", "code", "needle"),
    [
        (None, ["-c", "missing.yaml"], 2, "configuration file not found"),
        ("bad.yaml", ["-c", "bad.yaml"], 2, "malformed YAML"),
        ("nosection.yaml", ["-c", "nosection.yaml"], 2, "lacks section"),
        (None, ["-c", CONFIG, "-t", "data/absent.txt"], 2, "training data file not found"),
        (None, ["-c", CONFIG, "-b", "0"], 2, "batch_size"),
        (None, ["-c", CONFIG, "-l", "0"], 2, "loops"),
        (None, ["-c", CONFIG, "-b", "x"], 2, "invalid int value"),
        ("nosnippet.txt", ["-c", CONFIG, "-v", "nosnippet.txt"], 1, "no valid snippet"),
    ],
)
def test_bad_input_gives_one_clear_error_line(
    repo: Path, setup: str | None, args: list[str], code: int, needle: str
) -> None:
    contents = {
        "bad.yaml": "MODEL:\n  labels: [a, b\nCONFIG: {}\n",
        "nosection.yaml": "MODEL:\n  labels: [a]\nCONFIG:\n  loops: 1\n",
        "nosnippet.txt": "def f():\n    return 1\n",
    }
    if setup:
        (repo / setup).write_text(contents[setup])
    res = run(repo, *args)
    assert res.returncode == code, (res.stdout, res.stderr)
    lines = res.stderr.strip().splitlines()
    assert len(lines) == 1, res.stderr
    assert lines[0].startswith("cesres-mini: error:")
    assert needle in lines[0]
    assert "Traceback" not in res.stderr + res.stdout
    assert not (repo / "output").exists()


def test_dataset_generator_is_deterministic(repo: Path, tmp_path: Path) -> None:
    res = subprocess.run(
        [sys.executable, "tools/make_dataset.py", "--out", str(tmp_path / "regen")],
        cwd=repo,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert res.returncode == 0, res.stderr
    for split in ("train", "validation", "test"):
        regenerated = (tmp_path / "regen" / f"{split}.txt").read_text()
        assert regenerated == (repo / "data" / f"{split}.txt").read_text()
