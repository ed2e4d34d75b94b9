"""The CESReS configuration file of a run: load and check it, find its data files, and rewrite it for
the cluster (data staged in the run, serialization_dir pointed into the run's results/).

Data paths in CONFIG.training / validation / evaluation are local files (absolute, or relative to the
current directory, then to the config file's directory), or files already on the cluster written
`cluster:PATH` (PATH absolute, `~/...`, or relative to the CESReS checkout, cesres_root).
"""

import difflib
import re
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

from cesres_ctl import inputs, rules
from cesres_ctl.errors import CesresError
from cesres_ctl.runs import real_program as real

SECTIONS = ("VOCABULARY", "READER", "MODEL", "TRAINER", "INTERPRETER", "CONFIG")
DATA_KEYS = ("training", "validation", "evaluation")
CLUSTER_PREFIX = "cluster:"
# A real CESReS config is a few KB. The playbook gets it twice, base64-encoded, as extra vars in a file
# (no command-line limit since issue 11), but ansible-playbook's memory grows with it: about 250 MB for
# a 10 MB config (measured locally), linearly beyond. A bigger "config" is another file given by mistake.
MAX_CONFIG_BYTES = 10_000_000
# Strings that Ansible would template if they reached it as extra vars.
_JINJA = ("{{", "}}", "{%", "%}", "{#", "#}")

# Model options a run may pass after `--`, and the CONFIG key each one sets. The real program lets the
# config file win over its command line (a flag reaches CONFIG only when the file lacks the key), so
# cesres-ctl never passes them on the command line: it writes them into the run's rewritten CONFIG.
# An allow-list, so that argparse abbreviations such as --no_l cannot sneak in -n/--no_loop.
# -c/-t/-v/-e/-s are set by cesres-ctl; -p/-g are interactive; -m changes only the vocabulary's model
# and -lm is read only with no_loop: both are refused, with the config key to edit instead.
_VALUE_OPTIONS = {
    "-b": "batch_size",
    "-vb": "validation_batch_size",
    "-eb": "evaluation_batch_size",
    "-l": "loops",
    "-d": "device",
}
_OPTIONAL_INT = {"-r": "random_seed"}  # bare -r means 42, as in the real program
_FLAGS = {"-ne": "no_eval"}
_REFUSED = {
    "-m": "set the model ids in the config instead (VOCABULARY/READER/MODEL huggingface_model, MODEL.encoder.arg)",
    "-lm": "a training run writes its own weights (best.th); -lm is only read with no_loop",
}
# Each option's long form (--loops, --model, ...) is read as its short one.
_LONG = {
    f"--{key}": short
    for short, key in {**_VALUE_OPTIONS, **_OPTIONAL_INT, **_FLAGS, "-m": "model", "-lm": "load_model"}.items()
}
_INT_KEYS = {"batch_size", "validation_batch_size", "evaluation_batch_size", "loops", "random_seed"}
# The only devices the real program handles: it moves the model to the GPU only for exactly "cuda" while
# forward() moves its inputs to cuda:0, so "cuda:N" mixes devices.
DEVICES = ("cpu", "cuda")
# The real vocabulary pads the labels namespace (@@PADDING@@, @@UNKNOWN@@): the head outputs labels + 2.
LABEL_PADDING = 2
# The head's parameter that is its output size.
_HEAD_OUTPUT = {real.LINEAR: "out_features", real.SEQUENTIAL_HEAD: "num_labels"}
# The model the real program loads where the config names none (its -m default and its classes' defaults).
DEFAULT_MODEL = "Enoch/graphcodebert-py"
_NUMBER = re.compile(r"^-?\d+(\.\d+)?$")


@dataclass(frozen=True)
class DataInput:
    key: str  # training / validation / evaluation
    original: str  # as written in the config
    local_path: Path | None  # resolved local file, or None for a cluster file
    cluster_path: str | None  # path on the cluster, unexpanded
    staged_name: str  # file name in the run's inputs/ directory
    sha256: str | None  # of the local file

    @property
    def staged_path(self) -> str:
        return f"{rules.RUN_SUBDIR}/{rules.RUN_INPUTS_DIR}/{self.staged_name}"


@dataclass(frozen=True)
class RunConfig:
    path: Path
    original_text: str
    data: dict[str, Any]
    inputs: tuple[DataInput, ...]
    rewritten_text: str
    models: tuple[str, ...] = ()  # Hugging Face model ids the program loads (must be in the cluster's cache)
    notes: tuple[str, ...] = ()  # keys the program ignores, for the user to see


def check_text(value: str, what: str) -> str:
    """Refuse control characters and template delimiters in a value sent to the playbook."""
    if any(ch in value for ch in "\n\r\x00"):
        raise CesresError(f"{what} must not contain newlines or NUL characters")
    if any(marker in value for marker in _JINJA):
        raise CesresError(f"{what} must not contain template delimiters ({{{{, {{%, {{#): {value!r}")
    return value


def load(
    path: Path,
    *,
    cwd: Path | None = None,
    options: dict[str, Any] | None = None,
    gpus: int | None = None,
    values: Mapping[str, Any] | None = None,
) -> RunConfig:
    """Read, check and rewrite a CESReS configuration; every error is one line, before any ssh.

    options: CONFIG keys from the model options (see options_from_args), written into the rewritten
    CONFIG over the file's values. gpus: the GPUs the job gets; CONFIG.device follows it (None: unknown).
    values: {"SECTION.key[.key…]": value} set in the configuration before it is checked (a sweep's point;
    see set_value).
    """
    path = Path(path)
    text = inputs.read_text(path, "config file", limit=MAX_CONFIG_BYTES)
    data = inputs.load_yaml(text, f"config file {path}")
    if not isinstance(data, dict):
        raise CesresError(f"config file {path} must be a YAML mapping with the sections {', '.join(SECTIONS)}")
    for dotted, value in (values or {}).items():
        set_value(data, dotted, value, path)
    missing = [section for section in SECTIONS if section not in data]
    if missing:
        raise CesresError(f"config file {path} lacks the section(s) {', '.join(missing)}")
    for section in SECTIONS:
        if data[section] is None:
            data[section] = {}
        if not isinstance(data[section], dict):
            raise CesresError(f"config file {path}: section {section} must be a mapping")
    conf = data["CONFIG"]
    _check_numbers(conf, path)
    if _truthy(conf.get("no_loop")):
        raise CesresError(f"config file {path} sets CONFIG.no_loop: a training run must train (remove it)")
    labels = data["MODEL"].get("labels")
    if not isinstance(labels, list) or not labels:
        raise CesresError(f"config file {path}: MODEL.labels must be a non-empty list")
    for section, call in real.SECTION_CALLS.items():
        _refuse(real.bind(call, section, data[section]), path)
    _check_model(data["MODEL"], len(labels), path)
    _check_trainer(data["TRAINER"], data["MODEL"], path)
    models = model_ids(data, path)
    options = dict(options or {})
    device = _device(options.get("device", conf.get("device")), gpus, path, from_option="device" in options)

    data_files = []
    for key in DATA_KEYS:
        value = conf.get(key)
        if value in (None, ""):
            if key == "evaluation" and _truthy(options.get("no_eval", conf.get("no_eval"))):
                continue
            raise CesresError(f"config file {path}: CONFIG.{key} (a data file) is required")
        data_files.append(_data_input(key, str(value), path, cwd or Path.cwd()))

    rewritten = {section: dict(data[section]) for section in SECTIONS}
    for extra_key, value in data.items():
        if extra_key not in rewritten:
            rewritten[extra_key] = value
    new_conf = rewritten["CONFIG"]
    for item in data_files:
        new_conf[item.key] = item.staged_path
    new_conf.update(options)
    if device is not None:
        new_conf["device"] = device
    new_conf["serialization_dir"] = rules.SCRATCH_RESULTS
    # A batch job has no terminal: interactive prediction and the GUI server are off.
    new_conf["predict"] = False
    new_conf["gui"] = False
    new_conf["no_loop"] = False
    rewritten_text = dump(rewritten, f"# CESReS configuration of a cesres-ctl run, rewritten from {path.name}\n")
    resolved = path.resolve()
    inputs.check_name(resolved, "config file")  # a link's target is recorded as the run's config
    return RunConfig(
        path=resolved,
        original_text=text,
        data=data,
        inputs=tuple(data_files),
        rewritten_text=rewritten_text,
        models=models,
        notes=_ignored(data, path),
    )


def set_value(data: dict[str, Any], dotted: str, value: Any, path: Path) -> None:
    """Set an existing key of the configuration, `SECTION.key[.key…]`, to a value of the same type (an int
    where a float is, too): a typo or a value of another kind is an error naming it, never a new key."""
    parts = dotted.split(".")
    if len(parts) < 2 or parts[0] not in SECTIONS:
        raise CesresError(f"{dotted}: give SECTION.key with SECTION one of {', '.join(SECTIONS)}")
    node: Any = data
    for depth, part in enumerate(parts):
        if not isinstance(node, dict) or part not in node:
            known = sorted(node) if isinstance(node, dict) else []
            hint = difflib.get_close_matches(part, known, n=1)
            where = ".".join(parts[:depth]) or "the config"
            suggestion = f" (did you mean {hint[0]}?)" if hint else ""
            raise CesresError(f"{dotted}: {where} in {path.name} has no key {part}{suggestion}")
        if depth < len(parts) - 1:
            node = node[part]
    current = node[parts[-1]]
    problem = inputs.number_problem(value)  # the rule of the config's own numbers (`--vary` gives these)
    if problem:
        raise CesresError(f"{dotted}: {value!r} {problem}")
    if not _same_kind(current, value):
        theirs = f"the config's {current!r} ({type(current).__name__})"
        raise CesresError(f"{dotted}: {value!r} ({type(value).__name__}) is not of the kind of {theirs}")
    node[parts[-1]] = value


def _same_kind(current: object, value: object) -> bool:
    if isinstance(current, bool) or isinstance(value, bool):
        return isinstance(current, bool) and isinstance(value, bool)
    if isinstance(current, float):
        return isinstance(value, int | float)
    if current is None:
        return not isinstance(value, dict | list)
    return isinstance(value, type(current))


def dump(data: dict[str, Any], header: str) -> str:
    """A config as the model reads it: `header` (comment lines), then YAML with the sections in order."""
    return header + yaml.dump(
        data, Dumper=_Dumper, sort_keys=False, allow_unicode=True, width=1000, default_flow_style=False
    )


def model_ids(data: dict[str, Any], path: Path) -> tuple[str, ...]:
    """Every Hugging Face model id the real program loads for this config, and CONFIG.model."""
    model = data["MODEL"]
    encoder = model.get("encoder")
    encoder_arg = encoder.get("arg") if isinstance(encoder, dict) and encoder.get("name") == "bert_pooler" else None
    found = {
        "VOCABULARY.huggingface_model": data["VOCABULARY"].get("huggingface_model", DEFAULT_MODEL),
        "READER.huggingface_model": data["READER"].get("huggingface_model", DEFAULT_MODEL),
        "MODEL.huggingface_model": model.get("huggingface_model", DEFAULT_MODEL),
        "MODEL.encoder.arg[0]": encoder_arg[0] if isinstance(encoder_arg, list) and encoder_arg else None,
        "CONFIG.model": data["CONFIG"].get("model"),
    }
    ids: list[str] = []
    for where, value in found.items():
        if value is None:
            continue
        if not isinstance(value, str) or not rules.is_model_id(value):
            raise CesresError(f"config file {path}: {where} must be a Hugging Face model id (ORG/NAME), got {value!r}")
        if value not in ids:
            ids.append(value)
    return tuple(ids)


def _refuse(problem: str | None, path: Path) -> None:
    if problem is not None:
        raise CesresError(f"config file {path}: {problem}")


def _check_model(model: dict[str, Any], n_labels: int, path: Path) -> None:
    """MODEL's mappings that the real program passes to create_parameter, and its head's output size."""
    for kind in ("encoder", "accuracy", "loss"):
        _check_parameter(kind, model.get(kind), f"MODEL.{kind}", path)
    head = _check_parameter("classification_head", model.get("classification_head"), "MODEL.classification_head", path)
    if head is not None:
        _check_head_size(*head, n_labels, path)


def _check_parameter(
    kind: str, spec: object, where: str, path: Path
) -> tuple[real.Signature, list[Any], dict[str, Any]] | None:
    """A mapping given to create_parameter(kind, **spec): its keys, its name, and the call that name makes
    with *arg and **kwargs (returned, when there is one)."""
    if spec is None:
        return None  # the program's default
    if not isinstance(spec, dict):
        raise CesresError(f"config file {path}: {where} must be a mapping (name, arg, kwargs)")
    _refuse(real.bind(real.Call(real.CREATE_PARAMETER, real.PARAMETER_GIVEN), where, spec), path)
    table = real.CHOICES[kind]
    name = spec["name"]
    if not isinstance(name, str) or name not in table:
        raise CesresError(f"config file {path}: {where}.name is {name!r}: the program knows {', '.join(table)}")
    signature = table[name]
    if signature is None:
        return None  # its lambda ignores arg and kwargs
    arg, kwargs = spec.get("arg", []), spec.get("kwargs", {})
    if not isinstance(arg, list):
        raise CesresError(f"config file {path}: {where}.arg must be a list (the program passes *arg)")
    if not isinstance(kwargs, dict):
        raise CesresError(f"config file {path}: {where}.kwargs must be a mapping (the program passes **kwargs)")
    call = real.Call(signature, len(arg))
    _refuse(real.bind(call, f"{where}.kwargs", kwargs, arg_where=f"{where}.arg"), path)
    if signature is real.SEQUENTIAL_HEAD:
        _check_hidden_sizes(real.argument(signature, "hidden_sizes", arg, kwargs), where, path)
        activation = real.argument(signature, "activation", arg, kwargs)
        _check_parameter("activation", activation, f"{where}.kwargs.activation", path)
    return signature, arg, kwargs


def _check_hidden_sizes(sizes: object, where: str, path: Path) -> None:
    """construct_sequential_head (lines 110-120 of the real model file) asserts len(hidden_sizes) + 1 ==
    number for a list, then reads hidden_sizes[number]: every list fails (AssertionError, else IndexError)."""
    if isinstance(sizes, list):
        raise CesresError(
            f"config file {path}: {where}.arg[1] is a list, which the real program always fails on (it asserts "
            "len + 1 == number, then reads number + 1 sizes): give one size for every layer"
        )


def _check_head_size(
    signature: real.Signature, arg: list[Any], kwargs: dict[str, Any], n_labels: int, path: Path
) -> None:
    """The classification head's output size must be the label count + 2, or the real model fails."""
    output = _HEAD_OUTPUT[signature]
    size = real.argument(signature, output, arg, kwargs)
    expected = n_labels + LABEL_PADDING
    if size != expected:
        index = signature.params.index(output)
        given = f"arg[{index}]" if index < len(arg) else f"kwargs.{output}"
        raise CesresError(
            f"config file {path}: MODEL.classification_head.{given} is {size!r} but must be "
            f"{expected}: {n_labels} labels + {LABEL_PADDING} (the real vocabulary pads the labels namespace)"
        )


def _check_trainer(trainer: dict[str, Any], model: dict[str, Any], path: Path) -> None:
    """What allennlp refuses in TRAINER: the optimizer's keys, and (in GradientDescentTrainer and its
    MetricTracker) a patience that is not a positive integer or a metric it cannot track."""
    optimizer = trainer.get("kwargs_optimizer")
    if optimizer is not None:  # build_trainer's default, {}
        if not isinstance(optimizer, dict):
            raise CesresError(f"config file {path}: TRAINER.kwargs_optimizer must be a mapping")
        _refuse(real.bind(real.OPTIMIZER_CALL, "TRAINER.kwargs_optimizer", optimizer), path)
    patience = trainer.get("patience")
    if patience is not None and (not isinstance(patience, int) or patience <= 0):
        raise CesresError(
            f"config file {path}: TRAINER.patience must be a whole number >= 1 (or absent: no early stopping), "
            f"got {patience!r}"
        )
    metrics = real.METRICS + ((real.ACCURACY_METRIC,) if model.get("accuracy") is not None else ())
    given = trainer.get("validation_metric", "-loss")
    for metric in given if isinstance(given, list) else [given]:
        if not isinstance(metric, str) or metric[:1] not in ("+", "-") or metric[1:] not in metrics:
            raise CesresError(
                f"config file {path}: TRAINER.validation_metric {metric!r} must be + or - then one of "
                f"{', '.join(metrics)} (what allennlp's trainer can track for this model)"
            )


def _ignored(data: dict[str, Any], path: Path) -> tuple[str, ...]:
    """The sections and keys the real program never reads: harmless, but maybe a typo."""
    notes = [
        f"config file {path}: section {name} is not read by the program, which ignores it"
        for name in data
        if name not in SECTIONS
    ]
    for section in real.READ_KEYS:
        for key in data[section]:
            problem = real.ignored(section, str(key))
            if problem is not None:
                notes.append(f"config file {path}: {problem}")
    return tuple(notes)


def _check_numbers(conf: dict[str, Any], path: Path) -> None:
    """CONFIG's counts and sizes are whole numbers: the real program would only fail once the job runs."""
    for key in sorted(_INT_KEYS & conf.keys()):
        value = conf[key]
        if value is None:
            continue  # the program's default
        if isinstance(value, bool) or not isinstance(value, int) or value < _minimum(key):
            raise CesresError(
                f"config file {path}: CONFIG.{key} must be a whole number >= {_minimum(key)}, got {value!r}"
            )


def _minimum(key: str) -> int:
    return 0 if key == "random_seed" else 1


def _device(value: object, gpus: int | None, path: Path, *, from_option: bool) -> str | None:
    """CONFIG.device for the job: as asked when it fits the resources, else from them (cuda iff GPUs)."""
    where = "-d" if from_option else f"CONFIG.device in {path}"
    if value is None:
        if gpus is None:
            return None
        return "cuda" if gpus > 0 else "cpu"
    if value not in DEVICES:
        raise CesresError(
            f"{where} is {value!r}: the real CESReS runs only on 'cpu' or 'cuda' (it moves its inputs to cuda:0)"
        )
    if gpus is not None and value == "cuda" and gpus == 0:
        raise CesresError(f"{where} is cuda but the run has no GPU: choose a GPU partition (--partition gpu --gpus 1)")
    if gpus is not None and value == "cpu" and gpus > 0:
        raise CesresError(f"{where} is cpu but the run asks {gpus} GPU(s): set device cuda, or run with --gpus 0")
    return str(value)


class _Dumper(yaml.SafeDumper):
    """Strings with line breaks (snippet_splitter: "\\n$$$\\n") stay on one double-quoted line."""


def _represent_str(dumper: yaml.SafeDumper, value: str) -> yaml.ScalarNode:
    style = '"' if any(ch in value for ch in "\n\r\t") else None
    return dumper.represent_scalar("tag:yaml.org,2002:str", value, style=style)


_Dumper.add_representer(str, _represent_str)


def _truthy(value: object) -> bool:
    if isinstance(value, str):
        return value.strip().lower() in {"true", "yes", "1", "on"}
    return bool(value)


def _data_input(key: str, value: str, config_path: Path, cwd: Path) -> DataInput:
    if value.startswith(CLUSTER_PREFIX):
        remote = value.removeprefix(CLUSTER_PREFIX).strip()
        if not remote:
            raise CesresError(f"CONFIG.{key}: empty cluster path in {value!r}")
        check_text(remote, f"CONFIG.{key}")
        if remote.startswith("/") and inputs.pseudo_file(remote):
            raise CesresError(_pseudo(key, value))
        suffix = Path(remote).suffix
        return DataInput(key, value, None, remote, rules.staged_name(key, suffix), None)
    check_text(value, f"CONFIG.{key}")  # before it is used as a path (a NUL, a newline in the messages)
    candidate = rules.expand_user(value, f"data file CONFIG.{key}")
    tried = [candidate] if candidate.is_absolute() else [cwd / candidate, config_path.parent / candidate]
    found = next((p for p in tried if p.is_file()), None)
    if found is None:
        other = next((p for p in tried if p.exists()), None)
        if other is not None:
            raise CesresError(f"data file CONFIG.{key} = {value!r} is not a regular file ({other}): name a file")
        where = " or ".join(str(p) for p in tried)
        raise CesresError(
            f"data file CONFIG.{key} = {value!r} not found ({where}); "
            f"write {CLUSTER_PREFIX}PATH for a file already on the cluster"
        )
    found = found.resolve()
    check_text(str(found), f"CONFIG.{key}")
    inputs.check_name(found, f"data file CONFIG.{key}")
    if inputs.pseudo_file(str(found)):
        raise CesresError(_pseudo(key, value))
    try:
        digest = rules.file_sha256(found)
    except OSError as exc:
        raise CesresError(f"cannot read data file CONFIG.{key} = {value!r} ({found}): {exc.strerror or exc}") from None
    return DataInput(key, value, found, None, rules.staged_name(key, found.suffix), digest)


def _pseudo(key: str, value: str) -> str:
    return (
        f"data file CONFIG.{key} = {value!r} is in {' or '.join(inputs.PSEUDO_DIRS)}: a view of processes and "
        "devices, not data"
    )


def options_from_args(args: list[str]) -> dict[str, Any]:
    """The CONFIG keys that allow-listed model options (after `--` on the command line) set."""
    options: dict[str, Any] = {}
    pending: str | None = None  # CONFIG key waiting for its value
    optional: str | None = None  # -r: an integer may follow
    for arg in args:
        check_text(arg, "model argument")
        if pending is not None:
            options[pending] = _option_value(pending, arg)
            pending = None
            continue
        if optional is not None and _NUMBER.match(arg):
            options[optional] = _option_value(optional, arg)
            optional = None
            continue
        optional = None
        if not arg.startswith("-") or _NUMBER.match(arg):
            raise CesresError(f"unexpected model argument {arg!r} (options only, e.g. -l 3 -r 7)")
        option, has_value, value = arg.partition("=")
        option = _LONG.get(option, option)
        if option in _REFUSED:
            raise CesresError(
                f"model option {arg.partition('=')[0]} is not accepted in a training run: {_REFUSED[option]}"
            )
        if option in _VALUE_OPTIONS:
            key = _VALUE_OPTIONS[option]
            if has_value:
                options[key] = _option_value(key, value)
            else:
                pending = key
        elif option in _OPTIONAL_INT:
            key = _OPTIONAL_INT[option]
            options[key] = _option_value(key, value) if has_value else 42
            optional = None if has_value else key
        elif option in _FLAGS and not has_value:
            options[_FLAGS[option]] = True
        else:
            allowed = sorted({*_VALUE_OPTIONS, *_OPTIONAL_INT, *_FLAGS})
            raise CesresError(
                f"model option {option!r} is not allowed in a training run (allowed: {' '.join(allowed)}; "
                "-c/-t/-v/-e/-s are set by cesres-ctl, -n would skip training)"
            )
    if pending is not None:
        raise CesresError(f"model option for CONFIG.{pending} needs a value")
    return options


def _option_value(key: str, value: str) -> Any:
    if key not in _INT_KEYS:
        return value
    try:
        number = int(value)
    except ValueError:
        raise CesresError(f"model option for CONFIG.{key} needs an integer, got {value!r}") from None
    if number < _minimum(key):
        raise CesresError(f"model option for CONFIG.{key} must be >= {_minimum(key)}")
    return number
