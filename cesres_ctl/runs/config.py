"""The CESReS configuration file of a run: load and check it, find its data files, and rewrite it for
the cluster (data staged in the run, serialization_dir pointed into the run's results/).

Data paths in CONFIG.training / validation / evaluation are local files (absolute, or relative to the
current directory, then to the config file's directory), or files already on the cluster written
`cluster:PATH` (PATH absolute, `~/...`, or relative to the CESReS checkout, cesres_root).
"""

import hashlib
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

from cesres_ctl.errors import CesresError

SECTIONS = ("VOCABULARY", "READER", "MODEL", "TRAINER", "INTERPRETER", "CONFIG")
DATA_KEYS = ("training", "validation", "evaluation")
CLUSTER_PREFIX = "cluster:"
# Inside the job's scratch copy of the code: the run's own files live under this directory.
RUN_SUBDIR = "cesres_run"
RESULTS = f"{RUN_SUBDIR}/results"
_SAFE_SUFFIX = re.compile(r"^\.[A-Za-z0-9]{1,10}$")
# Strings that Ansible would template if they reached it as extra vars.
_JINJA = ("{{", "}}", "{%", "%}", "{#", "#}")

# Model options a run may pass (allow-list, so argparse abbreviations such as --no_l cannot sneak in
# -n/--no_loop, which skips training). -c/-t/-v/-e/-s are set by cesres-ctl; -p/-g are interactive.
_VALUE_OPTIONS = {
    "-b": "--batch_size",
    "-vb": "--validation_batch_size",
    "-eb": "--evaluation_batch_size",
    "-l": "--loops",
    "-d": "--device",
    "-m": "--model",
    "-lm": "--load_model",
}
_OPTIONAL_VALUE_OPTIONS = {"-r": "--random_seed"}
_FLAGS = {"-ne": "--no_eval"}
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
        return f"{RUN_SUBDIR}/inputs/{self.staged_name}"


@dataclass(frozen=True)
class RunConfig:
    path: Path
    original_text: str
    data: dict[str, Any]
    inputs: tuple[DataInput, ...]
    rewritten_text: str


def check_text(value: str, what: str) -> str:
    """Refuse control characters and template delimiters in a value sent to the playbook."""
    if any(ch in value for ch in "\n\r\x00"):
        raise CesresError(f"{what} must not contain newlines or NUL characters")
    if any(marker in value for marker in _JINJA):
        raise CesresError(f"{what} must not contain template delimiters ({{{{, {{%, {{#): {value!r}")
    return value


def load(path: Path, *, cwd: Path | None = None) -> RunConfig:
    """Read, check and rewrite a CESReS configuration; every error is one line, before any ssh."""
    path = Path(path)
    if not path.is_file():
        raise CesresError(f"config file {path} not found")
    try:
        text = path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        raise CesresError(f"cannot read config file {path}: {exc}") from None
    try:
        data = yaml.safe_load(text)
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f" line {mark.line + 1}" if mark is not None else ""
        problem = getattr(exc, "problem", None) or str(exc).splitlines()[0]
        raise CesresError(
            f"config file {path} is not valid YAML ({where.strip() or 'parse error'}: {problem})"
        ) from None
    if not isinstance(data, dict):
        raise CesresError(f"config file {path} must be a YAML mapping with the sections {', '.join(SECTIONS)}")
    missing = [section for section in SECTIONS if section not in data]
    if missing:
        raise CesresError(f"config file {path} lacks the section(s) {', '.join(missing)}")
    for section in SECTIONS:
        if data[section] is None:
            data[section] = {}
        if not isinstance(data[section], dict):
            raise CesresError(f"config file {path}: section {section} must be a mapping")
    conf = data["CONFIG"]
    if _truthy(conf.get("no_loop")):
        raise CesresError(f"config file {path} sets CONFIG.no_loop: a training run must train (remove it)")
    labels = data["MODEL"].get("labels")
    if not isinstance(labels, list) or not labels:
        raise CesresError(f"config file {path}: MODEL.labels must be a non-empty list")

    inputs = []
    for key in DATA_KEYS:
        value = conf.get(key)
        if value in (None, ""):
            if key == "evaluation" and _truthy(conf.get("no_eval")):
                continue
            raise CesresError(f"config file {path}: CONFIG.{key} (a data file) is required")
        inputs.append(_data_input(key, str(value), path, cwd or Path.cwd()))

    rewritten = {section: dict(data[section]) for section in SECTIONS}
    for extra_key, value in data.items():
        if extra_key not in rewritten:
            rewritten[extra_key] = value
    new_conf = rewritten["CONFIG"]
    for item in inputs:
        new_conf[item.key] = item.staged_path
    new_conf["serialization_dir"] = RESULTS
    # A batch job has no terminal: interactive prediction and the GUI server are off.
    new_conf["predict"] = False
    new_conf["gui"] = False
    new_conf["no_loop"] = False
    header = f"# CESReS configuration of a cesres-ctl run, rewritten from {path.name}\n"
    rewritten_text = header + yaml.dump(
        rewritten, Dumper=_Dumper, sort_keys=False, allow_unicode=True, width=1000, default_flow_style=False
    )
    return RunConfig(
        path=path.resolve(),
        original_text=text,
        data=data,
        inputs=tuple(inputs),
        rewritten_text=rewritten_text,
    )


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
        suffix = Path(remote).suffix
        return DataInput(key, value, None, remote, _staged_name(key, suffix), None)
    candidate = Path(value).expanduser()
    tried = [candidate] if candidate.is_absolute() else [cwd / candidate, config_path.parent / candidate]
    found = next((p for p in tried if p.is_file()), None)
    if found is None:
        where = " or ".join(str(p) for p in tried)
        raise CesresError(
            f"data file CONFIG.{key} = {value!r} not found ({where}); "
            f"write {CLUSTER_PREFIX}PATH for a file already on the cluster"
        )
    found = found.resolve()
    check_text(str(found), f"CONFIG.{key}")
    return DataInput(key, value, found, None, _staged_name(key, found.suffix), _sha256(found))


def _staged_name(key: str, suffix: str) -> str:
    return key + (suffix if _SAFE_SUFFIX.match(suffix) else "")


def _sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def check_model_args(args: list[str]) -> list[str]:
    """Allow-listed model options (after `--` on the command line), returned unchanged."""
    checked: list[str] = []
    expect_value = False
    optional_value = False
    for arg in args:
        check_text(arg, "model argument")
        if expect_value:
            checked.append(arg)
            expect_value = False
            continue
        if optional_value and not arg.startswith("-"):
            checked.append(arg)
            optional_value = False
            continue
        optional_value = False
        if not arg.startswith("-") or _NUMBER.match(arg):
            raise CesresError(f"unexpected model argument {arg!r} (options only, e.g. -l 3 -r 7)")
        option, has_value, _ = arg.partition("=")
        if option in _VALUE_OPTIONS or option in _VALUE_OPTIONS.values():
            expect_value = not has_value
        elif option in _OPTIONAL_VALUE_OPTIONS or option in _OPTIONAL_VALUE_OPTIONS.values():
            optional_value = not has_value
        elif (option in _FLAGS or option in _FLAGS.values()) and not has_value:
            pass
        else:
            allowed = sorted({*_VALUE_OPTIONS, *_OPTIONAL_VALUE_OPTIONS, *_FLAGS})
            raise CesresError(
                f"model option {option!r} is not allowed in a training run (allowed: {' '.join(allowed)}; "
                "-c/-t/-v/-e/-s are set by cesres-ctl, -n would skip training)"
            )
        checked.append(arg)
    if expect_value:
        raise CesresError(f"model option {checked[-1]!r} needs a value")
    return checked
