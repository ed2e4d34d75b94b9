#!/usr/bin/env python3
"""cesres-mini: a small, honest stand-in for the CESReS code classifier.

Same command line, YAML configuration sections, data format and output layout as the real
``cesres_graphcodebert_model.py`` (GraphCodeBERT + AllenNLP), but the model is a small multi-layer
perceptron over hashed bags of code-token n-grams, trained with numpy on the CPU.
See README.md for what is the same and what differs.
"""

from __future__ import annotations

import argparse
import datetime
import io
import itertools
import json
import os
import re
import resource
import secrets
import signal
import sys
import time
import warnings
import zlib
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, NoReturn

# The matrices are tiny: multi-threaded BLAS only adds overhead (about 10x slower on 2 cores).
# Respect explicit settings from the environment (e.g. a job script), default to one thread.
for _var in ("OPENBLAS_NUM_THREADS", "OMP_NUM_THREADS", "MKL_NUM_THREADS"):
    os.environ.setdefault(_var, "1")
# cesres-mini uses transformers' tokenizers and configs only: its warning that no torch was found is noise.
os.environ.setdefault("TRANSFORMERS_VERBOSITY", "error")

try:
    # As the real program, which imports GitPython through transform_code_to_df -> inspect4py: GitPython
    # looks for a git binary at import and raises ImportError without one (unless GIT_PYTHON_REFRESH=quiet).
    import git  # noqa: F401
    import numpy as np
    import yaml
    from tabulate import tabulate
except ImportError as _exc:  # pragma: no cover - depends on the environment
    _detail = str(_exc).strip().splitlines()[0] if str(_exc).strip() else ""
    sys.stderr.write(
        f"cesres-mini: error: cannot import {_exc.name or 'a Python package'!r} ({_detail}): load the "
        "SciPy-bundle module (numpy) and install installation/CECI_requirements.txt in the virtual environment\n"
    )
    raise SystemExit(1) from None

PROG = "cesres-mini"
SECTIONS = ("VOCABULARY", "READER", "MODEL", "TRAINER", "INTERPRETER", "CONFIG")

# The real program passes READER, MODEL and TRAINER to these calls as keyword arguments, and MODEL's
# encoder, classification_head, accuracy and loss (and the head's activation) to create_parameter, whose
# tables splat their arg and kwargs into the last three: a key a call does not take is a TypeError once
# the program runs. name -> [its parameters in order, how many have no default, how many may be given by
# position (None: all)]. The same table, with the source lines, is cesres_ctl/runs/real_program.py of
# cesres-ctl; its tests/unit/test_config_keys.py compares the two and derives them from the real source.
REAL_CALLS = {
    "CodeReader.__init__": [
        [
            "huggingface_model",
            "snippet_splitter",
            "label_splitter",
            "multi_labels",
            "part_graph",
            "compiled_language",
            "kwargs_tokenizer",
            "kwargs_indexer",
            "debug",
        ],
        0,
        None,
    ],
    "ClassificationEmbedderModel.__init__": [
        [
            "voc",
            "labels",
            "huggingface_model",
            "kwargs_embedder",
            "embedding_size",
            "encoder",
            "classification_head",
            "accuracy",
            "loss",
            "multi_label",
            "debug",
        ],
        1,
        None,
    ],
    "build_trainer": [
        [
            "model",
            "serialization_dir",
            "train_loader",
            "validation_loader",
            "num_epochs",
            "validation_metric",
            "patience",
            "learning_rate",
            "kwargs_optimizer",
        ],
        4,
        None,
    ],
    "create_parameter": [["param_type", "name", "arg", "kwargs"], 2, None],
    "construct_sequential_head": [["number", "hidden_sizes", "num_labels", "activation", "norm"], 3, None],
    "Linear.__init__": [["in_features", "out_features", "bias", "device", "dtype"], 2, None],
    "BertPooler.__init__": [
        [
            "pretrained_model",
            "override_weights_file",
            "override_weights_strip_prefix",
            "load_weights",
            "requires_grad",
            "dropout",
            "transformer_kwargs",
        ],
        1,
        1,
    ],
    "HuggingfaceAdamWOptimizer.__init__": [
        ["model_parameters", "parameter_groups", "lr", "betas", "eps", "weight_decay", "correct_bias"],
        1,
        None,
    ],
}
# Each section's call, and the values the real program passes by position before the section's keys.
SECTION_CALLS = {
    "READER": ("CodeReader.__init__", 0),
    "MODEL": ("ClassificationEmbedderModel.__init__", 1),
    "TRAINER": ("build_trainer", 5),
}
# create_parameter's names, and the call each one passes *arg, **kwargs to (None: it ignores them).
PARAMETER_CALLS = {
    "encoder": {"cls_label": None, "bert_pooler": "BertPooler.__init__"},
    "accuracy": {"categorical_accuracy": None},
    "activation": {"gelu": None, "leaky_relu": None, "relu": None},
    "classification_head": {"simple": "Linear.__init__", "mult_dense": "construct_sequential_head"},
    "loss": {"cross_entropy": None, "multilabel_soft_margin_loss": None},
}
# The keys the real program reads in the other sections: it ignores any other, silently (cesres-mini notes it).
KEYS_READ = {
    "VOCABULARY": {"huggingface_model"},
    "INTERPRETER": {"captum", "kwargs"},
    "CONFIG": {
        "predict",
        "no_loop",
        "no_eval",
        "gui",
        "model",
        "load_model",
        "training",
        "validation",
        "evaluation",
        "random_seed",
        "serialization_dir",
        "batch_size",
        "validation_batch_size",
        "evaluation_batch_size",
        "loops",
        "config",
        "device",
        "no_loop_weight_file",
    },
}
# Keys the real program takes that have no effect in cesres-mini (a note says so).
KEYS_COMPAT = {
    "READER": {"compiled_language", "kwargs_tokenizer", "kwargs_indexer", "debug"},
    "MODEL": {"kwargs_embedder", "debug"},
    "INTERPRETER": {"captum", "kwargs"},
    "CONFIG": {"model", "config"},
}
# cesres-mini's own featurizer: hashed code-token n-grams. Not in the config, where the real program
# would fail on a key of its own.
HASH_SIZE = 4096
NGRAM = 2
# argparse destinations that the real program copies into CONFIG when the file lacks them.
CLI_KEYS = (
    "training",
    "validation",
    "evaluation",
    "serialization_dir",
    "batch_size",
    "validation_batch_size",
    "evaluation_batch_size",
    "loops",
    "device",
    "random_seed",
    "no_loop",
    "no_eval",
    "predict",
    "gui",
    "load_model",
    "model",
)
# The model the real program loads where the config names none (its -m default, its classes' defaults).
DEFAULT_MODEL = "Enoch/graphcodebert-py"
# The real vocabulary pads the "labels" namespace with two entries (@@PADDING@@, @@UNKNOWN@@): the
# classification head must output this many values more than there are labels.
LABEL_PADDING = 2
EXIT_OK, EXIT_RUNTIME, EXIT_USAGE = 0, 1, 2


class UsageError(Exception):
    """Bad command line or configuration (exit code 2)."""


class RunError(Exception):
    """Failure while reading data, training or writing results (exit code 1)."""


def say(msg: str) -> None:
    print(msg, flush=True)


def note(msg: str) -> None:
    print(f"{PROG}: note: {msg}", flush=True)


# ======================================================================================================
# Command line


class _Parser(argparse.ArgumentParser):
    def error(self, message: str) -> NoReturn:
        sys.stderr.write(f"{PROG}: error: {message} (see --help)\n")
        raise SystemExit(EXIT_USAGE)


def build_parser() -> argparse.ArgumentParser:
    p = _Parser(
        prog="cesres_graphcodebert_model.py",
        description="cesres-mini: train and evaluate a small multi-label classifier of Python code snippets "
        "(stand-in for CESReS). Snippets are separated by '\\n$$$\\n'; each one is the code followed by "
        "' $x$ ' and its labels separated by ' ; '. Command-line values override the configuration file.",
    )
    add = p.add_argument
    add(
        "-c",
        "--config",
        help="YAML configuration file (sections VOCABULARY, READER, MODEL, TRAINER, INTERPRETER, CONFIG)",
    )
    add("-t", "--training", "--train", dest="training", help="training data file (CONFIG.training)")
    add("-v", "--validation", help="validation data file (CONFIG.validation)")
    add("-e", "--evaluation", help="evaluation (test) data file (CONFIG.evaluation)")
    add("-s", "--serialization_dir", help="output directory (CONFIG.serialization_dir)")
    add("-b", "--batch_size", type=int, help="training batch size (CONFIG.batch_size)")
    add("-vb", "--validation_batch_size", type=int, help="validation batch size (default: batch size)")
    add("-eb", "--evaluation_batch_size", type=int, help="evaluation batch size (default: batch size)")
    add("-l", "--loops", type=int, help="number of training epochs (CONFIG.loops)")
    add("-d", "--device", help="cpu, cuda or cuda:N; accepted and logged, computation is always numpy on CPU")
    add(
        "-r",
        "--random_seed",
        type=int,
        nargs="?",
        const=42,
        help="seed for reproducible results (-r alone means 42; default: a random seed, logged)",
    )
    add(
        "-n",
        "--no_loop",
        action="store_true",
        default=None,
        help="do not train: load the weights from --load_model or SERIALIZATION_DIR/best.th (as the real model)",
    )
    add(
        "-ne",
        "--no_eval",
        action="store_true",
        default=None,
        help="skip the evaluation on the evaluation set",
    )
    add(
        "-p",
        "--predict",
        action="store_true",
        default=None,
        help="interactive prediction loop on stdin after training/evaluation (EOF fails, as in the real program)",
    )
    add(
        "-g",
        "--gui",
        action="store_true",
        default=None,
        help="GUI server mode (not available in cesres-mini)",
    )
    add(
        "-m",
        "--model",
        help=f"Hugging Face model of the vocabulary when VOCABULARY lacks one (default {DEFAULT_MODEL})",
    )
    add("-lm", "--load_model", help="weights file used with --no_loop (default: SERIALIZATION_DIR/best.th)")
    return p


# ======================================================================================================
# Configuration


@dataclass
class Settings:
    config_path: str | None
    training: str | None
    validation: str | None
    evaluation: str | None
    serialization_dir: str
    batch_size: int
    validation_batch_size: int
    evaluation_batch_size: int
    loops: int
    device: str
    random_seed: int
    seed_given: bool
    no_loop: bool
    no_eval: bool
    predict: bool
    load_model: str
    snippet_splitter: str
    label_splitter: str
    multi_labels: str | None
    max_tokens: int
    hash_size: int
    ngram: int
    labels: list[str]
    multi_label: bool
    embedding_size: int
    encoder: str
    head_sizes: list[int]
    activation: str
    use_accuracy: bool
    learning_rate: float
    patience: int | None
    metric_sign: int
    metric_name: str
    weight_decay: float
    betas: tuple[float, float]
    eps: float
    # Hugging Face model ids, loaded as the real program loads them: vocabulary, reader, model, encoder.
    models: dict[str, str] = field(default_factory=dict)
    # The reader's pretrained tokenizer (set once the models are loaded): its sub-word tokens are features.
    subword: Any = None
    effective: dict[str, Any] = field(default_factory=dict)


def _section(raw: dict[str, Any], name: str) -> dict[str, Any]:
    sec = raw.get(name)
    if sec is None:
        return {}
    if not isinstance(sec, dict):
        raise UsageError(f"configuration section {name} must be a mapping, got {type(sec).__name__}")
    return sec


def load_config(path: str | None) -> dict[str, dict[str, Any]]:
    if path is None:
        return {name: {} for name in SECTIONS}
    p = Path(path)
    if not p.is_file():
        raise UsageError(f"configuration file not found: {path}")
    try:
        raw = yaml.safe_load(p.read_text(encoding="utf-8"))
    except yaml.YAMLError as exc:
        where = getattr(exc, "problem_mark", None)
        at = f" (line {where.line + 1}, column {where.column + 1})" if where is not None else ""
        problem = getattr(exc, "problem", None) or str(exc).splitlines()[0]
        raise UsageError(f"malformed YAML in {path}{at}: {problem}") from None
    except (OSError, UnicodeDecodeError) as exc:
        raise UsageError(f"cannot read configuration file {path}: {exc}") from None
    if not isinstance(raw, dict):
        raise UsageError(f"configuration file {path} must be a YAML mapping of sections {', '.join(SECTIONS)}")
    missing = [s for s in SECTIONS if s not in raw]
    if missing:
        raise UsageError(
            f"configuration file {path} lacks section(s) {', '.join(missing)} "
            f"(all of {', '.join(SECTIONS)} must be present; they may be empty)"
        )
    for name in raw:
        if name not in SECTIONS:
            note(f"unknown configuration section {name!r} ignored")
    config = {name: _section(raw, name) for name in SECTIONS}
    for name, sec in config.items():
        for key in sec:
            if key in KEYS_COMPAT.get(name, ()):
                note(f"{name}.{key} is accepted for compatibility with CESReS but has no effect in cesres-mini")
            elif name in KEYS_READ and key not in KEYS_READ[name]:
                note(f"unknown key {name}.{key} ignored, as the real program ignores it")
    return config


def _int(value: Any, what: str, minimum: int = 1) -> int:
    if isinstance(value, bool) or not isinstance(value, int):
        if isinstance(value, str) and re.fullmatch(r"[+-]?\d+", value.strip()):
            value = int(value)
        else:
            raise UsageError(f"{what} must be an integer >= {minimum}, got {value!r}")
    if value < minimum:
        raise UsageError(f"{what} must be an integer >= {minimum}, got {value}")
    return value


def _float(value: Any, what: str) -> float:
    if isinstance(value, bool):
        raise UsageError(f"{what} must be a number, got {value!r}")
    try:
        out = float(value)
    except (TypeError, ValueError):
        raise UsageError(f"{what} must be a number, got {value!r}") from None
    if not np.isfinite(out):
        raise UsageError(f"{what} must be finite, got {value!r}")
    return out


def _bool(value: Any, what: str) -> bool:
    if value is None:
        return False
    if not isinstance(value, bool):
        raise UsageError(f"{what} must be true or false, got {value!r}")
    return value


def _str(value: Any, what: str) -> str:
    if not isinstance(value, str) or not value:
        raise UsageError(f"{what} must be a non-empty string, got {value!r}")
    return value


def resolve(args: argparse.Namespace, config: dict[str, dict[str, Any]]) -> Settings:
    cfg = config["CONFIG"]

    # The real program's precedence (cesres_graphcodebert_model.py, after parse_args): a command-line
    # value reaches CONFIG only when the file lacks the key. The configuration file wins.
    def pick(key: str) -> Any:
        return cfg[key] if key in cfg else getattr(args, key)

    def where(key: str) -> str:
        return f"CONFIG.{key}" if key in cfg else f"--{key}"

    for key in CLI_KEYS:
        if key in cfg and getattr(args, key) is not None and getattr(args, key) != cfg[key]:
            note(f"--{key} {getattr(args, key)!r} ignored: the configuration sets CONFIG.{key}: {cfg[key]!r}")

    if _bool(pick("gui"), where("gui")):
        raise UsageError("GUI server mode (-g/--gui, CONFIG.gui) is not available in cesres-mini")
    no_loop = _bool(pick("no_loop"), where("no_loop"))
    no_eval = _bool(pick("no_eval"), where("no_eval"))
    predict = _bool(pick("predict"), where("predict"))

    def path(key: str, needed: bool) -> str | None:
        value = pick(key)
        if value is None:
            if needed:
                flag = {"training": "-t", "validation": "-v", "evaluation": "-e", "serialization_dir": "-s"}[key]
                raise UsageError(f"no {key} path: set CONFIG.{key} in the configuration or give {flag}")
            return None
        return _str(value, where(key))

    training = path("training", not no_loop)
    validation = path("validation", not no_loop)
    evaluation = path("evaluation", not no_eval)
    serialization_dir = path("serialization_dir", True)
    assert serialization_dir is not None

    batch_size = _int(pick("batch_size") if pick("batch_size") is not None else 8, where("batch_size"))
    vbs = pick("validation_batch_size")
    ebs = pick("evaluation_batch_size")
    vbs = batch_size if vbs is None else _int(vbs, where("validation_batch_size"))
    ebs = batch_size if ebs is None else _int(ebs, where("evaluation_batch_size"))
    loops = _int(pick("loops") if pick("loops") is not None else 1, where("loops"))
    device = _str(pick("device") or "cpu", where("device"))
    if device not in ("cpu", "cuda"):
        # The real model moves itself to the GPU only for exactly "cuda" while forward() moves its
        # inputs to cuda:0, so "cuda:N" mixes devices and fails; anything else is no torch device.
        raise UsageError(f"{where('device')} must be cpu or cuda (the real CESReS fails with {device!r})")
    if device == "cuda" and not os.environ.get("CUDA_VISIBLE_DEVICES", "").strip():
        # As torch would: no GPU was allocated to this process (e.g. a job on a partition without GPUs).
        raise RunError(f"{where('device')} is cuda but no GPU is visible (CUDA_VISIBLE_DEVICES is not set)")
    seed = pick("random_seed")
    seed_given = seed is not None
    seed = secrets.randbelow(2**31) if seed is None else _int(seed, where("random_seed"), minimum=0)

    weight_file = _str(cfg.get("no_loop_weight_file", "best.th"), "CONFIG.no_loop_weight_file")
    load_model = pick("load_model")
    if load_model is not None and not no_loop:
        note("load_model is only used with no_loop; the trained weights go to SERIALIZATION_DIR/best.th")
    if load_model is None or not no_loop:
        load_model = str(Path(serialization_dir) / weight_file)

    # ---- READER
    rd = config["READER"]
    snippet_splitter = _str(rd.get("snippet_splitter", "\n$$$\n"), "READER.snippet_splitter")
    label_splitter = _str(rd.get("label_splitter", " $x$ "), "READER.label_splitter")
    multi_labels = rd.get("multi_labels")
    if multi_labels is not None:
        multi_labels = _str(multi_labels, "READER.multi_labels")
    part_graph = rd.get("part_graph", [256, 256])
    if not isinstance(part_graph, list) or not part_graph:
        raise UsageError(f"READER.part_graph must be a list of one or two integers, got {part_graph!r}")
    max_tokens = _int(part_graph[0], "READER.part_graph[0]")

    # ---- MODEL
    md = config["MODEL"]
    if config_given(args) and "labels" not in md:
        raise UsageError("MODEL.labels is required: the list of labels the model predicts")
    labels = md.get("labels", ["success", "failed"])
    if (
        not isinstance(labels, list)
        or not labels
        or not all(isinstance(x, str) and x.strip() == x and x for x in labels)
    ):
        raise UsageError(f"MODEL.labels must be a non-empty list of label names, got {labels!r}")
    if len(set(labels)) != len(labels):
        raise UsageError("MODEL.labels contains duplicates")
    multi_label = _bool(md.get("multi_label", False), "MODEL.multi_label")
    embedding_size = _int(md.get("embedding_size", 768), "MODEL.embedding_size")

    encoder = md.get("encoder") or {"name": "bert_pooler"}
    enc_name = encoder.get("name") if isinstance(encoder, dict) else None
    model_id = _str(md.get("huggingface_model", DEFAULT_MODEL), "MODEL.huggingface_model")
    enc_arg = encoder.get("arg") if isinstance(encoder, dict) else None
    models = {
        "VOCABULARY.huggingface_model": _str(
            config["VOCABULARY"].get("huggingface_model", args.model or DEFAULT_MODEL), "VOCABULARY.huggingface_model"
        ),
        "READER.huggingface_model": _str(rd.get("huggingface_model", DEFAULT_MODEL), "READER.huggingface_model"),
        "MODEL.huggingface_model": model_id,
    }
    if enc_name == "bert_pooler":
        # BertPooler(*arg) loads the whole pretrained model again; the real default arg is MODEL's model.
        models["MODEL.encoder.arg[0]"] = _str(enc_arg[0], "MODEL.encoder.arg[0]") if enc_arg else model_id
    if enc_name not in ("bert_pooler", "cls_label"):
        raise UsageError(f"MODEL.encoder.name must be bert_pooler or cls_label, got {enc_name!r}")

    head = md.get("classification_head") or {"name": "simple"}
    if not isinstance(head, dict):
        raise UsageError("MODEL.classification_head must be a mapping with name, arg, kwargs")
    head_kwargs = head.get("kwargs") or {}
    head_arg = head.get("arg") or []
    if not isinstance(head_kwargs, dict) or not isinstance(head_arg, list):
        raise UsageError("MODEL.classification_head: arg must be a list and kwargs a mapping")
    activation = "gelu"
    outputs = len(labels) + LABEL_PADDING
    out_index = {"simple": 1, "mult_dense": 2}.get(head.get("name"))
    if out_index is not None and len(head_arg) > out_index:
        size = _int(head_arg[out_index], f"MODEL.classification_head.arg[{out_index}]")
        if size != outputs:
            raise UsageError(
                f"MODEL.classification_head.arg[{out_index}] is {size} but must be the number of labels + "
                f"{LABEL_PADDING} = {outputs} (the real vocabulary pads the labels namespace)"
            )
    if head.get("name") == "simple":
        head_sizes = [embedding_size]
    elif head.get("name") == "mult_dense":
        if len(head_arg) < 3:
            raise UsageError("MODEL.classification_head mult_dense needs arg [number, hidden_sizes, num_labels]")
        sizes = sequential_head_sizes(head_arg[0], head_arg[1])
        if sizes[0] != embedding_size:
            raise UsageError(
                f"MODEL.classification_head: first hidden size {sizes[0]} != MODEL.embedding_size {embedding_size}"
            )
        head_sizes = sizes
        act = head_kwargs.get("activation") or {"name": "gelu"}
        activation = act.get("name") if isinstance(act, dict) else act
        if activation not in ACTIVATIONS:
            raise UsageError(f"activation must be one of {', '.join(sorted(ACTIVATIONS))}, got {activation!r}")
        if head_kwargs.get("norm"):
            note("classification_head norm (BatchNorm) is not implemented in cesres-mini; ignored")
    else:
        raise UsageError(f"MODEL.classification_head.name must be simple or mult_dense, got {head.get('name')!r}")

    loss = md.get("loss") or {"name": "multilabel_soft_margin_loss" if multi_label else "cross_entropy"}
    loss_name = loss.get("name") if isinstance(loss, dict) else None
    expected = "multilabel_soft_margin_loss" if multi_label else "cross_entropy"
    if loss_name not in ("multilabel_soft_margin_loss", "cross_entropy"):
        raise UsageError(f"MODEL.loss.name must be cross_entropy or multilabel_soft_margin_loss, got {loss_name!r}")
    if loss_name != expected:
        raise UsageError(f"MODEL.loss.name {loss_name} does not fit MODEL.multi_label={multi_label} (use {expected})")
    accuracy = md.get("accuracy")
    use_accuracy = accuracy is not None
    if use_accuracy and multi_label:
        raise UsageError("MODEL.accuracy (categorical_accuracy) is only for single-label models")

    # ---- TRAINER
    tr = config["TRAINER"]
    learning_rate = _float(tr.get("learning_rate", 1e-5), "TRAINER.learning_rate")
    if learning_rate <= 0:
        raise UsageError(f"TRAINER.learning_rate must be > 0, got {learning_rate}")
    patience = tr.get("patience")
    patience = None if patience is None else _int(patience, "TRAINER.patience")
    vm = tr.get("validation_metric", "-loss")
    m = re.fullmatch(r"([+-])(loss|fscore|precision|recall|accuracy)", vm) if isinstance(vm, str) else None
    if m is None:
        raise UsageError(f"TRAINER.validation_metric must be like -loss or +fscore, got {vm!r}")
    if m[2] == "accuracy" and not use_accuracy:
        raise UsageError("TRAINER.validation_metric +accuracy needs MODEL.accuracy")
    opt = tr.get("kwargs_optimizer") or {}
    if not isinstance(opt, dict):
        raise UsageError("TRAINER.kwargs_optimizer must be a mapping")
    if "parameter_groups" in opt:
        note("TRAINER.kwargs_optimizer.parameter_groups has no effect in cesres-mini")
    betas = opt.get("betas", [0.9, 0.999])
    if not isinstance(betas, list) or len(betas) != 2:
        raise UsageError("TRAINER.kwargs_optimizer.betas must be a list of two numbers")
    b1, b2 = (_float(b, "TRAINER.kwargs_optimizer.betas[]") for b in betas)

    settings = Settings(
        config_path=args.config,
        training=training,
        validation=validation,
        evaluation=evaluation,
        serialization_dir=serialization_dir,
        batch_size=batch_size,
        validation_batch_size=vbs,
        evaluation_batch_size=ebs,
        loops=loops,
        device=device,
        random_seed=seed,
        seed_given=seed_given,
        no_loop=no_loop,
        no_eval=no_eval,
        predict=predict,
        load_model=load_model,
        snippet_splitter=snippet_splitter,
        label_splitter=label_splitter,
        multi_labels=multi_labels,
        max_tokens=max_tokens,
        hash_size=HASH_SIZE,
        ngram=NGRAM,
        labels=list(labels),
        multi_label=multi_label,
        embedding_size=embedding_size,
        encoder=enc_name,
        head_sizes=head_sizes,
        activation=activation,
        use_accuracy=use_accuracy,
        learning_rate=learning_rate,
        patience=patience,
        metric_sign=1 if m[1] == "+" else -1,
        metric_name=m[2],
        weight_decay=_float(opt.get("weight_decay", 0.0), "TRAINER.kwargs_optimizer.weight_decay"),
        betas=(b1, b2),
        eps=_float(opt.get("eps", 1e-6), "TRAINER.kwargs_optimizer.eps"),
        models=models,
    )
    effective = {name: dict(sec) for name, sec in config.items()}
    effective["CONFIG"].update({k: getattr(settings, k) for k in CLI_KEYS if hasattr(settings, k)})
    settings.effective = effective
    return settings


def config_given(args: argparse.Namespace) -> bool:
    return args.config is not None


def sequential_head_sizes(number: Any, hidden: Any) -> list[int]:
    """The input and hidden sizes of construct_sequential_head(number, hidden_sizes, …) as the real program
    builds them from one size. It fails on every list: its assert wants len + 1 == number, then its loop
    reads hidden_sizes[number]."""
    layers = _int(number, "MODEL.classification_head.arg[0]", minimum=0)
    if not isinstance(hidden, list):
        return [_int(hidden, "MODEL.classification_head.arg[1]")] * (layers + 1)
    if len(hidden) + 1 != layers:
        raise RunError(
            "AssertionError: You specified different hidden sizes but the number of layers is not coherent. "
            f"Number of layers: {layers}, number of values: {len(hidden)} (MODEL.classification_head.arg)"
        )
    raise RunError("IndexError: list index out of range (MODEL.classification_head.arg[1], at hidden_sizes[number])")


def construct(config: dict[str, dict[str, Any]], no_loop: bool) -> None:
    """Fail where the real program's calls fail on the config's keys, once it builds its reader, model and
    trainer (the trainer only when it trains)."""
    sections = ["READER", "MODEL"] if no_loop else ["READER", "MODEL", "TRAINER"]
    for section in sections:
        name, given = SECTION_CALLS[section]
        call(name, given, config[section], section)
    for kind in ("encoder", "classification_head", "accuracy", "loss"):
        parameter(kind, config["MODEL"].get(kind), f"MODEL.{kind}")
    if not no_loop:
        optimizer = config["TRAINER"].get("kwargs_optimizer") or {}
        call("HuggingfaceAdamWOptimizer.__init__", 1, optimizer, "TRAINER.kwargs_optimizer", fixed=("lr",))


def parameter(kind: str, spec: Any, where: str) -> None:
    """create_parameter(kind, **spec), then the call its name makes with *arg, **kwargs."""
    if spec is None:
        return  # the real default
    if not isinstance(spec, dict):
        raise RunError(f"TypeError: argument after ** must be a mapping, not {type(spec).__name__} ({where})")
    call("create_parameter", 1, spec, where)
    table = PARAMETER_CALLS[kind]
    name = spec["name"]
    if not isinstance(name, str) or name not in table:
        raise RunError(f"WrongParameter: Wrong parameter {kind}. Should be one in the {list(table)} list. ({where})")
    callee = table[name]
    if callee is None:
        return
    arg, kwargs = spec.get("arg", []), spec.get("kwargs", {})
    if not isinstance(arg, list) or not isinstance(kwargs, dict):
        raise RunError(f"TypeError: {where}: *arg needs a list and **kwargs a mapping")
    call(callee, len(arg), kwargs, f"{where}.kwargs")
    if callee == "construct_sequential_head":
        parameter("activation", kwargs.get("activation"), f"{where}.kwargs.activation")


def call(name: str, given: int, keys: Any, where: str, fixed: tuple[str, ...] = ()) -> None:
    """Raise the TypeError Python raises when the real program calls `name` with `given` values by
    position, the keywords `fixed`, then the config's `keys` (the mapping at `where`)."""
    params, required, positional = REAL_CALLS[name]
    limit = len(params) if positional is None else positional
    counted = 1 if name.endswith(".__init__") else 0  # Python counts self in its message
    if given > limit:
        raise RunError(
            f"TypeError: {name}() takes {limit + counted} positional arguments but {given + counted} were given "
            f"({where})"
        )
    for key in keys:
        if key in fixed:
            short = name.removesuffix(".__init__")
            raise RunError(f"TypeError: {short}() got multiple values for keyword argument '{key}' ({where})")
        if key not in params:
            raise RunError(f"TypeError: {name}() got an unexpected keyword argument '{key}' ({where})")
        if params.index(key) < given:
            raise RunError(f"TypeError: {name}() got multiple values for argument '{key}' ({where})")
    missing = [f"'{param}'" for param in params[given:required] if param not in keys]
    if missing:
        plural = "s" if len(missing) > 1 else ""
        raise RunError(
            f"TypeError: {name}() missing {len(missing)} required positional argument{plural}: "
            f"{' and '.join(missing)} ({where})"
        )


# ======================================================================================================
# Data


@dataclass
class Snippet:
    code: str
    labels: list[str]


def read_snippets(path: str, s: Settings, what: str) -> list[Snippet]:
    p = Path(path)
    if not p.is_file():
        raise UsageError(f"{what} data file not found: {path}")
    try:
        text = p.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        raise RunError(f"cannot read {what} data file {path}: {exc}") from None
    text = text.replace("\r\n", "\n")
    parts = text.split(s.snippet_splitter)
    # As the real reader: the part after the last separator is dropped (files end with the separator).
    if parts[-1].strip():
        note(f"{path}: text after the last snippet separator ignored (every snippet must end with it)")
    snippets: list[Snippet] = []
    skipped = 0
    for part in parts[:-1]:
        pieces = part.strip().split(s.label_splitter)
        if len(pieces) != 2 or not pieces[0].strip() or not pieces[1].strip():
            skipped += 1
            continue
        code, label_text = pieces
        if s.multi_labels:
            labels = [x.strip() for x in label_text.split(s.multi_labels) if x.strip()]
        else:
            labels = [label_text.strip()]
        snippets.append(Snippet(code, labels))
    if skipped:
        marker = s.label_splitter.strip()
        note(f"{path}: {skipped} malformed snippet(s) skipped (no single '{marker}' label marker)")
    if not snippets:
        raise RunError(
            f"{what} data file {path} holds no valid snippet (expected code, then "
            f"{s.label_splitter!r} and labels, each snippet ending with {s.snippet_splitter!r})"
        )
    return snippets


TOKEN_RE = re.compile(
    r"""(?P<nl>\n[ \t]*)|[A-Za-z_]\w*|\d+(?:\.\d+)?|"(?:\\.|[^"\\\n])*"|'(?:\\.|[^'\\\n])*'"""
    r"""|==|!=|<=|>=|//|\*\*|\+=|-=|\*=|->|[^\s\w]"""
)
DEF_NAME_RE = re.compile(r"\bdef\s+([A-Za-z_]\w*)")


def tokenize(code: str, max_tokens: int) -> list[str]:
    """Code tokens; names of functions defined in the snippet become <func>, line starts become <indN>."""
    defined = set(DEF_NAME_RE.findall(code))
    out: list[str] = []
    for m in TOKEN_RE.finditer("\n" + code.strip("\n")):
        tok = m.group(0)
        if m.group("nl") is not None:
            width = len(tok[1:].expandtabs(4))
            out.append(f"<ind{width // 4}>")
        elif tok in defined:
            out.append("<func>")
        else:
            out.append(tok)
        if len(out) >= max_tokens:
            break
    return out


def featurize(snippets: list[Snippet], s: Settings) -> np.ndarray:
    """Hashed bag of token n-grams and of the pretrained tokenizer's sub-words (log-scaled counts, L2-normalised)."""
    x = np.zeros((len(snippets), s.hash_size), dtype=np.float64)
    for row, snip in enumerate(snippets):
        toks = tokenize(snip.code, s.max_tokens)
        grams = [" ".join(toks[i : i + n]) for n in range(1, s.ngram + 1) for i in range(len(toks) - n + 1)]
        if s.subword is not None:
            grams += ["\x00" + piece for piece in s.subword.tokenize(snip.code)[: s.max_tokens]]
        for gram in grams:
            x[row, zlib.crc32(gram.encode("utf-8")) % s.hash_size] += 1.0
    x = np.log1p(x)
    norms = np.linalg.norm(x, axis=1, keepdims=True)
    return x / np.where(norms == 0, 1.0, norms)


def encode_labels(snippets: list[Snippet], labels: list[str], s: Settings, what: str) -> np.ndarray:
    index = {lab: i for i, lab in enumerate(labels)}
    y = np.zeros((len(snippets), len(labels)), dtype=np.float64)
    for row, snip in enumerate(snippets):
        if not s.multi_label and len(snip.labels) > 1:
            raise RunError(
                f"{what} data has a snippet with several labels {snip.labels} but MODEL.multi_label is false"
            )
        for lab in snip.labels:
            y[row, index[lab]] = 1.0
    return y


def extend_labels(labels: list[str], datasets: list[list[Snippet]]) -> list[str]:
    seen = set(labels)
    extra = sorted({lab for data in datasets for snip in data for lab in snip.labels} - seen)
    if extra:
        note(f"label(s) found in the data but not in MODEL.labels, added: {', '.join(extra)}")
    return labels + extra


# ======================================================================================================
# Model


def _gelu(z: np.ndarray) -> np.ndarray:
    return 0.5 * z * (1.0 + np.tanh(0.7978845608028654 * (z + 0.044715 * z**3)))


def _gelu_grad(z: np.ndarray) -> np.ndarray:
    k = 0.7978845608028654
    t = np.tanh(k * (z + 0.044715 * z**3))
    return 0.5 * (1.0 + t) + 0.5 * z * (1.0 - t**2) * k * (1.0 + 3 * 0.044715 * z**2)


ACTIVATIONS = {
    "gelu": (_gelu, _gelu_grad),
    "relu": (lambda z: np.maximum(z, 0.0), lambda z: (z > 0).astype(z.dtype)),
    "leaky_relu": (lambda z: np.where(z > 0, z, 0.01 * z), lambda z: np.where(z > 0, 1.0, 0.01)),
    "tanh": (np.tanh, lambda z: 1.0 - np.tanh(z) ** 2),
    "identity": (lambda z: z, np.ones_like),
}


class Net:
    """x -> dense(embedding_size) + pooler activation -> [dense + activation]* -> dense(labels)."""

    def __init__(self, sizes: list[int], activations: list[str], multi_label: bool, rng: np.random.Generator) -> None:
        self.sizes = sizes
        self.activations = activations
        self.multi_label = multi_label
        self.params: list[np.ndarray] = []
        for fan_in, fan_out in itertools.pairwise(sizes):
            self.params.append(rng.normal(0.0, np.sqrt(2.0 / (fan_in + fan_out)), size=(fan_in, fan_out)))
            self.params.append(np.zeros(fan_out))

    def forward(self, x: np.ndarray) -> tuple[np.ndarray, list[tuple[np.ndarray, np.ndarray]]]:
        cache = []
        h = x
        n_layers = len(self.params) // 2
        for layer in range(n_layers):
            w, b = self.params[2 * layer], self.params[2 * layer + 1]
            z = h @ w + b
            cache.append((h, z))
            h = ACTIVATIONS[self.activations[layer]][0](z) if layer < n_layers - 1 else z
        return h, cache

    def probs(self, logits: np.ndarray) -> np.ndarray:
        if self.multi_label:
            return 1.0 / (1.0 + np.exp(-logits))
        e = np.exp(logits - logits.max(axis=1, keepdims=True))
        return e / e.sum(axis=1, keepdims=True)

    def loss(self, logits: np.ndarray, y: np.ndarray) -> tuple[float, np.ndarray]:
        """Mean loss and its gradient w.r.t. the logits."""
        n = logits.shape[0]
        if self.multi_label:  # multilabel_soft_margin_loss: mean binary cross-entropy over labels
            value = np.maximum(logits, 0) - logits * y + np.log1p(np.exp(-np.abs(logits)))
            return float(value.mean()), (self.probs(logits) - y) / y.size
        shifted = logits - logits.max(axis=1, keepdims=True)
        logp = shifted - np.log(np.exp(shifted).sum(axis=1, keepdims=True))
        return float(-(logp * y).sum() / n), (np.exp(logp) - y) / n

    def backward(self, grad: np.ndarray, cache: list[tuple[np.ndarray, np.ndarray]]) -> list[np.ndarray]:
        grads: list[np.ndarray] = [np.empty(0)] * len(self.params)
        for layer in reversed(range(len(cache))):
            h, _ = cache[layer]
            grads[2 * layer] = h.T @ grad
            grads[2 * layer + 1] = grad.sum(axis=0)
            if layer:
                z_prev = cache[layer - 1][1]
                grad = (grad @ self.params[2 * layer].T) * ACTIVATIONS[self.activations[layer - 1]][1](z_prev)
        return grads

    def predict(self, probs: np.ndarray) -> np.ndarray:
        if self.multi_label:
            return (probs > 0.5).astype(np.float64)
        out = np.zeros_like(probs)
        out[np.arange(len(probs)), probs.argmax(axis=1)] = 1.0
        return out


class AdamW:
    def __init__(self, params: list[np.ndarray], s: Settings) -> None:
        self.lr, (self.b1, self.b2), self.eps, self.wd = s.learning_rate, s.betas, s.eps, s.weight_decay
        self.m = [np.zeros_like(p) for p in params]
        self.v = [np.zeros_like(p) for p in params]
        self.t = 0

    def step(self, params: list[np.ndarray], grads: list[np.ndarray]) -> None:
        self.t += 1
        c1, c2 = 1 - self.b1**self.t, 1 - self.b2**self.t
        for p, g, m, v in zip(params, grads, self.m, self.v, strict=True):
            m *= self.b1
            m += (1 - self.b1) * g
            v *= self.b2
            v += (1 - self.b2) * g * g
            p -= self.lr * (m / c1) / (np.sqrt(v / c2) + self.eps)
            if self.wd and p.ndim == 2:
                p -= self.lr * self.wd * p


def build_net(s: Settings, labels: list[str], rng: np.random.Generator) -> Net:
    sizes = [s.hash_size, *s.head_sizes, len(labels)]
    pooler = "tanh" if s.encoder == "bert_pooler" else "identity"
    activations = [pooler] + [s.activation] * (len(s.head_sizes) - 1)
    return Net(sizes, activations, s.multi_label, rng)


def save_weights(path: Path, net: Net, labels: list[str], s: Settings) -> None:
    meta = {
        "format": "cesres-mini/1",
        "labels": labels,
        "sizes": net.sizes,
        "activations": net.activations,
        "multi_label": net.multi_label,
        "hash_size": s.hash_size,
        "ngram": s.ngram,
        "max_tokens": s.max_tokens,
    }
    buf = io.BytesIO()
    arrays = {f"param_{i}": p for i, p in enumerate(net.params)}
    np.savez(buf, meta=np.array(json.dumps(meta)), **arrays)
    path.write_bytes(buf.getvalue())


def load_weights(path: str, s: Settings) -> tuple[Net, list[str]]:
    p = Path(path)
    if not p.is_file():
        raise RunError(f"no_loop is set but there is no weights file {path} (train first, or give -lm)")
    try:
        with np.load(p, allow_pickle=False) as data:
            meta = json.loads(str(data["meta"]))
            params = [data[f"param_{i}"] for i in range(2 * (len(meta["sizes"]) - 1))]
    except (OSError, ValueError, KeyError, json.JSONDecodeError) as exc:
        raise RunError(f"cannot load weights {path} (not a cesres-mini best.th?): {exc}") from None
    for key in ("hash_size", "ngram", "max_tokens"):
        if meta[key] != getattr(s, key):
            note(f"{key}={meta[key]} taken from {path} (this run: {getattr(s, key)})")
            setattr(s, key, meta[key])
    net = Net.__new__(Net)
    net.sizes, net.activations, net.multi_label, net.params = (
        meta["sizes"],
        meta["activations"],
        meta["multi_label"],
        params,
    )
    return net, list(meta["labels"])


# ======================================================================================================
# Training and evaluation


def counts(pred: np.ndarray, y: np.ndarray) -> np.ndarray:
    """Per-label [true positives, predicted positives, gold positives]."""
    return np.stack([(pred * y).sum(axis=0), pred.sum(axis=0), y.sum(axis=0)])


def prf(tp: float, predicted: float, gold: float) -> tuple[float, float, float]:
    precision = tp / predicted if predicted else 0.0
    recall = tp / gold if gold else 0.0
    f1 = 2 * precision * recall / (precision + recall) if precision + recall else 0.0
    return precision, recall, f1


def summarize(loss_sum: float, batches: int, cnt: np.ndarray, correct: int, n: int, s: Settings) -> dict[str, float]:
    precision, recall, fscore = prf(*cnt.sum(axis=1))
    out = {"loss": loss_sum / max(batches, 1), "precision": precision, "recall": recall, "fscore": fscore}
    if s.use_accuracy:
        out["accuracy"] = correct / n
    return out


def run_epoch(
    net: Net,
    x: np.ndarray,
    y: np.ndarray,
    batch: int,
    s: Settings,
    opt: AdamW | None,
    rng: np.random.Generator | None,
) -> tuple[dict[str, float], np.ndarray]:
    order = rng.permutation(len(x)) if rng is not None else np.arange(len(x))
    loss_sum, batches, correct = 0.0, 0, 0
    cnt = np.zeros((3, y.shape[1]))
    all_probs = np.zeros_like(y)
    for start in range(0, len(x), batch):
        idx = order[start : start + batch]
        logits, cache = net.forward(x[idx])
        loss, grad = net.loss(logits, y[idx])
        if not np.isfinite(loss):
            raise RunError("the loss diverged (not finite): lower TRAINER.learning_rate")
        probs = net.probs(logits)
        pred = net.predict(probs)
        all_probs[idx] = probs
        cnt += counts(pred, y[idx])
        correct += int((pred == y[idx]).all(axis=1).sum())
        loss_sum += loss
        batches += 1
        if opt is not None:
            opt.step(net.params, net.backward(grad, cache))
    return summarize(loss_sum, batches, cnt, correct, len(x), s), all_probs


def duration(seconds: float) -> str:
    return str(datetime.timedelta(seconds=seconds))


def write_json(path: Path, data: dict[str, Any]) -> None:
    path.write_text(json.dumps(data, indent=4) + "\n", encoding="utf-8")


def better(value: float, best: float | None, s: Settings) -> bool:
    return best is None or s.metric_sign * value > s.metric_sign * best


def train(s: Settings, out: Path, train_data: list[Snippet], val_data: list[Snippet], labels: list[str]) -> Net:
    rng = np.random.default_rng(s.random_seed)
    x_tr, y_tr = featurize(train_data, s), encode_labels(train_data, labels, s, "training")
    x_va, y_va = featurize(val_data, s), encode_labels(val_data, labels, s, "validation")
    net = build_net(s, labels, rng)
    opt = AdamW(net.params, s)
    n_params = sum(p.size for p in net.params)
    say(
        f"{PROG}: start training: {len(train_data)} training / {len(val_data)} validation snippets, "
        f"{len(labels)} labels, {s.loops} epoch(s), batch size {s.batch_size}, "
        f"learning rate {s.learning_rate:g}, "
        f"layers {net.sizes} ({n_params} parameters), seed {s.random_seed}"
    )
    t0 = time.monotonic()
    best: dict[str, Any] = {}
    best_value: float | None = None
    best_epoch = 0
    since_best = 0
    for epoch in range(s.loops):
        t_epoch = time.monotonic()
        tr_metrics, _ = run_epoch(net, x_tr, y_tr, s.batch_size, s, opt, rng)
        va_metrics, _ = run_epoch(net, x_va, y_va, s.validation_batch_size, s, None, None)
        value = va_metrics[s.metric_name]
        if better(value, best_value, s):
            best_value, best_epoch, since_best = value, epoch, 0
            best = {f"best_validation_{k}": v for k, v in va_metrics.items()}
            save_weights(out / "best.th", net, labels, s)
        else:
            since_best += 1
        mem = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024.0
        metrics: dict[str, Any] = {
            "best_epoch": best_epoch,
            "peak_worker_0_memory_MB": mem,
            "training_duration": duration(time.monotonic() - t0),
            "training_start_epoch": 0,
            "training_epochs": epoch,
            "epoch": epoch,
            **{f"training_{k}": v for k, v in tr_metrics.items()},
            "training_worker_0_memory_MB": mem,
            **{f"validation_{k}": v for k, v in va_metrics.items()},
            **best,
        }
        write_json(out / f"metrics_epoch_{epoch}.json", metrics)
        say(
            f"epoch {epoch + 1}/{s.loops} training_loss={tr_metrics['loss']:.4f} "
            f"validation_loss={va_metrics['loss']:.4f} validation_fscore={va_metrics['fscore']:.4f} "
            f"({time.monotonic() - t_epoch:.2f}s)"
        )
        if s.patience is not None and since_best >= s.patience and epoch + 1 < s.loops:
            note(f"early stopping: no improvement of validation {s.metric_name} for {s.patience} epoch(s)")
            break
    say(
        f"{PROG}: training finished in {time.monotonic() - t0:.2f}s: best epoch {best_epoch} "
        f"(validation {s.metric_name}={best_value:.4f}), weights in {out / 'best.th'}"
    )
    return net


def evaluate(net: Net, labels: list[str], data: list[Snippet], s: Settings, out: Path, path: str) -> dict[str, float]:
    """Evaluate as allennlp.training.util.evaluate does for the real model: the metrics as one JSON object in
    test_results.txt, and the model's output of every batch as one JSON line in predictions.txt."""
    x, y = featurize(data, s), encode_labels(data, labels, s, "evaluation")
    metrics, probs = run_epoch(net, x, y, s.evaluation_batch_size, s, None, None)
    pred = net.predict(probs)
    exact = float((pred == y).all(axis=1).mean())
    cnt = counts(pred, y)
    rows = []
    for i, lab in enumerate(labels):
        p, r, f = prf(*cnt[:, i])
        rows.append([lab, int(cnt[2, i]), int(cnt[1, i]), int(cnt[0, i]), p, r, f])
    results = {**metrics, "exact_match": exact}
    write_json(out / "test_results.txt", results)
    size = s.evaluation_batch_size
    # As allennlp's evaluate writes the real model's output_dict: per batch, "probs" holds one row per snippet
    # over the whole labels namespace, the two padding entries (@@PADDING@@, @@UNKNOWN@@) first, then the
    # labels in order; "loss" is the batch's loss (the real model computes one since the data has labels).
    with (out / "predictions.txt").open("w", encoding="utf-8") as fh:
        for start in range(0, len(data), size):
            batch = probs[start : start + size]
            loss, _ = net.loss(net.forward(x[start : start + size])[0], y[start : start + size])
            rows = [[0.0] * LABEL_PADDING + [round(float(v), 6) for v in row] for row in batch]
            fh.write(json.dumps({"probs": rows, "loss": round(loss, 6)}) + "\n")
    say(f"{PROG}: evaluation of {out / 'best.th'} on {path} ({len(data)} snippets)")
    say(tabulate(rows, headers=["label", "gold", "predicted", "correct", "precision", "recall", "f1"], floatfmt=".4f"))
    return results


def predict_loop(net: Net, labels: list[str], s: Settings) -> None:
    say("Type a code snippet; an empty line twice predicts its labels; a line '$$$' quits.")
    code, last = "", None
    while True:
        try:
            line = input("> ")
        except EOFError:
            # As the real program's input(): at the end of stdin (a batch job's is empty), it fails.
            raise RunError("EOFError: EOF when reading a line (CONFIG.predict reads snippets from stdin)") from None
        if line == "$$$":
            return
        if line == "" and last == "" and code.strip():
            probs = net.probs(net.forward(featurize([Snippet(code, [])], s))[0])[0]
            say("Predicted labels")
            for lab, p in zip(labels, probs, strict=True):
                say(f"\t{lab} -> {p:.4f}")
            code, last = "", None
            continue
        code += line + "\n"
        last = line


# ======================================================================================================


def load_models(s: Settings) -> None:
    """Load the models the config names as the real program does (its first step, before any data):
    from the Hugging Face cache, offline in a job (TRANSFORMERS_OFFLINE=1). An uncached model fails."""
    try:
        from transformers import AutoConfig, AutoTokenizer
    except ImportError as exc:
        raise RunError(f"cannot import transformers ({exc}): install installation/CECI_requirements.txt") from None
    with warnings.catch_warnings():
        # Deprecation notices of the installed huggingface_hub are not errors of the run.
        warnings.simplefilter("ignore", FutureWarning)
        for where, model_id in s.models.items():
            try:
                if where.startswith(("VOCABULARY", "READER")):
                    tokenizer = AutoTokenizer.from_pretrained(model_id)
                    if where.startswith("READER"):
                        s.subword = tokenizer
                else:
                    AutoConfig.from_pretrained(model_id)  # the weights need torch, which cesres-mini does without
            except (OSError, ValueError) as exc:
                detail = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
                raise RunError(
                    f"cannot load model {model_id} ({where}) from the Hugging Face cache: {detail}"
                ) from None
    say(f"{PROG}: models loaded: {', '.join(sorted(set(s.models.values())))}")


def run(argv: list[str] | None) -> int:
    args = build_parser().parse_args(argv)
    config = load_config(args.config)
    s = resolve(args, config)
    load_models(s)
    say(json.dumps(s.effective, indent=4, default=str))
    construct(config, s.no_loop)
    say(
        f"{PROG}: device requested: {s.device}; cesres-mini computes with numpy {np.__version__} on the CPU"
        + ("" if s.device == "cpu" else " (no GPU is used)")
    )
    if "CUDA_VISIBLE_DEVICES" in os.environ:
        say(f"{PROG}: CUDA_VISIBLE_DEVICES={os.environ['CUDA_VISIBLE_DEVICES']}")
    if not s.seed_given:
        note(f"no random_seed given: using {s.random_seed} (pass -r {s.random_seed} to reproduce this run)")

    # Read every data file first, so that input errors come before any output is written.
    train_data = val_data = eval_data = None
    if not s.no_loop:
        assert s.training is not None and s.validation is not None
        train_data = read_snippets(s.training, s, "training")
        val_data = read_snippets(s.validation, s, "validation")
        say(f"{PROG}: {len(train_data)} training and {len(val_data)} validation snippets")
    if not s.no_eval:
        assert s.evaluation is not None
        eval_data = read_snippets(s.evaluation, s, "evaluation")

    if s.no_loop and not Path(s.load_model).is_file():
        raise RunError(f"no_loop is set but there is no weights file {s.load_model} (train first, or give -lm)")

    out = Path(s.serialization_dir)
    if not s.no_loop:
        # The real trainer creates serialization_dir; with no_loop nothing does (see below).
        try:
            out.mkdir(parents=True, exist_ok=True)
        except OSError as exc:
            raise RunError(f"cannot create serialization_dir {out}: {exc}") from None
    elif eval_data is not None and not out.is_dir():
        # With no_loop the real program builds no trainer, and allennlp's evaluate opens
        # serialization_dir/predictions.txt for writing at once: a missing directory fails the run.
        raise RunError(
            f"cannot write {out / 'predictions.txt'}: serialization_dir {out} does not exist "
            "(with no_loop nothing creates it)"
        )

    if train_data is not None and val_data is not None:
        labels = extend_labels(s.labels, [train_data, val_data, eval_data or []])
        # Overwrite policy: results of an earlier run in the same directory are removed, not mixed in.
        for stale in [*out.glob("metrics_epoch_*.json"), out / "test_results.txt", out / "predictions.txt"]:
            stale.unlink(missing_ok=True)
        # Only the files the real program writes: metrics_epoch_N.json, best.th, test_results.txt and
        # predictions.txt (no metrics.json, vocabulary/ or config.json: it has no checkpointer).
        train(s, out, train_data, val_data, labels)
    net, labels = load_weights(s.load_model, s)  # evaluate the best epoch's weights, as the real model does

    if eval_data is not None:
        unknown = sorted({lab for snip in eval_data for lab in snip.labels} - set(labels))
        if unknown:
            raise RunError(f"evaluation data has label(s) the model does not know: {', '.join(unknown)}")
        test = evaluate(net, labels, eval_data, s, out, s.evaluation or "")
        say(json.dumps(test))
    if s.predict:
        predict_loop(net, labels, s)
    say(f"{PROG}: done, results in {out}")
    return EXIT_OK


def _on_sigterm(signum: int, _frame: object) -> None:
    sys.stderr.write(f"{PROG}: error: terminated by signal {signal.Signals(signum).name}\n")
    raise SystemExit(128 + signum)


def main(argv: list[str] | None = None) -> int:
    signal.signal(signal.SIGTERM, _on_sigterm)
    try:
        return run(argv)
    except UsageError as exc:
        sys.stderr.write(f"{PROG}: error: {exc}\n")
        return EXIT_USAGE
    except RunError as exc:
        sys.stderr.write(f"{PROG}: error: {exc}\n")
        return EXIT_RUNTIME
    except KeyboardInterrupt:
        sys.stderr.write(f"{PROG}: error: interrupted\n")
        return 130
    except OSError as exc:
        sys.stderr.write(f"{PROG}: error: {exc.strerror or exc}: {exc.filename or ''}\n")
        return EXIT_RUNTIME
    except Exception as exc:
        if os.environ.get("CESRES_MINI_DEBUG"):
            raise
        msg = str(exc).splitlines()[0] if str(exc) else ""
        sys.stderr.write(
            f"{PROG}: error: internal error {type(exc).__name__}: {msg} (set CESRES_MINI_DEBUG=1 for a traceback)\n"
        )
        return EXIT_RUNTIME


if __name__ == "__main__":
    sys.exit(main())
