"""Each rule lives once: no regular expression, character class or rule constant in two homes.

A home is a file of the project's own code (cesres_ctl/, plugins/, roles/, playbooks/); cesres_ctl/rules.py is a
link to plugins/module_utils/rules.py, one home. The test reads every regex the code holds, whatever its form,
and normalises it, so that a copy that reorders a character class or spells \\d as [0-9] is still a copy:
- Python: the pattern arguments of re.compile/match/search/..., and every other string constant that reads as
  a regex (a character class with a range, an escape such as \\d, a group (?...)), docstrings aside;
- Jinja in YAML and templates: the patterns of match/search/regex tests and regex_* filters, in either form
  (`x is match('p')`, `reject('match', 'p')`, `regex_replace('p', ...)`);
- rule constants: module-level UPPER_CASE string constants in Python and the role variables in vars/ and
  defaults/ whose value is a plain string, when the same value is one in two homes.
"""

import ast
import re
from collections import defaultdict
from pathlib import Path

import pytest
import yaml

from tests.conftest import PROJECT

HOMES = ("cesres_ctl", "plugins", "roles", "playbooks")
# Idioms shorter than this (after normalising) are not rules: '/*$' (trailing slashes), '^' (prefix all).
MIN_PATTERN = 6
_RE_FUNCTIONS = {"compile", "match", "fullmatch", "search", "sub", "subn", "split", "findall", "finditer"}
_REGEX_SYNTAX = re.compile(r"\[[^\]]*\w-\w[^\]]*\]|\\[dDwWsSbB.]|\(\?|\{\d+(,\d*)?\}")
_JINJA_PATTERN = re.compile(
    r"""(?:\b(?:match|search|regex|regex_search|regex_replace|regex_findall)\s*\(\s*"""
    r"""|\(\s*(['"])(?:match|search|regex|regex_search|regex_replace|regex_findall)\1\s*,\s*)"""
    r"""(['"])((?:(?!\2)[^\\]|\\.)*)\2"""
)


def _files(*suffixes: str) -> list[Path]:
    """The project's code files (a role's meta/argument_specs.yml documents its defaults, which a drift test
    holds equal: not a second home)."""
    return sorted(
        path
        for top in HOMES
        for path in (PROJECT / top).rglob("*")
        if path.suffix in suffixes and path.is_file() and not path.is_symlink() and path.name != "argument_specs.yml"
    )


def _class_key(body: str) -> str:
    """A character class's members in a stable order: [A-Za-z0-9_.-] and [._A-Za-z0-9-] are one class."""
    body = body.replace(r"\d", "0-9")
    negated = body.startswith("^")
    items = re.findall(r"\\.-\\.|\\.-.|.-\\.|.-.|\\.|.", body[1:] if negated else body)
    return "[" + ("^" if negated else "") + "".join(sorted(set(items))) + "]"


def normalise(pattern: str) -> str:
    """The pattern without its anchors, \\d spelled [0-9] and each character class's members sorted."""
    text = pattern
    while "\\\\" in text:  # Jinja in YAML doubles backslashes once or twice
        text = text.replace("\\\\", "\\")
    text = re.sub(r"^(\^|\\A)+|(\$|\\Z|\\z)+$", "", text)
    text = re.sub(r"\\d", "[0-9]", text)
    return re.sub(r"\[((?:\\.|[^\]\\])+)\]", lambda m: _class_key(m[1]), text)


def _classes(pattern: str) -> set[str]:
    """The pattern's character classes of more than six members: a rule's own alphabet (a Slurm word's), not
    the common one of names, [A-Za-z0-9._-], that a run name and a package name both use."""
    return {
        key
        for key in re.findall(r"\[(?:\\.|[^\]\\])+\]", normalise(pattern))
        if len(re.findall(r"\\.-\\.|\\.-.|.-\\.|.-.|\\.|[^\[\]^]", key[1:-1])) > 6
    }


def _python_patterns(path: Path) -> tuple[set[str], dict[str, str]]:
    """The regexes of a Python file, and its module-level UPPER_CASE string constants (value: name)."""
    tree = ast.parse(path.read_text(), str(path))
    docstrings = {
        id(node.body[0].value)
        for node in ast.walk(tree)
        if isinstance(node, (ast.Module, ast.ClassDef, ast.FunctionDef, ast.AsyncFunctionDef))
        and node.body
        and isinstance(node.body[0], ast.Expr)
        and isinstance(node.body[0].value, ast.Constant)
    }
    patterns = set()
    for node in ast.walk(tree):
        if (
            isinstance(node, ast.Call)
            and isinstance(node.func, ast.Attribute)
            and isinstance(node.func.value, ast.Name)
            and node.func.value.id == "re"
            and node.func.attr in _RE_FUNCTIONS
            and node.args
            and isinstance(node.args[0], ast.Constant)
            and isinstance(node.args[0].value, str)
        ):
            patterns.add(node.args[0].value)
        elif (
            isinstance(node, ast.Constant)
            and isinstance(node.value, str)
            and id(node) not in docstrings
            and not re.search(r"\s", node.value)
            and _REGEX_SYNTAX.search(node.value)
        ):
            patterns.add(node.value)
    constants = {
        target.id: node.value.value
        for node in tree.body
        if isinstance(node, ast.Assign) and isinstance(node.value, ast.Constant) and isinstance(node.value.value, str)
        for target in node.targets
        if isinstance(target, ast.Name) and target.id.lstrip("_").isupper()
    }
    return patterns, {value: name for name, value in constants.items()}


def _jinja_patterns(path: Path) -> set[str]:
    return {match[3] for match in _JINJA_PATTERN.finditer(path.read_text(errors="replace"))}


def _role_constants(path: Path) -> dict[str, str]:
    """A role's vars/ or defaults/ variables whose value is a plain string (no template): value: name."""
    data = yaml.safe_load(path.read_text()) or {}
    return {
        value: name
        for name, value in data.items()
        if isinstance(value, str) and "{{" not in value and "{%" not in value
    }


def homes_of_each_rule(files: dict[Path, str] | None = None) -> dict[str, dict[str, set[str]]]:
    """kind ("pattern", "class", "constant") -> normalised rule -> the files that hold it."""
    found: dict[str, dict[str, set[str]]] = {"pattern": defaultdict(set), "class": defaultdict(set)}
    found["constant"] = defaultdict(set)
    for path in _files(".py"):
        home = str(path.relative_to(PROJECT))
        patterns, constants = _python_patterns(path)
        for pattern in patterns:
            _add_pattern(found, pattern, home)
        for value, name in constants.items():
            if len(value) >= 3:
                found["constant"][value].add(f"{home} ({name})")
    for path in _files(".yml", ".yaml", ".j2"):
        home = str(path.relative_to(PROJECT))
        for pattern in _jinja_patterns(path):
            _add_pattern(found, pattern, home)
        if path.parent.name in {"vars", "defaults"} and path.parent.parent.parent.name == "roles":
            for value, name in _role_constants(path).items():
                if len(value) >= 3:
                    found["constant"][value].add(f"{home} ({name})")
    return found


def _add_pattern(found: dict[str, dict[str, set[str]]], pattern: str, home: str) -> None:
    key = normalise(pattern)
    if len(key) >= MIN_PATTERN:
        found["pattern"][key].add(home)
    for key in _classes(pattern):
        found["class"][key].add(home)


def _file_of(entry: str) -> str:
    return entry.split(" (", 1)[0]


@pytest.mark.parametrize("kind", ["pattern", "class", "constant"])
def test_no_rule_has_two_homes(kind):
    copies = {
        rule: sorted(homes)
        for rule, homes in homes_of_each_rule()[kind].items()
        if len({_file_of(home) for home in homes}) > 1
    }
    assert copies == {}


@pytest.mark.parametrize(
    ("first", "second"),
    [
        (r"^[A-Za-z0-9_.@,:+=/-]+$", r"^[A-Za-z0-9._@,:+=/-]+$"),
        (r"^\d+[KMGT]?$", r"[0-9]+[KMGT]?"),
        (r"'^[A-Za-z0-9][A-Za-z0-9._-]*$'", r"'^[A-Za-z0-9][A-Za-z0-9_.-]*$'"),
        ("^\\\\.d", r"^\.d"),
    ],
)
def test_a_copy_reads_as_a_copy(first, second):
    """The normalisation sees through the ways a copied regex differs from its original."""
    assert normalise(first) == normalise(second)


def test_the_collector_finds_a_copy_in_each_form(tmp_path):
    """A regex in Python's re calls, a pattern-like constant and each Jinja form are all found."""
    python = tmp_path / "a.py"
    python.write_text(
        'import re\nWORD = re.compile(r"^[a-z0-9_.-]+$")\n_PART = r"[A-Z]\\d{2}"\nSUBDIR = "cesres_run"\n'
        'def f():\n    """[a-z]\\\\d{3} in a docstring is prose."""\n    return re.sub("^x+y", "", "")\n'
    )
    patterns, constants = _python_patterns(python)
    assert patterns == {"^[a-z0-9_.-]+$", r"[A-Z]\d{2}", "^x+y"}
    assert constants == {r"[A-Z]\d{2}": "_PART", "cesres_run": "SUBDIR"}
    jinja = tmp_path / "main.yml"
    jinja.write_text(
        "a: \"{{ x is match('^[a-z]+$') }}\"\n"
        "b: \"{{ xs | reject('match', '^[0-9]{2}$') | map('regex_replace', '^(y)', 'z') }}\"\n"
    )
    assert _jinja_patterns(jinja) == {"^[a-z]+$", "^[0-9]{2}$", "^(y)"}
