"""Every role's meta/argument_specs.yml, defaults/main.yml and README.md tell the same story.

Defaults are compared as written (a templated default is compared as its text): the specs document the
defaults, they must not drift from the file Ansible actually reads.
"""

import re
from pathlib import Path

import pytest
import yaml

ROLES_DIR = Path(__file__).resolve().parent.parent.parent / "roles"
ROLES = sorted(p.name for p in ROLES_DIR.iterdir() if (p / "meta" / "argument_specs.yml").is_file())
# A README table row: | `name` | type | description |
TABLE_ROW = re.compile(r"^\| `(?P<name>[a-z0-9_]+)` \| (?P<type>[^|]+?) \| (?P<description>.*) \|$", re.MULTILINE)


def load(role: str, *parts: str) -> object:
    return yaml.safe_load((ROLES_DIR / role).joinpath(*parts).read_text(encoding="utf-8"))


def defaults(role: str) -> dict:
    return load(role, "defaults", "main.yml") or {}


def entry_points(role: str) -> dict[str, dict]:
    specs = load(role, "meta", "argument_specs.yml")["argument_specs"]
    return {name: spec.get("options") or {} for name, spec in specs.items()}


def test_every_role_is_checked():
    assert {"cesres_python", "cesres_modules", "cesres_repo", "cesres_venv", "cesres_data", "cesres_hf_cache"} <= set(
        ROLES
    )
    assert {"cesres_job", "sandbox_cluster"} <= set(ROLES)


@pytest.mark.parametrize("role", ROLES)
def test_spec_defaults_equal_the_role_defaults(role):
    values = defaults(role)
    drift = [
        f"{entry}: {name}: spec {option['default']!r} != defaults/main.yml {values.get(name, '<absent>')!r}"
        for entry, options in entry_points(role).items()
        for name, option in options.items()
        if "default" in option and (name not in values or values[name] != option["default"])
    ]
    assert drift == []


@pytest.mark.parametrize("role", ROLES)
def test_every_default_is_documented_in_the_main_spec(role):
    options = entry_points(role)["main"]
    assert sorted(set(defaults(role)) - set(options)) == []


@pytest.mark.parametrize("role", ROLES)
def test_a_default_is_either_in_the_spec_or_the_option_is_required(role):
    """An option documented without a default must be required (Ansible forbids both), and then the role
    may still default it to a shared value (cesres_cluster_modules_release) in defaults/main.yml."""
    for options in entry_points(role).values():
        for name, option in options.items():
            if name in defaults(role) and "default" not in option:
                assert option.get("required"), f"{name}: in defaults/main.yml, neither default nor required in the spec"
            assert not ("default" in option and option.get("required")), f"{name}: required with a default"


def readme_table(role: str) -> dict[str, tuple[str, str]]:
    text = (ROLES_DIR / role / "README.md").read_text(encoding="utf-8")
    return {m["name"]: (m["type"].strip(), m["description"].strip()) for m in TABLE_ROW.finditer(text)}


def readme_defaults_block(role: str) -> dict | None:
    """The README's copy of defaults/main.yml: its first yaml block of top-level variables that has some of them
    (a block of required variables only, or an example playbook, is not a copy)."""
    text = (ROLES_DIR / role / "README.md").read_text(encoding="utf-8")
    for block in re.findall(r"```yaml\n(.*?)```", text, re.DOTALL):
        data = yaml.safe_load(block)
        if isinstance(data, dict) and set(data) & set(defaults(role)):
            return data
    return None


@pytest.mark.parametrize("role", [r for r in ROLES if readme_table(r)])
def test_readme_table_lists_the_spec_options_with_their_types(role):
    options = entry_points(role)["main"]
    table = readme_table(role)
    assert list(table) == list(options), "README table and argument_specs list different variables (or orders)"
    for name, (kind, description) in table.items():
        option = options[name]
        expected = option.get("type", "str") + (" (required)" if option.get("required") else "")
        assert kind == expected, name
        spec_description = option["description"]
        if isinstance(spec_description, list):
            spec_description = " ".join(spec_description)
        assert " ".join(description.split()) == " ".join(spec_description.split()), name


@pytest.mark.parametrize("role", [r for r in ROLES if readme_defaults_block(r) is not None])
def test_readme_copy_of_the_defaults_is_the_defaults(role):
    assert readme_defaults_block(role) == defaults(role)


def facts_set(role: str) -> set[str]:
    names: set[str] = set()
    for path in (ROLES_DIR / role / "tasks").glob("*.yml"):
        for task in yaml.safe_load(path.read_text(encoding="utf-8")) or []:
            names.update(task.get("ansible.builtin.set_fact") or {})
    return names


def offered(role: str) -> set[str]:
    """The public variables of a role's vars/main.yml: what the play reads from it (not its `__` internals)."""
    path = ROLES_DIR / role / "vars" / "main.yml"
    names = set(yaml.safe_load(path.read_text(encoding="utf-8")) or {}) if path.is_file() else set()
    return {name for name in names if not name.startswith("_")}


@pytest.mark.parametrize("role", ROLES)
def test_readme_names_only_variables_and_facts_that_exist(role):
    text = (ROLES_DIR / role / "README.md").read_text(encoding="utf-8")
    named = set(re.findall(rf"\b{role}_[a-z0-9_]*[a-z0-9]", text))
    known = set(entry_points(role)["main"]) | facts_set(role) | offered(role)
    assert sorted(named - known) == []


@pytest.mark.parametrize("role", ROLES)
def test_the_variables_a_role_offers_are_documented_and_prefixed(role):
    names = offered(role)
    text = (ROLES_DIR / role / "README.md").read_text(encoding="utf-8")
    assert sorted(name for name in names if not name.startswith(f"{role}_")) == []
    assert sorted(name for name in names if f"`{name}`" not in text) == []


def test_no_play_or_role_reads_another_roles_private_variables():
    """Roles stand alone: what one role learned reaches another through public variables or facts only."""
    project = ROLES_DIR.parent
    files = [*ROLES_DIR.rglob("*.yml"), *(project / "playbooks").rglob("*.yml"), *(project / "molecule").rglob("*.yml")]
    crossings = []
    for path in files:
        owner = path.relative_to(ROLES_DIR).parts[0] if path.is_relative_to(ROLES_DIR) else None
        for name in set(re.findall(r"\b__([a-z0-9]+(?:_[a-z0-9]+)*)", path.read_text(encoding="utf-8"))):
            role = next((r for r in ROLES if name.startswith(f"{r}_")), None)
            if role is not None and role != owner:
                crossings.append(f"{path.relative_to(project)}: __{name}")
    assert sorted(crossings) == []
