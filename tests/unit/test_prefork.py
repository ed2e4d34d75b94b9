"""playbooks/callback_plugins/cesres_prefork.py: its lists name every Jinja filter and test that the roles and
playbooks use (one left out is only looked up again by each forked worker, which is slower, not wrong)."""

import importlib.util
from collections.abc import Iterator
from pathlib import Path

import jinja2
import jinja2.nodes
import pytest
import yaml

PROJECT = Path(__file__).resolve().parent.parent.parent
PLUGIN = PROJECT / "playbooks" / "callback_plugins" / "cesres_prefork.py"
# Keys whose values are bare Jinja expressions (conditionals), not templates.
CONDITIONALS = {"when", "changed_when", "failed_when", "until", "that"}


def plugin():
    spec = importlib.util.spec_from_file_location("cesres_prefork", PLUGIN)
    assert spec and spec.loader
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def expressions(node: object, key: str = "") -> Iterator[str]:
    """Every template of a loaded YAML document, conditionals as templates."""
    if isinstance(node, dict):
        for name, value in node.items():
            yield from expressions(value, str(name))
    elif isinstance(node, list):
        for value in node:
            yield from expressions(value, key)
    elif isinstance(node, str):
        if key in CONDITIONALS:
            yield "{{ " + node + " }}"
        elif "{{" in node or "{%" in node:
            yield node


def used() -> tuple[set[str], set[str]]:
    env = jinja2.Environment()  # parsed only, never rendered
    filters: set[str] = set()
    tests: set[str] = set()
    files = [*(PROJECT / "roles").rglob("*.yml"), *(PROJECT / "playbooks").glob("*.yml")]
    files += (PROJECT / "group_vars").glob("*.yml")
    for path in files:
        if "templates" in path.parts:
            continue
        for document in yaml.safe_load_all(path.read_text()):
            for template in expressions(document):
                tree = env.parse(template)
                filters.update(node.name for node in tree.find_all(jinja2.nodes.Filter))
                tests.update(node.name for node in tree.find_all(jinja2.nodes.Test))
    return filters, tests


# Jinja's lexer warns about the backslashes of the roles' regular expressions, which it only reads here.
@pytest.mark.filterwarnings("ignore:invalid escape sequence:DeprecationWarning")
def test_prefork_names_every_filter_and_test_that_the_roles_use():
    filters, tests = used()
    module = plugin()
    assert filters and tests
    assert sorted(filters - set(module.FILTERS)) == []
    assert sorted(tests - set(module.TESTS)) == []
    # And no name that nothing uses any more.
    assert sorted(set(module.FILTERS) - filters) == []
    assert sorted(set(module.TESTS) - tests) == []


@pytest.mark.parametrize("name", ["FILTERS", "TESTS"])
def test_prefork_lists_no_name_twice(name):
    names = getattr(plugin(), name)
    assert len(names) == len(set(names))
