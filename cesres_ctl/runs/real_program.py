"""What the real CESReS program accepts in a config, read from its source: the calls to which it passes a
config mapping as keyword arguments (a key they do not take is a TypeError once the job runs), the names
its tables know, the validation metrics allennlp can track, and the keys it only reads (it ignores any
other silently).

Lines: cesres_graphcodebert_model.py of the user's fork (jorgetomaylla21/INGInious-CESReS at af5c2b58);
allennlp 2.10.1 and torch 1.12 by file. tests/unit/test_config_keys.py derives the program's part again
from its source (AST) when the fork's bundle is present; cesres-mini keeps a copy (REAL_CALLS) that the
same test compares with this one.
"""

import difflib
from collections.abc import Iterable
from dataclasses import dataclass


@dataclass(frozen=True)
class Signature:
    """A function the program calls with a config's keys: its parameters in order (none is *args or
    **kwargs), how many of the first have no default, how many may be given by position (None: all)."""

    name: str  # as Python's TypeError names it
    params: tuple[str, ...]
    required: int = 0
    positional: int | None = None


@dataclass(frozen=True)
class Call:
    """How the program calls a Signature: `given` values by position, the keywords `fixed`, then the
    config's mapping as keyword arguments."""

    signature: Signature
    given: int = 0
    fixed: tuple[str, ...] = ()


CODE_READER = Signature(  # lines 243-252
    "CodeReader.__init__",
    (
        "huggingface_model",
        "snippet_splitter",
        "label_splitter",
        "multi_labels",
        "part_graph",
        "compiled_language",
        "kwargs_tokenizer",
        "kwargs_indexer",
        "debug",
    ),
)
MODEL = Signature(  # lines 446-457
    "ClassificationEmbedderModel.__init__",
    (
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
    ),
    required=1,
)
BUILD_TRAINER = Signature(  # lines 709-719; it builds GradientDescentTrainer itself, from fixed arguments (766-775)
    "build_trainer",
    (
        "model",
        "serialization_dir",
        "train_loader",
        "validation_loader",
        "num_epochs",
        "validation_metric",
        "patience",
        "learning_rate",
        "kwargs_optimizer",
    ),
    required=4,
)
CREATE_PARAMETER = Signature("create_parameter", ("param_type", "name", "arg", "kwargs"), required=2)  # line 163
SEQUENTIAL_HEAD = Signature(  # line 88
    "construct_sequential_head", ("number", "hidden_sizes", "num_labels", "activation", "norm"), required=3
)
LINEAR = Signature(  # torch 1.12 torch/nn/modules/linear.py, Linear.__init__
    "Linear.__init__", ("in_features", "out_features", "bias", "device", "dtype"), required=2
)
BERT_POOLER = Signature(  # allennlp 2.10.1 modules/seq2vec_encoders/bert_pooler.py 47-57: the rest is keyword-only
    "BertPooler.__init__",
    (
        "pretrained_model",
        "override_weights_file",
        "override_weights_strip_prefix",
        "load_weights",
        "requires_grad",
        "dropout",
        "transformer_kwargs",
    ),
    required=1,
    positional=1,
)
ADAMW = Signature(  # allennlp 2.10.1 training/optimizers.py 461-470
    "HuggingfaceAdamWOptimizer.__init__",
    ("model_parameters", "parameter_groups", "lr", "betas", "eps", "weight_decay", "correct_bias"),
    required=1,
)

# READER: build_code_reader -> CodeReader(**kwargs_reader) (lines 838, 1336 -> 650). MODEL:
# ClassificationEmbedderModel(voc, **MODEL) (808 through build_model, 1332, 1367). TRAINER:
# build_trainer(model, serialization_dir, train_loader, validation_loader, epochs, **TRAINER) (881, 886).
SECTION_CALLS = {"READER": Call(CODE_READER), "MODEL": Call(MODEL, 1), "TRAINER": Call(BUILD_TRAINER, 5)}
# HuggingfaceAdamWOptimizer(parameters, lr=learning_rate, **kwargs_optimizer) (lines 759-763).
OPTIMIZER_CALL = Call(ADAMW, 1, ("lr",))
# create_parameter("encoder", **MODEL.encoder), and likewise classification_head, accuracy, loss and the
# mult_dense head's activation (lines 492, 504, 511, 525, 117, 125).
PARAMETER_GIVEN = 1
# create_parameter's tables (param_types, lines 70-152): the names of each kind, and the call each one's
# lambda passes *arg and **kwargs to (None: it ignores them). An unknown name raises WrongParameter.
CHOICES: dict[str, dict[str, Signature | None]] = {
    "encoder": {"cls_label": None, "bert_pooler": BERT_POOLER},
    "accuracy": {"categorical_accuracy": None},
    "activation": {"gelu": None, "leaky_relu": None, "relu": None},
    "classification_head": {"simple": LINEAR, "mult_dense": SEQUENTIAL_HEAD},
    "loss": {"cross_entropy": None, "multilabel_soft_margin_loss": None},
}
# What allennlp's trainer can track (MetricTracker, training/metric_tracker.py 45-51: "+" or "-" first,
# and 125-133: a name the validation does not produce is a ConfigurationError after the first epoch):
# "loss" (training/util.py 274), F1MultiLabelMeasure's micro average (training/metrics/fbeta_measure.py
# 226), and "accuracy" when MODEL.accuracy is set (the model's get_metrics, lines 626-629).
METRICS = ("loss", "precision", "recall", "fscore")
ACCURACY_METRIC = "accuracy"
# The sections the program only reads: any other key is ignored, silently. VOCABULARY (line 1313);
# INTERPRETER, in interactive prediction and GUI modes only (1117, 1391, 1394); CONFIG: the command line's
# options, which it copies in where the file lacks them (1159-1229, 1242-1244), and no_loop_weight_file
# (1272, 1293).
READ_KEYS = {
    "VOCABULARY": frozenset({"huggingface_model"}),
    "INTERPRETER": frozenset({"captum", "kwargs"}),
    "CONFIG": frozenset(
        {
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
        }
    ),
}


def bind(call: Call, where: str, keys: Iterable[str], *, arg_where: str = "") -> str | None:
    """Why Python would refuse the call with the config's `keys` (the mapping at `where`; with
    `arg_where`, call.given values come from that list), in one line; None when it binds."""
    signature = call.signature
    limit = len(signature.params) if signature.positional is None else signature.positional
    if call.given > limit:
        return f"{arg_where} has {call.given} values; {signature.name} takes at most {limit} by position"
    taken = {*signature.params[: call.given], *call.fixed}
    keys = list(keys)
    for key in keys:
        if key in taken:
            by = f"by {arg_where}" if arg_where and key not in call.fixed else "by the program itself"
            return f"{where}.{key} is given twice ({signature.name} already gets it {by}): remove it"
        if key not in signature.params:
            return f"{where}.{key} is not a key the program takes ({_nearest(key, signature, taken)})"
    for param in signature.params[: signature.required]:
        if param not in taken and param not in keys:
            return f"{arg_where or where} lacks {param}, which {signature.name} requires"
    return None


def _nearest(key: str, signature: Signature, taken: set[str]) -> str:
    known = [param for param in signature.params if param not in taken]
    close = difflib.get_close_matches(key, known, n=1)
    return f"did you mean {close[0]}?" if close else f"it takes {', '.join(known)}"


def argument(signature: Signature, param: str, arg: list[object], kwargs: dict[str, object]) -> object:
    """The value a call with *arg, **kwargs binds to `param` (None when neither gives it)."""
    index = signature.params.index(param)
    return arg[index] if index < len(arg) else kwargs.get(param)


def ignored(section: str, key: str) -> str | None:
    """A note when the program reads `section` but not `key`, with the nearest key it reads."""
    known = READ_KEYS[section]
    if key in known:
        return None
    close = difflib.get_close_matches(key, sorted(known), n=1)
    hint = f" (did you mean {close[0]}?)" if close else ""
    return f"{section}.{key} is not read by the program, which ignores it{hint}"
