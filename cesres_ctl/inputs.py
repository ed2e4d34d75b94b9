"""Everything cesres-ctl reads from the user, read one way: files, their YAML or JSON, and the command line.

Each file the tool reads on the user's behalf (a CESReS config, `setup -e @FILE`, `sweep --vary-file`, the
user configuration, a snippets file, the registry's kept records, the caches) goes through read_text, then
load_yaml, load_json or load_json_or_yaml (`-e`, as Ansible reads it). What they accept:

- a regular file, opened without blocking: a FIFO or a device is refused, never read (it would hang, or
  fill the memory: /dev/zero);
- at most `limit` bytes, counted as they are read (a file that grows meanwhile is refused too);
- UTF-8 text, and a UTF-8 name without newlines: both reach messages, the registry and the cluster;
- only what JSON holds: mappings with string keys, each key once, lists, strings, booleans, null, integers
  within 64 bits and finite numbers. Dates, bytes, sets and other tags are refused (quote them), NaN and
  infinities too; Python would refuse an integer of more than 4300 digits with a traceback;
- at most MAX_DEPTH levels of nesting, and YAML aliases that add at most ALIAS_BUDGET values in all (a
  "billion laughs" file of a few lines stands for 10^9 values), none referring to itself.

Every refusal is one line: the file, the key inside it (`CONFIG.batch_size`, `MODEL.labels[2]`), what is
wrong. yaml is imported when a YAML text is loaded: the quick commands (status, logs) read JSON only.
"""

import errno
import json
import math
import os
import stat
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Any

from cesres_ctl.errors import CesresError

if TYPE_CHECKING:
    import yaml

MAX_BYTES = 10_000_000
MAX_DEPTH = 64
ALIAS_BUDGET = 10_000
INT_BITS = 64
# Longer than any 64-bit integer in any of YAML's notations (0b and 64 digits, underscores): beyond it
# the text is refused before Python converts it.
_MAX_INT_TEXT = 100
_SHOWN = 60
# The tags of the values JSON holds (YAML's core schema, as PyYAML's safe loader resolves them).
_TAG = "tag:yaml.org,2002:"
_SCALARS = {f"{_TAG}{name}" for name in ("null", "bool", "int", "float", "str")}
_NOT_JSON = {
    f"{_TAG}timestamp": "a date or time (JSON cannot hold it): quote it",
    f"{_TAG}binary": "binary data (!!binary): give text",
    f"{_TAG}set": "a set (!!set): give a list",
    f"{_TAG}omap": "an ordered mapping (!!omap): give a mapping",
    f"{_TAG}pairs": "a list of pairs (!!pairs): give a mapping",
}


# --- files ---------------------------------------------------------------------------------------


def read_text(path: Path, what: str, *, limit: int = MAX_BYTES) -> str:
    """The text of the regular file `path`; `what` names it in messages ("config file")."""
    where = f"{what} {shown_path(path)}"
    check_name(Path(path).absolute(), what)  # the whole name: messages and records hold that one
    try:
        fd = os.open(path, os.O_RDONLY | os.O_NONBLOCK | os.O_NOCTTY | os.O_CLOEXEC)
    except FileNotFoundError:
        raise CesresError(f"{where} not found") from None
    except OSError as exc:
        if exc.errno == errno.ENXIO:  # a socket
            raise CesresError(f"{where} is not a regular file") from None
        raise CesresError(f"cannot read {where}: {exc.strerror or exc}") from None
    try:
        mode = os.fstat(fd).st_mode
        if stat.S_ISDIR(mode):
            raise CesresError(f"{where} is a directory, not a regular file")
        if not stat.S_ISREG(mode):
            raise CesresError(f"{where} is not a regular file")
        with os.fdopen(fd, "rb", closefd=False) as handle:
            data = handle.read(limit + 1)
    except OSError as exc:
        raise CesresError(f"cannot read {where}: {exc.strerror or exc}") from None
    finally:
        os.close(fd)
    if len(data) > limit:
        size = max(len(data), Path(path).stat().st_size)
        megabytes = math.ceil(size / 100_000) / 10  # rounded up: 10.0 would read as within the limit
        raise CesresError(f"{where} is {megabytes} MB; the limit is {limit / 1_000_000:g} MB")
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise CesresError(f"{where} is not UTF-8 text (byte {exc.start})") from None


def read_yaml(path: Path, what: str) -> Any:
    """read_text, then load_yaml."""
    return load_yaml(read_text(path, what), f"{what} {shown_path(path)}")


def read_json_or_yaml(path: Path, what: str) -> Any:
    """read_text, then load_json_or_yaml."""
    return load_json_or_yaml(read_text(path, what), f"{what} {shown_path(path)}")


def check_name(path: Path | str, what: str) -> None:
    """A file name that messages, the registry and the cluster can hold: UTF-8, no newline, no NUL."""
    name = os.fspath(path)
    if any(ch in name for ch in "\n\r\x00"):
        raise CesresError(f"{what} path {name!r} contains a newline or NUL character: rename the file")
    if not utf8(name):
        raise CesresError(f"{what} {shown_path(path)}: its name is not UTF-8: rename it")


def shown_path(path: Path | str) -> str:
    """A path as messages show it: bytes that are not UTF-8 as \\xNN escapes."""
    return os.fsencode(path).decode("utf-8", "backslashreplace")


# Files a path may name that are regular files to stat() but the kernel's view of something else: a
# process's memory or environment, devices and their settings. Reading one as data would copy it.
PSEUDO_DIRS = ("/proc", "/sys", "/dev")


def pseudo_file(path: str) -> bool:
    """Whether the absolute `path` (normalised: no `..` left) lies in one of PSEUDO_DIRS."""
    normal = os.path.normpath(path)
    return any(normal == top or normal.startswith(top + "/") for top in PSEUDO_DIRS)


# --- YAML ----------------------------------------------------------------------------------------


def load_yaml(text: str, where: str) -> Any:
    """The value of a YAML document holding only what JSON holds (see the module's docstring)."""
    import yaml

    # The pure-Python loader: libyaml's composer recurses in C, where a deep document breaks the stack
    # instead of raising RecursionError.
    try:
        loader = yaml.SafeLoader(text)  # its reader refuses control characters at once
    except yaml.YAMLError as exc:
        raise _invalid_yaml(where, exc) from None
    try:
        try:
            node = loader.get_single_node()
        except RecursionError:  # the composer recurses once per level
            raise CesresError(f"{where} is nested too deeply (more than {MAX_DEPTH} levels): flatten it") from None
        except yaml.YAMLError as exc:
            raise _invalid_yaml(where, exc) from None
        if node is None:
            return None
        _NodeCheck(loader, where).total(node)
        return loader.construct_document(node)
    finally:
        loader.dispose()


def _invalid_yaml(where: str, exc: "yaml.YAMLError") -> CesresError:
    mark = getattr(exc, "problem_mark", None)
    at = f"line {mark.line + 1}" if mark is not None else "parse error"
    problem = getattr(exc, "problem", None) or str(exc).splitlines()[0]
    return CesresError(f"{where} is not valid YAML ({at}: {problem})")


class _NodeCheck:
    """The checks of load_yaml, on the composed nodes (before any value is built): an alias is the very
    node of its anchor, so a node met again is counted from what it was found to hold the first time."""

    def __init__(self, loader: "yaml.SafeLoader", where: str) -> None:
        self.loader = loader
        self.where = where
        self.sizes: dict[int, tuple[int, int]] = {}  # id(node): (the values it stands for, its height)
        self.open: set[int] = set()  # the nodes being checked: an alias of one refers to itself

    def total(self, root: "yaml.Node") -> None:
        count, _ = self.node(root, "", 0)
        added = count - len(self.sizes)
        if added > ALIAS_BUDGET:
            raise CesresError(
                f"{self.where}: its aliases (*name) add {added} values, more than {ALIAS_BUDGET}: write them out"
            )

    def fail(self, node: "yaml.Node", key: str, problem: str) -> CesresError:
        return CesresError(f"{self.where}: {_key(key)} (line {node.start_mark.line + 1}) {problem}")

    def node(self, node: "yaml.Node", key: str, depth: int) -> tuple[int, int]:
        import yaml

        if id(node) in self.open:
            raise self.fail(node, key, "is an alias of a value that holds it: it refers to itself")
        if id(node) in self.sizes:
            count, height = self.sizes[id(node)]
        else:
            if depth > MAX_DEPTH:
                raise self.fail(node, key, f"is nested more than {MAX_DEPTH} levels deep: flatten it")
            self.open.add(id(node))
            count, height = 1, 0
            children = self.children(node, key)
            for child_key, child in children:
                child_count, child_height = self.node(child, child_key, depth + 1)
                count, height = count + child_count, max(height, child_height + 1)
            if isinstance(node, yaml.ScalarNode):
                self.scalar(node, key)
            self.open.discard(id(node))
            self.sizes[id(node)] = (count, height)
        if depth + height > MAX_DEPTH:
            raise self.fail(node, key, f"is nested more than {MAX_DEPTH} levels deep: flatten it")
        return count, height

    def children(self, node: "yaml.Node", key: str) -> Iterable[tuple[str, "yaml.Node"]]:
        import yaml

        if isinstance(node, yaml.SequenceNode):
            if node.tag != f"{_TAG}seq":
                raise self.fail(node, key, _tag_problem(node.tag))
            return [(f"{key}[{index}]", child) for index, child in enumerate(node.value)]
        if isinstance(node, yaml.MappingNode):
            if node.tag != f"{_TAG}map":
                raise self.fail(node, key, _tag_problem(node.tag))
            return self.pairs(node, key)
        if node.tag not in _SCALARS:
            raise self.fail(node, key, _tag_problem(node.tag))
        return []

    def pairs(self, node: "yaml.MappingNode", key: str) -> list[tuple[str, "yaml.Node"]]:
        import yaml

        found: dict[str, yaml.Node] = {}
        children = []
        for key_node, value_node in node.value:
            if key_node.tag == f"{_TAG}merge":  # `<<: *base`: the anchor's keys, checked as its own
                children.append((key, value_node))
                continue
            if not isinstance(key_node, yaml.ScalarNode) or key_node.tag != f"{_TAG}str":
                shown = _shown(key_node.value) if isinstance(key_node, yaml.ScalarNode) else "a list or mapping"
                raise self.fail(key_node, key, f"has the key {shown}, which is not a string: quote it")
            name = key_node.value
            child_key = f"{key}.{_shown(name)}" if key else _shown(name)
            if name in found:
                first = found[name].start_mark.line + 1
                raise self.fail(key_node, child_key, f"is given twice (first on line {first}): keep one")
            found[name] = key_node
            self.scalar(key_node, child_key)
            children.append((child_key, value_node))
        return children

    def scalar(self, node: "yaml.ScalarNode", key: str) -> None:
        if node.tag in (f"{_TAG}int", f"{_TAG}float"):
            if len(node.value) > _MAX_INT_TEXT and node.tag == f"{_TAG}int":
                raise self.fail(node, key, f"is an integer of {len(node.value)} characters: {INT_BITS} bits at most")
            construct = self.loader.construct_yaml_int if node.tag == f"{_TAG}int" else self.loader.construct_yaml_float
            try:
                problem = number_problem(construct(node))
            except ValueError:  # what YAML's patterns take for a number and Python cannot read: 0x_
                problem = f"is {_shown(node.value)}, no number Python can read: quote it"
        elif node.tag == f"{_TAG}str":
            problem = None if utf8(node.value) else "is not UTF-8 text (a lone surrogate escape): give text"
        else:
            problem = None
        if problem:
            raise self.fail(node, key, problem)


def _tag_problem(tag: str) -> str:
    return "is " + _NOT_JSON.get(tag, f"tagged {tag}: plain values only (strings, numbers, lists, mappings)")


# --- JSON ----------------------------------------------------------------------------------------


class _Refused(Exception):
    """A problem found while JSON is parsed, before the key it belongs to is known."""


def load_json(text: str, where: str) -> Any:
    """The value of a JSON text, under load_yaml's rules (no duplicate key, numbers JSON can write back)."""
    try:
        return _json(text, where)
    except json.JSONDecodeError as exc:  # its message names the line and column
        raise CesresError(f"{where} is not valid JSON ({exc})") from None


def load_json_or_yaml(text: str, where: str) -> Any:
    """A text read as Ansible reads `-e` values and vars files: as JSON when it is JSON (where NaN is a
    number, for Ansible as for load_json), else as YAML."""
    try:
        return _json(text, where)
    except json.JSONDecodeError:
        return load_yaml(text, where)


def _json(text: str, where: str) -> Any:
    try:
        data = json.loads(text, object_pairs_hook=_unique_keys, parse_int=_json_int)
    except _Refused as exc:
        raise CesresError(f"{where}: {exc}") from None
    except RecursionError:
        raise CesresError(f"{where} is nested too deeply (more than {MAX_DEPTH} levels): flatten it") from None
    _check_json(data, where, "", 0)
    return data


def _unique_keys(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    data: dict[str, Any] = {}
    for key, value in pairs:
        if key in data:
            raise _Refused(f"the key {_shown(key)} is given twice: keep one")
        data[key] = value
    return data


def _json_int(text: str) -> int:
    if len(text) > _MAX_INT_TEXT:
        raise _Refused(f"an integer of {len(text)} digits: {INT_BITS} bits at most")
    return int(text)


def _check_json(value: Any, where: str, key: str, depth: int) -> None:
    def fail(problem: str) -> CesresError:
        return CesresError(f"{where}: {_key(key)} {problem}")

    if depth > MAX_DEPTH:
        raise fail(f"is nested more than {MAX_DEPTH} levels deep: flatten it")
    if isinstance(value, dict):
        for name, item in value.items():
            if not utf8(name):
                raise fail(f"has a key that is not UTF-8 text: {_shown(name)}")
            _check_json(item, where, f"{key}.{_shown(name)}" if key else _shown(name), depth + 1)
    elif isinstance(value, list):
        for index, item in enumerate(value):
            _check_json(item, where, f"{key}[{index}]", depth + 1)
    elif isinstance(value, str) and not utf8(value):
        raise fail("is not UTF-8 text (a lone surrogate escape): give text")
    elif isinstance(value, int | float) and not isinstance(value, bool):
        problem = number_problem(value)
        if problem:
            raise fail(problem)


# --- values --------------------------------------------------------------------------------------


def number_problem(value: object) -> str | None:
    """What is wrong with a number read from the user (None: nothing): NaN, an infinity, beyond 64 bits."""
    if isinstance(value, float) and not math.isfinite(value):
        return f"is {value}: give a finite number"
    if isinstance(value, int) and not -(2 ** (INT_BITS - 1)) <= value < 2 ** (INT_BITS - 1):
        return f"is an integer beyond {INT_BITS} bits: give a smaller one"
    return None


def utf8(text: str) -> bool:
    """Whether `text` can be written as UTF-8: no lone surrogate (what Python makes of bytes that are not
    UTF-8 in a file name, an argument or an environment variable, and of YAML's or JSON's "\\udcff")."""
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        return False
    return True


def check_command_line(argv: Iterable[str], environ: Mapping[str, str]) -> None:
    """The arguments, and the environment variables cesres-ctl or Ansible read (CESRES_*, XDG_*, ANSIBLE_*,
    HOME), are UTF-8: a byte that is not would be written to the user's files and the cluster's as an
    escape that nothing reads back."""
    for number, arg in enumerate(argv, 1):
        if not utf8(arg):
            raise CesresError(f"argument {number} ({shown_path(arg)}) is not UTF-8 text")
    for name, value in environ.items():
        if (name.startswith(("CESRES_", "XDG_", "ANSIBLE_")) or name == "HOME") and not utf8(value):
            raise CesresError(f"the environment variable {name} ({shown_path(value)}) is not UTF-8 text")


def _key(path: str) -> str:
    """A key's path in messages: its start when it is long (a value nested 60 levels deep)."""
    if not path:
        return "the document"
    return path if len(path) <= 2 * _SHOWN else path[: 2 * _SHOWN - 1] + "…"


def _shown(value: str) -> str:
    """A key or value as a message shows it: cut after _SHOWN characters, quoted if it is not plain text."""
    text = value if len(value) <= _SHOWN else value[: _SHOWN - 1] + "…"
    return text if text.isprintable() and text.strip() == text and text else repr(text)
