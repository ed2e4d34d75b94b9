"""cesres-ctl predict: the prediction config, the snippets sent, predictions.txt read back, where the
weights come from, and every refusal in one line before anything is submitted or recorded."""

import hashlib
import json
from pathlib import Path

import pytest
import yaml

from cesres_ctl.errors import CesresError
from cesres_ctl.runs import predict
from cesres_ctl.runs.registry import Run, now
from tests.conftest import MINI, run_main

LABELS = (
    "print_instead_of_return",
    "off_by_one_range",
    "missing_base_case",
    "mutable_default_argument",
    "comparison_with_is",
    "unused_return_value",
    "correct",
)


def run_config(**conf: object) -> str:
    """A run's config.yaml as cesres-ctl rewrote it for training (the demo config's model)."""
    data = yaml.safe_load((MINI / "configs" / "demo.yaml").read_text())
    data["CONFIG"].update(
        {
            "training": "cesres_run/inputs/training.txt",
            "validation": "cesres_run/inputs/validation.txt",
            "evaluation": "cesres_run/inputs/evaluation.txt",
            "serialization_dir": "cesres_run/results",
            "no_loop_weight_file": "best.th",
            **conf,
        }
    )
    return yaml.safe_dump(data, sort_keys=False)


def model(multi_label: bool = True) -> predict.Model:
    return predict.Model(LABELS, multi_label, predict.Reader())


def test_the_prediction_config_is_the_runs_own_with_config_set_to_predict():
    original = yaml.safe_load(run_config())
    data, text = predict.prediction_config(run_config(), gpus=0, where="run r-0123456789")
    assert yaml.safe_load(text) == data
    # The model, its reader and its trainer settings are the run's, untouched (best.th must load).
    for section in ("VOCABULARY", "READER", "MODEL", "TRAINER", "INTERPRETER"):
        assert data[section] == original[section]
    conf = data["CONFIG"]
    assert conf["no_loop"] is True and conf["no_eval"] is False
    assert conf["predict"] is False and conf["gui"] is False
    assert conf["evaluation"] == "cesres_run/inputs/evaluation.txt"
    # With no_loop the real program loads CONFIG.load_model when the config sets it.
    assert conf["load_model"] == "cesres_run/inputs/weights.th"
    assert conf["serialization_dir"] == "cesres_run/results"
    assert conf["device"] == "cpu"
    assert not {"training", "validation", "no_loop_weight_file"} & conf.keys()
    assert conf["batch_size"] == original["CONFIG"]["batch_size"]
    assert predict.is_prediction_config(data)
    assert not predict.is_prediction_config(original)
    # The snippet splitter keeps its line breaks through the dump.
    assert data["READER"]["snippet_splitter"] == "\n$$$\n"
    assert predict.prediction_config(run_config(), gpus=1, where="r")[0]["CONFIG"]["device"] == "cuda"


@pytest.mark.parametrize(
    ("text", "problem"),
    [
        ("{", "not valid YAML"),
        ("[1, 2]", "not a CESReS config"),
        (run_config().replace("    - correct\n", "").replace("  labels:", "  labels: []\n  x:"), "MODEL.labels"),
    ],
)
def test_a_config_that_cannot_predict_is_one_line(text, problem):
    with pytest.raises(CesresError, match=problem):
        predict.prediction_config(text, gpus=0, where="run r")


def test_snippets_are_cut_as_the_runs_reader_cuts_and_labels_left_out():
    reader = predict.Reader()
    text = (
        "def f(x):\n    return x\n $x$ correct ; off_by_one_range\n$$$\n"
        "\n\n$$$\n"  # a blank part is no snippet
        "def g():\r\n    print(1)\r\n$$$\r\n"
        "def h():\n    pass\n$$$"  # the last separator without its newline
    )
    assert predict.split_snippets(text, reader) == [
        "def f(x):\n    return x",
        "def g():\n    print(1)",
        "def h():\n    pass",
    ]
    # The last snippet may lack its separator.
    assert predict.split_snippets("a = 1\n$$$\nb = 2\n", reader) == ["a = 1", "b = 2"]
    # Separator lines in a row, or at the very start: a file of separators alone holds no snippet.
    assert predict.split_snippets("$$$\na = 1\n$$$\n$$$\nb = '$$$'\n", reader) == ["a = 1", "b = '$$$'"]
    for separators in ("$$$", "$$$\n", "$$$\n$$$\n", "\n$$$\n\n$$$\r\n$$$"):
        assert predict.split_snippets(separators, reader) == [], separators


def test_every_snippet_is_sent_with_a_placeholder_label_and_read_back_by_the_real_readers_rules():
    snippets = ["def f(x):\n    return x", "    x = 1  # indented", "print('$x$')"]
    text = predict.snippets_data(snippets, model())
    assert text.count(" $x$ print_instead_of_return\n$$$\n") == 3
    # The real reader: split on the separator, drop the last part, strip, exactly code and label.
    assert predict.read_data(text, predict.Reader()) == [s.strip() for s in snippets]
    # An unlabelled snippet is what the real reader silently drops: never sent so.
    assert predict.read_data("def f():\n    pass\n$$$\n", predict.Reader()) == []
    with pytest.raises(CesresError, match="snippet 1 cannot be sent"):
        predict.snippets_data(["a\n$$$"], model())


def batch_line(*rows: list[float]) -> str:
    return json.dumps({"probs": [[0.0, 0.0, *row] for row in rows], "loss": 0.5})


def test_predictions_are_read_per_snippet_without_the_padding_entries():
    first = [0.9, 0.1, 0.0, 0.0, 0.0, 0.0, 0.6]
    second = [0.1, 0.2, 0.3, 0.2, 0.1, 0.05, 0.05]
    text = batch_line(first) + "\n" + batch_line(second) + "\n"
    multi = predict.parse_predictions(text, model(), ["a", "b"])
    assert [p.labels for p in multi] == [("print_instead_of_return", "correct"), ()]
    assert multi[0].probabilities["correct"] == 0.6
    assert multi[1].to_dict() == {
        "index": 2,
        "snippet": "b",
        "labels": [],
        "probabilities": dict(zip(LABELS, second, strict=True)),
    }
    single = predict.parse_predictions(text, model(multi_label=False), ["a", "b"])
    assert [p.labels for p in single] == [("print_instead_of_return",), ("missing_base_case",)]


@pytest.mark.parametrize(
    ("text", "snippets", "problem"),
    [
        (batch_line([0.1] * 7), ["a", "b"], "holds 1 prediction"),
        ("not json\n", ["a"], "line 1 is not JSON"),
        (json.dumps({"loss": 1.0}), ["a"], "no list 'probs'"),
        (json.dumps({"probs": [[0.1] * 7]}), ["a"], "is not 9 numbers"),  # no padding entries
    ],
)
def test_predictions_that_do_not_fit_the_snippets_are_one_line(text, snippets, problem):
    with pytest.raises(CesresError, match=problem):
        predict.parse_predictions(text, model(), snippets)


def a_run(tmp_path: Path, *, state: str = "COMPLETED", fetched: bool = False) -> Run:
    local = ""
    if fetched:
        local_dir = tmp_path / "fetched"
        (local_dir / "results").mkdir(parents=True)
        (local_dir / "results" / "best.th").write_bytes(b"weights")
        (local_dir / "config.yaml").write_text(run_config())
        local = str(local_dir)
    return Run(
        "sandbox", "demo-0123456789", "demo", "7", "/home/u/cesres/runs/demo-0123456789", now(), state, local_dir=local
    )


def test_the_weights_of_a_run_on_the_prediction_cluster_are_taken_there(tmp_path):
    run = a_run(tmp_path, fetched=True)
    scripts = []

    def ask(script: str) -> str:
        scripts.append(script)
        return f"{predict._SEP}\n{run_config()}"

    source = predict.locate(run, "sandbox", ask)
    assert "test -s results/best.th" in scripts[0] and "/home/u/cesres/runs/demo-0123456789" in scripts[0]
    assert source.weights.cluster_path == "/home/u/cesres/runs/demo-0123456789/results/best.th"
    assert source.weights.local_path is None and source.weights.staged_name == "weights.th"
    assert source.config_text == run_config()


def test_the_fetched_weights_are_sent_when_the_cluster_has_none_or_another_cluster_predicts(tmp_path):
    run = a_run(tmp_path, fetched=True)
    gone = predict.locate(run, "sandbox", lambda _script: "")  # pruned from the cluster
    other = predict.locate(run, "dragon2", lambda _script: pytest.fail("the run's cluster was asked"))
    for source in (gone, other):
        assert source.weights.local_path == tmp_path / "fetched" / "results" / "best.th"
        assert source.weights.sha256 == hashlib.sha256(b"weights").hexdigest()
        assert source.weights.cluster_path is None


def test_a_run_without_best_th_where_needed_is_refused(tmp_path):
    run = a_run(tmp_path)
    with pytest.raises(CesresError, match=r"no best\.th to predict with: none in sandbox:"):
        predict.locate(run, "sandbox", lambda _script: "")
    with pytest.raises(CesresError, match=r"no fetched best\.th to send to dragon2: fetch it first"):
        predict.locate(run, "dragon2", lambda _script: "")
    assert predict.no_weights_reason(run, "COMPLETED") is None
    failed = predict.no_weights_reason(run, "FAILED")
    assert failed is not None and "ended FAILED" in failed
    running = predict.no_weights_reason(run, "RUNNING")
    assert running is not None and "is RUNNING" in running


# ---------------------------------------------------------------------------------------------------
# The command: one line, non-zero, nothing submitted or recorded


@pytest.fixture
def registry_with_runs(monkeypatch, tmp_path):
    """A private registry with a completed, a failed and a running run; ssh and submission fail the test."""
    from cesres_ctl.runs import remote, train_commands
    from cesres_ctl.runs.registry import Registry

    monkeypatch.setenv("XDG_STATE_HOME", str(tmp_path / "state"))
    registry = Registry()
    for run_id, state in (("done-0123456789", "COMPLETED"), ("bad-0123456789", "FAILED")):
        registry.record_submission(Run("sandbox", run_id, run_id[:-11], "7", f"/r/{run_id}", now(), state))

    def no_ssh(*_args, **_kwargs):
        raise AssertionError("the cluster was contacted")

    for name in ("fetch", "execute", "status"):
        monkeypatch.setattr(remote, name, no_ssh)
    monkeypatch.setattr(train_commands, "submit", no_ssh)
    snippets = tmp_path / "snippets.txt"
    snippets.write_text("def f(x):\n    return x\n$$$\n")
    return registry, snippets


@pytest.mark.parametrize(
    ("argv", "words"),
    [
        (("predict", "nothing", "{snippets}"), ["no run 'nothing'"]),
        (("predict", "done", "{tmp}/missing.txt"), ["snippets file", "missing.txt not found"]),
        (("predict", "done", "{tmp}/empty.txt"), ["snippets file", "is empty"]),
        (("predict", "done", "{tmp}/blank.txt"), ["holds no snippet"]),
        (("predict", "done", "{tmp}/binary.txt"), ["not UTF-8"]),
        (("predict", "done", "{tmp}"), ["is a directory"]),
        (("predict", "bad", "{snippets}"), ["bad-0123456789 has no best.th", "ended FAILED"]),
        (("predict", "done", "{snippets}", "--cluster", "dragon2"), ["no fetched best.th to send to dragon2"]),
        (("predict", "done", "{snippets}", "--cluster", "nowhere"), ["nowhere"]),
        (("predictions", "nothing"), ["no run 'nothing'"]),
    ],
)
def test_bad_predict_input_is_one_line_and_nothing_is_submitted_or_recorded(
    monkeypatch, capsys, tmp_path, registry_with_runs, argv, words
):
    registry, snippets = registry_with_runs
    (tmp_path / "empty.txt").write_text("")
    (tmp_path / "blank.txt").write_text("\n$$$\n  \n$$$\n")
    (tmp_path / "binary.txt").write_bytes(b"\xff\xfe\x00code")
    if any("blank" in arg for arg in argv):
        # Splitting needs the run's reader: its config comes from its fetched copy here (no ssh).
        local = tmp_path / "fetched"
        (local / "results").mkdir(parents=True)
        (local / "results" / "best.th").write_bytes(b"w")
        (local / "config.yaml").write_text(run_config())
        registry.update("sandbox", "done-0123456789", local_dir=str(local))
        argv = (*argv, "--cluster", "dragon2")
    before = [run.run_id for run in registry.list()]
    argv = tuple(arg.replace("{snippets}", str(snippets)).replace("{tmp}", str(tmp_path)) for arg in argv)
    code, out, err = run_main(monkeypatch, capsys, *argv)
    assert code != 0
    lines = [line for line in err.splitlines() if line.strip()]
    assert len(lines) == 1 and lines[0].startswith("cesres-ctl: error: "), err
    assert all(word in lines[0] for word in words), lines[0]
    assert "Traceback" not in err + out
    assert [run.run_id for run in registry.list()] == before


def test_on_its_cluster_a_prediction_runs_the_code_root_of_the_run(tmp_path):
    run = a_run(tmp_path)
    assert predict.with_run_root(run, "sandbox", []) == ["root=/home/u/cesres"]
    assert predict.with_run_root(run, "sandbox", ["venv=~/v"]) == ["venv=~/v", "root=/home/u/cesres"]
    assert predict.with_run_root(run, "sandbox", ["root=~/other"]) == ["root=~/other"]
    assert predict.with_run_root(run, "dragon2", []) == []
