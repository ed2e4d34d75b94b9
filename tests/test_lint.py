"""Static checks are tests: ansible-lint (production profile), yamllint, ruff, mypy and shellcheck."""

import importlib
import importlib.util
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

PROJECT = Path(__file__).resolve().parent.parent
BIN = Path(sys.executable).parent

pytestmark = pytest.mark.lint


def run(*argv: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [str(BIN / argv[0]), *argv[1:]], cwd=PROJECT, capture_output=True, text=True, timeout=900, check=False
    )


def test_ansible_lint_production_profile():
    done = run("ansible-lint", "--profile", "production", "--nocolor")
    assert done.returncode == 0, done.stdout[-6000:] + done.stderr[-3000:]


def test_yamllint():
    done = run("yamllint", "--strict", ".")
    assert done.returncode == 0, done.stdout[-6000:]


def test_ruff_check():
    done = run("ruff", "check", ".")
    assert done.returncode == 0, done.stdout[-6000:]


def test_ruff_format():
    done = run("ruff", "format", "--check", ".")
    assert done.returncode == 0, done.stdout[-6000:]


def test_mypy():
    # [tool.mypy] in pyproject.toml: strict, on cesres_ctl/.
    assert (BIN / "mypy").exists(), f"mypy is not in {BIN}: pip install -e '.[dev]'"
    done = run("mypy")
    assert done.returncode == 0, done.stdout[-6000:] + done.stderr[-3000:]


# --- shellcheck: every piece of shell that remains ------------------------------------------------------

SHELLCHECK_MISSING = (
    "shellcheck is not installed: apt-get install shellcheck (scripts/bootstrap.sh installs it, CI too)"
)
SHELL_SHEBANG = re.compile(r"^#!\s*/(usr/)?bin/(env\s+)?(ba)?sh\b")
# Findings that shellcheck cannot judge, per source, each with its reason; nothing else is excluded.
SHELLCHECK_EXCLUDES = {
    # job.sbatch sources run.env, which cesres_run writes on the cluster (hf_home, venv, ...); runs its
    # functions from traps (shellcheck 0.9 calls them unreachable); and writes `A && B || fail ...` meaning
    # "fail when A or B fails" (SC2015's warning is that C may run after A succeeded: here, when B failed).
    "roles/cesres_job/templates/job.sbatch.j2": ["SC2154", "SC2317", "SC2015"],
}


def _git_files() -> list[str]:
    done = subprocess.run(["git", "ls-files"], cwd=PROJECT, capture_output=True, text=True, check=False)
    assert done.returncode == 0, f"git ls-files failed in {PROJECT}: {done.stderr}"
    return [name for name in done.stdout.splitlines() if (PROJECT / name).is_file()]


def _trusted(value: object) -> object:
    from ansible.template import trust_as_template

    if isinstance(value, dict):
        return {key: _trusted(item) for key, item in value.items()}
    if isinstance(value, list):
        return [_trusted(item) for item in value]
    return trust_as_template(value) if isinstance(value, str) else value


def render_role_template(path: Path) -> str:
    """A role's template rendered as the template action would, with the role's defaults and vars."""
    from cesres_ctl.inventory import init_ansible

    init_ansible()
    from ansible.parsing.dataloader import DataLoader
    from ansible.template import Templar, trust_as_template

    role = path.parent.parent
    variables: dict = {}
    for part in ("defaults", "vars"):
        file = role / part / "main.yml"
        if file.is_file():
            variables.update(yaml.safe_load(file.read_text(encoding="utf-8")) or {})
    variables.update(ansible_managed="Ansible managed", inventory_hostname="sandbox")
    templar = Templar(loader=DataLoader(), variables=_trusted(variables))
    source = trust_as_template(path.read_text(encoding="utf-8"))
    return str(
        templar.template(source, escape_backslashes=False, overrides={"trim_blocks": True, "lstrip_blocks": False})
    )


def render_job_script() -> str:
    """roles/cesres_job's job.sbatch.j2, rendered by the code that --dry-run uses, with the unit tests' values."""
    from cesres_ctl.runs import jobscript
    from tests.unit.test_jobscript import variables

    return jobscript.render(variables(Path("/nonexistent/run")))


def _yaml_scripts(name: str) -> list[tuple[str, str]]:
    """Inline shell of a playbook or tasks file: the script of each `argv: [bash, -c|-lc, SCRIPT, ...]` whose
    script is literal, and each task variable named *_script (for an argv built by a template)."""
    found = []
    for task in _tasks(yaml.safe_load((PROJECT / name).read_text(encoding="utf-8"))):
        label = f"{name}: {task.get('name', '?')}"
        argv = (task.get("ansible.builtin.command") or {}).get("argv") if isinstance(task, dict) else None
        literal = isinstance(argv, list) and len(argv) > 2 and "{{" not in str(argv[2])
        if literal and argv[:1] == ["bash"] and argv[1:2] in (["-c"], ["-lc"]):
            found.append((label, str(argv[2])))
        for key, value in (task.get("vars") or {}).items():
            if key.endswith("_script") and isinstance(value, str):
                found.append((f"{label} ({key})", value))
    return found


def _tasks(data: object) -> list[dict]:
    tasks: list[dict] = []
    if isinstance(data, list):
        for item in data:
            tasks += _tasks(item)
    elif isinstance(data, dict):
        if "name" in data and any("." in str(key) for key in data):
            tasks.append(data)
        for key in ("tasks", "pre_tasks", "post_tasks", "handlers", "block", "rescue", "always"):
            tasks += _tasks(data.get(key))
    return tasks


def shell_sources() -> list[tuple[str, str, str, list[str]]]:
    """(label, shell text, dialect for -s or "" to read the shebang, excluded codes) of every piece of shell."""
    sources = []
    for name in _git_files():
        path = PROJECT / name
        if name.startswith(("sandbox/cesres-mini/", "tests/data/")):
            continue
        if name.endswith(".j2"):
            first = path.read_text(encoding="utf-8", errors="replace").split("\n", 1)[0]
            if name.endswith(".sh.j2") or SHELL_SHEBANG.match(first) or first.startswith("#!/bin/bash"):
                sources.append((name, "template", "", SHELLCHECK_EXCLUDES.get(name, [])))
        elif name.endswith(".sh") or (
            "." not in path.name and SHELL_SHEBANG.match(path.read_text(errors="replace").split("\n", 1)[0])
        ):
            sources.append((name, "file", "", SHELLCHECK_EXCLUDES.get(name, [])))
        elif name.endswith(".yml") and name.startswith(("roles/", "playbooks/", "molecule/")):
            sources += [(label, script, "bash", []) for label, script in _yaml_scripts(name)]
    return sources


SHELL_SOURCES = shell_sources()


def shell_text(label: str, kind: str) -> str:
    path = PROJECT / label
    if kind == "file":
        return path.read_text(encoding="utf-8")
    if kind == "template":
        return (
            render_job_script() if label == "roles/cesres_job/templates/job.sbatch.j2" else render_role_template(path)
        )
    return kind  # inline: the script itself


def test_shell_sources_are_found():
    labels = [label for label, *_ in SHELL_SOURCES]
    assert "roles/cesres_python/files/probe.sh" in labels and "scripts/bootstrap.sh" in labels
    assert "roles/cesres_job/templates/job.sbatch.j2" in labels
    assert any(label.startswith("molecule/default/verify.yml") for label in labels)


@pytest.mark.parametrize(("label", "kind", "dialect", "excluded"), SHELL_SOURCES, ids=[s[0] for s in SHELL_SOURCES])
def test_shellcheck(label, kind, dialect, excluded):
    """Shell files, rendered shell templates and inline scripts pass shellcheck (all severities). A fragment
    without a shebang (run by bash -c / bash -lc) is checked as bash; /etc/profile.d files as sh."""
    assert shutil.which("shellcheck"), SHELLCHECK_MISSING
    text = shell_text(label, kind)
    first = text.split("\n", 1)[0]
    if not dialect and not first.startswith("#!"):
        dialect = "sh" if label.endswith("profile.sh.j2") else "bash"
    argv = ["shellcheck", "--format=gcc", "--external-sources"]
    argv += [f"--shell={dialect}"] if dialect else []
    argv += [f"--exclude={','.join(excluded)}"] if excluded else []
    done = subprocess.run([*argv, "-"], input=text, cwd=PROJECT, capture_output=True, text=True, check=False)
    assert done.returncode == 0, f"{label}:\n{done.stdout}{done.stderr}"


@pytest.mark.parametrize("name", ["bench/setup_noop.py:FLOOR_SCRIPT"])
def test_shellcheck_of_scripts_in_python(name):
    """The bash that Python code sends to a cluster passes shellcheck too."""
    assert shutil.which("shellcheck"), SHELLCHECK_MISSING
    where, variable = name.split(":")
    spec = importlib.util.spec_from_file_location("_checked", PROJECT / where)
    assert spec and spec.loader
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    done = subprocess.run(
        ["shellcheck", "--format=gcc", "--shell=bash", "-"],
        input=getattr(module, variable),
        capture_output=True,
        text=True,
        check=False,
    )
    assert done.returncode == 0, f"{name}:\n{done.stdout}{done.stderr}"
