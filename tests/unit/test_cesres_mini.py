"""Behaviour of sandbox/cesres-mini, the numpy stand-in for the CESReS model (run as a subprocess)."""

from __future__ import annotations

import json
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
import yaml

from tests.conftest import copy_mini
from tests.hub import cache_models, child_env, make_models, running_hub

SCRIPT = "cesres_graphcodebert_model.py"
CONFIG = "configs/demo.yaml"

_NEEDS = "import git, numpy, yaml, tabulate, transformers"
_missing = subprocess.run([sys.executable, "-c", _NEEDS], capture_output=True, text=True, check=False)
pytestmark = pytest.mark.skipif(
    _missing.returncode != 0,
    reason=f"cesres-mini needs {_NEEDS[7:]} in {sys.executable}: {_missing.stderr.strip()[-200:]}",
)


@pytest.fixture(scope="module")
def hf_home(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A Hugging Face cache holding the model the demo config names, filled from the hub imitation."""
    work = tmp_path_factory.mktemp("hub")
    home = work / "hf-home"
    with running_hub(make_models(work / "models"), work) as hub:
        cache_models(home, hub.url, ["Enoch/graphcodebert-py"])
    return home


@pytest.fixture
def repo(tmp_path: Path, hf_home: Path) -> Path:
    dst = tmp_path / "cesres-mini"
    copy_mini(dst)
    (tmp_path / "hf-home").symlink_to(hf_home)  # where run() points HF_HOME
    return dst


def run(repo: Path, *args: str, gpu: bool = True) -> subprocess.CompletedProcess[str]:
    # As in a job: the models come from the cache, offline; the demo config asks device cuda, and the
    # GPU is "visible" as Slurm makes it in a gpu job.
    env = child_env(repo.parent / "hf-home", "http://127.0.0.1:9", offline=True)
    env.pop("CUDA_VISIBLE_DEVICES", None)
    if gpu:
        env["CUDA_VISIBLE_DEVICES"] = "0"
    # A batch job's stdin is /dev/null.
    return subprocess.run(
        [sys.executable, SCRIPT, *args],
        cwd=repo,
        stdin=subprocess.DEVNULL,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
        env=env,
    )


def epochs(out: Path) -> list[dict]:
    files = sorted(out.glob("metrics_epoch_*.json"), key=lambda p: int(p.stem.rsplit("_", 1)[1]))
    return [json.loads(p.read_text()) for p in files]


def edit_config(repo: Path, old: str, new: str, name: str = "edited.yaml", source: str = CONFIG) -> str:
    text = (repo / source).read_text()
    assert old in text
    (repo / name).write_text(text.replace(old, new))
    return name


def edit_yaml(repo: Path, edit: Callable[[dict[str, Any]], None], name: str = "edited.yaml") -> str:
    data = yaml.safe_load((repo / CONFIG).read_text())
    edit(data)
    (repo / name).write_text(yaml.safe_dump(data, sort_keys=False))
    return name


def _set(dotted: str, value: object) -> Callable[[dict[str, Any]], None]:
    def edit(data: dict[str, Any]) -> None:
        *parents, last = dotted.split(".")
        node = data
        for part in parents:
            node = node.setdefault(part, {})
        if value is None:
            node.pop(last, None)
        else:
            node[last] = value

    return edit


def test_demo_config_trains_and_writes_only_what_the_real_program_writes(repo: Path) -> None:
    res = run(repo, "-c", CONFIG)
    assert res.returncode == 0, res.stderr
    assert "Traceback" not in res.stderr
    assert "epoch 10/10" in res.stdout
    out = repo / "output" / "demo"
    history = epochs(out)
    # The real program has no checkpointer: no metrics.json, vocabulary/, config.json or model_state_*.
    assert sorted(p.name for p in out.iterdir()) == sorted(
        ["best.th", "test_results.txt", "predictions.txt"] + [f"metrics_epoch_{i}.json" for i in range(10)]
    )
    assert [m["epoch"] for m in history] == list(range(10))
    assert history[-1]["validation_loss"] < history[0]["validation_loss"]
    last = history[-1]
    assert 0 <= last["best_epoch"] < 10
    assert last["best_validation_loss"] == min(m["validation_loss"] for m in history)
    results = json.loads((out / "test_results.txt").read_text())  # JSON metrics, as allennlp's evaluate
    assert 0.0 <= results["fscore"] <= 1.0
    snippets = (repo / "data" / "test.txt").read_text().count("\n$$$\n")
    batches = [json.loads(line) for line in (out / "predictions.txt").read_text().splitlines()]
    assert len(batches) == -(-snippets // 8)  # one JSON line per evaluation batch of 8
    assert sum(len(b["probs"]) for b in batches) == snippets
    # As allennlp's evaluate dumps the real model's output: rows over the padded labels namespace, and the loss.
    assert all(len(row) == 7 + 2 and row[:2] == [0.0, 0.0] for b in batches for row in b["probs"])
    assert all(isinstance(b["loss"], float) for b in batches)
    import numpy as np  # only needed here; the module is skipped without numpy

    with np.load(out / "best.th") as weights:
        assert "meta" in weights.files


def test_the_config_file_wins_over_the_command_line(repo: Path) -> None:
    # As the real program: a command-line value reaches CONFIG only when the file lacks the key.
    res = run(repo, "-c", CONFIG, "-l", "2", "-s", "elsewhere", "-b", "16")
    assert res.returncode == 0, res.stderr
    assert not (repo / "elsewhere").exists()
    assert len(epochs(repo / "output" / "demo")) == 10
    assert "--loops 2 ignored" in res.stdout
    lean = edit_config(repo, "    loops: 10\n", "")
    lean = edit_config(repo, '    serialization_dir: "output/demo"\n', "", name=lean, source=lean)
    res = run(repo, "-c", lean, "-l", "2", "-s", "elsewhere", "-ne")
    assert res.returncode == 0, res.stderr
    assert [m["epoch"] for m in epochs(repo / "elsewhere")] == [0, 1]
    # no_eval is set in the file (False): -ne is ignored, the evaluation runs
    assert (repo / "elsewhere" / "test_results.txt").is_file()


def test_same_seed_gives_identical_metrics_other_seed_works(repo: Path) -> None:
    unseeded = edit_config(repo, "    random_seed: 42\n", "")
    unseeded = edit_config(repo, "    loops: 10\n", "    loops: 3\n", name=unseeded, source=unseeded)
    runs = {}
    for name, seed in (("a", "7"), ("b", "7"), ("c", "8")):
        cfg = edit_config(repo, "output/demo", f"out_{name}", name=f"{name}.yaml", source=unseeded)
        res = run(repo, "-c", cfg, "-r", seed)
        assert res.returncode == 0, res.stderr
        runs[name] = [
            {k: v for k, v in m.items() if "duration" not in k and "memory" not in k}
            for m in epochs(repo / f"out_{name}")
        ]
    assert runs["a"] == runs["b"]
    assert runs["a"] != runs["c"]


def test_no_loop_predicts_snippets_with_given_weights_like_the_real_program(repo: Path) -> None:
    assert run(repo, "-c", CONFIG, "-l", "1").returncode == 0
    weights = repo / "output" / "demo" / "best.th"
    snippets = repo / "snippets.txt"
    # Each snippet carries a label marker and a known label, or the real reader drops it.
    snippets.write_text("def f(x):\n    return x\n $x$ correct\n$$$\ndef g():\n    print(1)\n $x$ correct\n$$$\n")
    predict = edit_config(repo, "    no_loop: False\n", f"    no_loop: True\n    load_model: {weights}\n")
    predict = edit_config(repo, '"data/test.txt"', f'"{snippets}"', name=predict, source=predict)
    predict = edit_config(repo, '"output/demo"', '"output/predict"', name=predict, source=predict)
    # With no_loop nothing creates serialization_dir: allennlp's evaluate cannot open predictions.txt.
    res = run(repo, "-c", predict)
    assert res.returncode == 1
    assert "serialization_dir output/predict does not exist" in res.stderr
    (repo / "output" / "predict").mkdir()
    res = run(repo, "-c", predict)
    assert res.returncode == 0, res.stderr
    out = repo / "output" / "predict"
    assert sorted(p.name for p in out.iterdir()) == ["predictions.txt", "test_results.txt"]
    rows = [row for line in (out / "predictions.txt").read_text().splitlines() for row in json.loads(line)["probs"]]
    assert len(rows) == 2 and all(len(row) == 9 and row[:2] == [0.0, 0.0] for row in rows)
    # A snippet without a label is dropped by the reader, as the real one does.
    snippets.write_text("def f(x):\n    return x\n$$$\ndef g():\n    print(1)\n $x$ correct\n$$$\n")
    assert run(repo, "-c", predict).returncode == 0
    rows = [row for line in (out / "predictions.txt").read_text().splitlines() for row in json.loads(line)["probs"]]
    assert len(rows) == 1


def test_no_loop_evaluates_the_trained_weights(repo: Path) -> None:
    res = run(repo, "-c", CONFIG, "-n")  # no_loop is in the file (False): -n is ignored, it trains
    assert res.returncode == 0, res.stderr
    out = repo / "output" / "demo"
    (out / "test_results.txt").unlink()
    evaluate = edit_config(repo, "no_loop: False", "no_loop: True")
    res = run(repo, "-c", evaluate)
    assert res.returncode == 0, res.stderr
    assert (out / "test_results.txt").is_file()
    assert len(list(out.glob("metrics_epoch_*.json"))) == 10


@pytest.mark.parametrize(
    ("old", "new", "gpu", "needle"),
    [
        ('device: "cuda"', 'device: "cuda:0"', True, "must be cpu or cuda"),
        ('device: "cuda"', 'device: "gpu"', True, "must be cpu or cuda"),
        ('device: "cuda"', 'device: "cuda"', False, "no GPU is visible"),
        ("arg: [ 1, 64, 9 ]", "arg: [ 1, 64, 7 ]", True, "must be the number of labels + 2 = 9"),
        # The real program loads every model its config names, offline in a job: one not cached fails.
        (
            'huggingface_model: "Enoch/graphcodebert-py"       # loaded',
            'huggingface_model: "nobody/not-cached"       # loaded',
            True,
            "cannot load model nobody/not-cached (VOCABULARY.huggingface_model) from the Hugging Face cache",
        ),
    ],
)
def test_strict_like_the_real_program(repo: Path, old: str, new: str, gpu: bool, needle: str) -> None:
    res = run(repo, "-c", edit_config(repo, old, new), gpu=gpu)
    assert res.returncode in (1, 2), res.stdout
    lines = res.stderr.strip().splitlines()
    assert len(lines) == 1 and needle in lines[0], res.stderr
    assert not (repo / "output").exists()


@pytest.mark.parametrize(
    ("edit", "needle"),
    [
        # The real program passes READER, MODEL and TRAINER as keyword arguments to its constructors.
        (
            _set("READER.max_tokens", 256),
            "TypeError: CodeReader.__init__() got an unexpected keyword argument 'max_tokens'",
        ),
        (
            _set("MODEL.embeding_size", 64),
            "TypeError: ClassificationEmbedderModel.__init__() got an unexpected keyword argument 'embeding_size'",
        ),
        (_set("TRAINER.num_epochs", 3), "TypeError: build_trainer() got multiple values for argument 'num_epochs'"),
        (_set("TRAINER.kwargs_optimizer.lr", 0.1), "got multiple values for keyword argument 'lr'"),
        (_set("TRAINER.kwargs_optimizer.beta", 0.9), "HuggingfaceAdamWOptimizer.__init__() got an unexpected keyword"),
        (_set("MODEL.encoder.arg", None), "BertPooler.__init__() missing 1 required positional argument"),
        (_set("MODEL.encoder.kwargs", {"drop_out": 0.1}), "BertPooler.__init__() got an unexpected keyword argument"),
        (_set("MODEL.loss.args", [1]), "create_parameter() got an unexpected keyword argument 'args'"),
        (_set("MODEL.classification_head.kwargs.normalize", True), "construct_sequential_head() got an unexpected"),
        # construct_sequential_head: list-form hidden sizes fail its assert (len + 1 == number), or pass it
        # and then read one size too many.
        (_set("MODEL.classification_head.arg", [1, [64, 64], 9]), "AssertionError: You specified different hidden"),
        (_set("MODEL.classification_head.arg", [3, [64, 64], 9]), "IndexError: list index out of range"),
    ],
)
def test_what_the_real_constructors_refuse_fails_the_run(
    repo: Path, edit: Callable[[dict[str, Any]], None], needle: str
) -> None:
    res = run(repo, "-c", edit_yaml(repo, edit))
    assert res.returncode == 1, (res.stdout, res.stderr)
    lines = res.stderr.strip().splitlines()
    assert len(lines) == 1 and needle in lines[0], res.stderr
    assert not (repo / "output").exists()


def test_predict_mode_reads_stdin_and_fails_without_a_terminal_like_the_real_program(repo: Path) -> None:
    # The real program asks for snippets with input() after the evaluation: EOFError on a job's stdin.
    res = run(repo, "-c", edit_yaml(repo, _set("CONFIG.predict", True)))
    assert res.returncode == 1, (res.stdout, res.stderr)
    lines = res.stderr.strip().splitlines()
    assert len(lines) == 1 and "EOFError" in lines[0], res.stderr
    assert (repo / "output" / "demo" / "test_results.txt").is_file()


@pytest.mark.parametrize(
    ("setup", "args", "code", "needle"),
    [
        (None, ["-c", "missing.yaml"], 2, "configuration file not found"),
        ("bad.yaml", ["-c", "bad.yaml"], 2, "malformed YAML"),
        ("nosection.yaml", ["-c", "nosection.yaml"], 2, "lacks section"),
        ("absent.yaml", ["-c", "absent.yaml"], 2, "training data file not found"),
        ("batch0.yaml", ["-c", "batch0.yaml"], 2, "batch_size"),
        ("loops0.yaml", ["-c", "loops0.yaml"], 2, "loops"),
        (None, ["-c", CONFIG, "-b", "x"], 2, "invalid int value"),
        ("nosnippet.yaml", ["-c", "nosnippet.yaml"], 1, "no valid snippet"),
    ],
)
def test_bad_input_gives_one_clear_error_line(
    repo: Path, setup: str | None, args: list[str], code: int, needle: str
) -> None:
    demo = (repo / CONFIG).read_text()
    contents = {
        "bad.yaml": "MODEL:\n  labels: [a, b\nCONFIG: {}\n",
        "nosection.yaml": "MODEL:\n  labels: [a]\nCONFIG:\n  loops: 1\n",
        "absent.yaml": demo.replace("data/train.txt", "data/absent.txt"),
        "batch0.yaml": demo.replace("batch_size: 8", "batch_size: 0"),
        "loops0.yaml": demo.replace("loops: 10", "loops: 0"),
        "nosnippet.yaml": demo.replace("data/validation.txt", "nosnippet.txt"),
    }
    (repo / "nosnippet.txt").write_text("def f():\n    return 1\n")
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
