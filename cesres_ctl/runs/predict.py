"""`cesres-ctl predict`: classify snippets with a trained run's weights, as a run of its own.

The real program predicts in a batch job the way it evaluates: with `no_loop: True` it builds no
trainer, loads the weights (`CONFIG.load_model`, else `serialization_dir/no_loop_weight_file`) and,
unless `no_eval`, runs allennlp's `evaluate` on `CONFIG.evaluation`, which writes `test_results.txt`
and `predictions.txt` (one JSON line per batch: `probs`, one row per snippet over the padded labels
namespace, `@@PADDING@@` and `@@UNKNOWN@@` first, then `MODEL.labels` in order). Its reader keeps only
the snippets that hold exactly one label marker followed by a label, so every snippet is sent with a
placeholder label (the first of the run's labels): the metrics of a prediction mean nothing, its
`predictions.txt` is the answer.

A prediction is a run of its own (playbooks/train.yml, roles/cesres_job): the run's exact config with
CONFIG rewritten for prediction, the snippets as its `evaluation` input and the trained weights as its
`weights` input: the run's `results/best.th` on the cluster (copied into the store there), or the
local fetched copy, sent once (the store keeps one copy per content).
"""

import hashlib
import json
import re
import shlex
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path, PurePosixPath
from typing import Any

from cesres_ctl import inputs, paths, rules
from cesres_ctl.errors import CesresError
from cesres_ctl.runs import cluster as clusters
from cesres_ctl.runs import config as configs
from cesres_ctl.runs import spec
from cesres_ctl.runs.registry import Run
from cesres_ctl.runs.submit import Prepared, resolve_resources

SNIPPETS_INPUT = "evaluation.txt"
WEIGHTS_INPUT = "weights.th"
SNIPPETS_PATH = f"{rules.RUN_SUBDIR}/{rules.RUN_INPUTS_DIR}/{SNIPPETS_INPUT}"
WEIGHTS_PATH = f"{rules.RUN_SUBDIR}/{rules.RUN_INPUTS_DIR}/{WEIGHTS_INPUT}"
WEIGHTS_FILE = "best.th"
PREDICTIONS_FILE = "predictions.txt"
# A multi-label model predicts every label whose probability is over this (as the real program's
# interpreter does); a single-label model predicts its most probable label.
THRESHOLD = 0.5
_SEP = "@@cesres-predict@@"


@dataclass(frozen=True)
class Reader:
    """How the run's reader cuts a data file: READER.snippet_splitter and READER.label_splitter."""

    snippet_splitter: str = "\n$$$\n"
    label_splitter: str = " $x$ "


@dataclass(frozen=True)
class Model:
    """What a prediction's output means: the run's labels, in order, and whether it is multi-label."""

    labels: tuple[str, ...]
    multi_label: bool
    reader: Reader


@dataclass(frozen=True)
class Prediction:
    index: int  # 1-based, in the order of the snippets file
    snippet: str
    labels: tuple[str, ...]
    probabilities: dict[str, float]

    def to_dict(self) -> dict[str, Any]:
        return {
            "index": self.index,
            "snippet": self.snippet,
            "labels": list(self.labels),
            "probabilities": self.probabilities,
        }


# ---------------------------------------------------------------------------------------------------
# Pure parts: the config, the snippets, the predictions


def model_of(data: dict[str, Any], where: str) -> Model:
    """The labels, multi_label and reader settings of a run's config (as the model reads it)."""
    for section in ("READER", "MODEL", "CONFIG"):
        if not isinstance(data.get(section) or {}, dict):
            raise CesresError(f"{where}: section {section} is not a mapping")
    model = data.get("MODEL") or {}
    labels = model.get("labels")
    if not isinstance(labels, list) or not labels or not all(isinstance(x, str) and x for x in labels):
        raise CesresError(f"{where}: MODEL.labels is not a non-empty list of label names")
    reader = data.get("READER") or {}
    snippet_splitter = reader.get("snippet_splitter", Reader.snippet_splitter)
    label_splitter = reader.get("label_splitter", Reader.label_splitter)
    if not isinstance(snippet_splitter, str) or not snippet_splitter.strip():
        raise CesresError(f"{where}: READER.snippet_splitter must be a non-blank string")
    if not isinstance(label_splitter, str) or not label_splitter.strip():
        raise CesresError(f"{where}: READER.label_splitter must be a non-blank string")
    return Model(tuple(labels), model.get("multi_label") is True, Reader(snippet_splitter, label_splitter))


def parse_config(text: str, where: str) -> dict[str, Any]:
    data = inputs.load_yaml(text, where)
    if not isinstance(data, dict) or not all(section in data for section in configs.SECTIONS):
        raise CesresError(f"{where} is not a CESReS config (sections {', '.join(configs.SECTIONS)})")
    for section in configs.SECTIONS:
        if data[section] is None:
            data[section] = {}
    return data


def prediction_config(run_config: str, *, gpus: int, where: str) -> tuple[dict[str, Any], str]:
    """The run's config (as its model read it) rewritten to predict: no training, the weights and the
    snippets from the prediction's inputs, the outputs in its results. The model sections are untouched."""
    data = parse_config(run_config, where)
    model_of(data, where)
    conf = data["CONFIG"]
    # Not read with no_loop; their files are not staged in a prediction.
    for key in ("training", "validation", "no_loop_weight_file"):
        conf.pop(key, None)
    conf.update(
        {
            "no_loop": True,
            "no_eval": False,
            "predict": False,
            "gui": False,
            "evaluation": SNIPPETS_PATH,
            # With no_loop the real program loads CONFIG.load_model when the file sets it.
            "load_model": WEIGHTS_PATH,
            "serialization_dir": rules.SCRATCH_RESULTS,
            # The only devices the real program handles, as the job's resources give them.
            "device": "cuda" if gpus > 0 else "cpu",
        }
    )
    header = f"# CESReS configuration of a cesres-ctl prediction, rewritten from the config of {where}\n"
    return data, configs.dump(data, header)


def is_prediction_config(data: dict[str, Any]) -> bool:
    conf = data.get("CONFIG") or {}
    return isinstance(conf, dict) and conf.get("no_loop") is True and conf.get("load_model") == WEIGHTS_PATH


def read_snippets_file(path: Path) -> str:
    """The snippets file's text; every problem is one line."""
    text = inputs.read_text(path, "snippets file")
    if not text.strip():
        raise CesresError(f"snippets file {path} is empty: give Python snippets separated by lines $$$")
    return text


def split_snippets(text: str, reader: Reader) -> list[str]:
    """The snippets of a user's file: cut by the run's snippet splitter (the last one may lack it); a
    label marker and what follows it (a labelled data file) are left out; blank parts are no snippets."""
    # The splitter's own text is cut where its line breaks surround it, each break shared with a neighbour:
    # two separator lines in a row, or one at the very start or end of the file, are separators too (a
    # file of separators alone holds no snippet).
    splitter = reader.snippet_splitter
    core = splitter.strip("\n")
    before, after = splitter.split(core, 1)
    cut = re.compile(f"(?<={re.escape(before)}){re.escape(core)}(?={re.escape(after)})")
    snippets = []
    for part in cut.split("\n" + text.replace("\r\n", "\n") + "\n"):
        code = part.split(reader.label_splitter, 1)[0].strip()
        if code:
            snippets.append(code)
    return snippets


def snippets_data(snippets: list[str], model: Model) -> str:
    """The data file the program classifies: each snippet with a placeholder label (the real reader drops
    a snippet without one), read back by the real reader's rules to prove that nothing is dropped."""
    reader = model.reader
    text = "".join(f"{code}\n{reader.label_splitter}{model.labels[0]}{reader.snippet_splitter}" for code in snippets)
    read = read_data(text, reader)
    if read != [code.strip() for code in snippets]:
        bad = next(
            (i for i, (a, b) in enumerate(zip(read, snippets, strict=False), 1) if a != b.strip()), len(read) + 1
        )
        raise CesresError(
            f"snippet {bad} cannot be sent as the run's reader cuts data (it holds the snippet splitter "
            f"{reader.snippet_splitter!r} or the label marker {reader.label_splitter!r})"
        )
    return text


def read_data(text: str, reader: Reader) -> list[str]:
    """The snippets the real reader reads from a data file: the part after the last splitter is dropped,
    each example is stripped and must split into exactly code and label on the label marker."""
    codes = []
    for example in text.split(reader.snippet_splitter)[:-1]:
        pieces = example.strip().split(reader.label_splitter)
        if len(pieces) == 2:
            codes.append(pieces[0].strip())
    return codes


def parse_predictions(text: str, model: Model, snippets: list[str]) -> list[Prediction]:
    """predictions.txt (one JSON object per batch, `probs`: rows over the padded labels namespace) as one
    prediction per snippet, in order."""
    rows: list[Any] = []
    for number, line in enumerate(text.splitlines(), 1):
        if not line.strip():
            continue
        try:
            batch = json.loads(line)
        except ValueError:
            raise CesresError(f"{PREDICTIONS_FILE} line {number} is not JSON") from None
        probs = batch.get("probs") if isinstance(batch, dict) else None
        if not isinstance(probs, list):
            raise CesresError(f"{PREDICTIONS_FILE} line {number} has no list 'probs'")
        rows.extend(probs)
    if len(rows) != len(snippets):
        raise CesresError(f"{PREDICTIONS_FILE} holds {len(rows)} prediction(s) for {len(snippets)} snippet(s)")
    width = len(model.labels) + configs.LABEL_PADDING
    predictions = []
    for index, (row, code) in enumerate(zip(rows, snippets, strict=True), 1):
        if (
            not isinstance(row, list)
            or len(row) != width
            or not all(isinstance(v, int | float) and not isinstance(v, bool) for v in row)
        ):
            raise CesresError(
                f"{PREDICTIONS_FILE}: prediction {index} is not {width} numbers "
                f"({len(model.labels)} labels + {configs.LABEL_PADDING} padding entries)"
            )
        probabilities = {label: float(p) for label, p in zip(model.labels, row[configs.LABEL_PADDING :], strict=True)}
        if model.multi_label:
            chosen = tuple(label for label, p in probabilities.items() if p > THRESHOLD)
        else:
            chosen = (max(probabilities, key=lambda label: probabilities[label]),)
        predictions.append(Prediction(index, code, chosen, probabilities))
    return predictions


def check_prediction(local: Path, run_id: str) -> dict[str, Any]:
    """The fetched config of a prediction run; any other run is refused in one line."""
    config_path = local / "config.yaml"
    try:
        data = parse_config(config_path.read_text(encoding="utf-8"), str(config_path))
    except (OSError, UnicodeDecodeError):
        raise CesresError(f"{run_id} has no config.yaml in {local}: fetch it again (cesres-ctl fetch)") from None
    if not is_prediction_config(data):
        raise CesresError(f"{run_id} is not a prediction run (see cesres-ctl predict RUN SNIPPETS)")
    return data


def load_results(local: Path, run_id: str) -> tuple[Model, list[Prediction]]:
    """A fetched prediction run's predictions: its config, its snippets and its predictions.txt."""
    model = model_of(check_prediction(local, run_id), str(local / "config.yaml"))
    try:
        snippets = read_data((local / "inputs" / SNIPPETS_INPUT).read_text(encoding="utf-8"), model.reader)
        text = (local / "results" / PREDICTIONS_FILE).read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        raise CesresError(f"{run_id}: cannot read its fetched snippets or predictions in {local}: {exc}") from None
    return model, parse_predictions(text, model, snippets)


# ---------------------------------------------------------------------------------------------------
# Where the weights and the config come from


@dataclass(frozen=True)
class Source:
    config_text: str  # the run's config.yaml, as its model read it
    weights: configs.DataInput
    where: str  # for messages: the run and where its weights are


def remote_source_script(run: Run) -> str:
    """One ssh call: the run's best.th exists (non-empty), then its config.yaml."""
    directory = shlex.quote(run.remote_dir)
    return (
        f"cd {directory} 2>/dev/null && test -s results/{WEIGHTS_FILE} && test -r config.yaml "
        f"&& echo {_SEP} && cat config.yaml; true"
    )


def parse_remote_source(output: str) -> str | None:
    head, sep, config_text = output.partition(_SEP + "\n")
    return config_text if sep and not head.strip() else None


def no_weights_reason(run: Run, state: str) -> str | None:
    """Why a run has no best.th to predict with, from its job's state (None: it completed)."""
    if state == "COMPLETED":
        return None
    if state in rules.TERMINAL_STATES:
        return (
            f"run {run.run_id} has no best.th to predict with: its job {run.job_id} ended {state} "
            f"(see cesres-ctl logs {run.run_id})"
        )
    return (
        f"run {run.run_id} has no best.th to predict with yet: its job {run.job_id} is {state} "
        f"(wait for it: cesres-ctl status {run.run_id})"
    )


def locate(run: Run, target: str, ask_cluster: Callable[[str], str]) -> Source:
    """The run's weights and config: on its cluster when the prediction runs there (nothing is sent),
    else the local fetched copy (sent once). ask_cluster runs a script on the run's cluster."""
    local = Path(run.local_dir) if run.local_dir else None
    local_weights = local / "results" / WEIGHTS_FILE if local is not None else None
    local_config = local / "config.yaml" if local is not None else None
    if target == run.cluster:
        config_text = parse_remote_source(ask_cluster(remote_source_script(run)))
        if config_text is not None:
            weights_path = f"{run.remote_dir}/results/{WEIGHTS_FILE}"
            configs.check_text(weights_path, "the run's weights path")
            weights = configs.DataInput("weights", weights_path, None, weights_path, WEIGHTS_INPUT, None)
            return Source(config_text, weights, f"{run.cluster}:{run.run_id}")
    have_local = local_weights is not None and local_weights.is_file() and local_weights.stat().st_size > 0
    if not have_local or local_config is None or not local_config.is_file():
        if target == run.cluster:
            raise CesresError(
                f"run {run.run_id} has no best.th to predict with: none in {run.cluster}:{run.remote_dir}/results "
                "and no fetched copy"
            )
        raise CesresError(
            f"run {run.run_id} (on {run.cluster}) has no fetched best.th to send to {target}: "
            f"fetch it first (cesres-ctl fetch {run.run_id})"
        )
    assert local_weights is not None
    try:
        config_text = local_config.read_text(encoding="utf-8")
        digest = rules.file_sha256(local_weights)
    except (OSError, UnicodeDecodeError) as exc:
        raise CesresError(f"cannot read the fetched results of {run.run_id} in {local}: {exc}") from None
    path = local_weights.resolve()
    configs.check_text(str(path), "the fetched weights path")
    weights = configs.DataInput("weights", str(local_weights), path, None, WEIGHTS_INPUT, digest)
    return Source(config_text, weights, f"{run.cluster}:{run.run_id}")


def with_run_root(run: Run, target: str, settings: list[str]) -> list[str]:
    """On the run's own cluster the prediction runs the code that trained it: the run's root (its run
    directory is <root>/runs/<run id>), unless --set root= says otherwise."""
    keys = {item.partition("=")[0].strip().removeprefix("cesres_job_") for item in settings}
    if target != run.cluster or "root" in keys:
        return settings
    return [*settings, f"root={PurePosixPath(run.remote_dir).parent.parent}"]


def default_name(run: Run) -> str:
    # A prefix, not a suffix: `<name>-predict-…` would make the run's name a prefix of two run ids, and
    # `RUN` (a name or an id prefix) ambiguous in every command.
    return f"predict-{run.name[:32]}"


def keep_snippets(text: str) -> Path:
    """The data file sent, kept by content in the state directory (a local input must stay a file)."""
    digest = hashlib.sha256(text.encode("utf-8")).hexdigest()
    directory = paths.state_dir() / "predict"
    directory.mkdir(mode=0o700, exist_ok=True)
    target = directory / f"{digest}.txt"
    if not target.is_file():
        partial = directory / f"{digest}.partial"
        partial.write_text(text, encoding="utf-8")
        partial.replace(target)
    return target


def prepare(
    run: Run,
    snippets_path: Path,
    snippets_text: str,
    source: Source,
    *,
    target: clusters.Cluster,
    overrides: dict[str, Any],
    name: str | None,
    new: bool,
    settings: list[str],
) -> Prepared:
    """Every check and file of a prediction run that needs no more ssh, as train's prepare."""
    resources = resolve_resources(target, overrides)
    data, rewritten = prediction_config(source.config_text, gpus=resources.gpus, where=f"run {run.run_id}")
    model = model_of(data, f"run {run.run_id}")
    snippets = split_snippets(snippets_text, model.reader)
    if not snippets:
        raise CesresError(f"snippets file {snippets_path} holds no snippet (only blank parts between separators)")
    data_file = keep_snippets(snippets_data(snippets, model))
    sent = configs.DataInput(
        "evaluation",
        str(snippets_path),
        data_file,
        None,
        SNIPPETS_INPUT,
        hashlib.sha256(data_file.read_bytes()).hexdigest(),
    )
    run_config = configs.RunConfig(
        path=snippets_path.resolve(),
        original_text=source.config_text,
        data=data,
        inputs=(sent, source.weights),
        rewritten_text=rewritten,
        models=configs.model_ids(data, snippets_path),
    )
    run_spec = spec.RunSpec(
        cluster=target.name,
        name=rules.check_run_name(name) if name is not None else default_name(run),
        config=run_config,
        resources=resources,
        nonce=spec.new_nonce() if new else "",
        settings=spec.parse_settings(with_run_root(run, target.name, settings)),
    )
    run_spec.extravars()
    return Prepared(cluster=target, spec=run_spec)
