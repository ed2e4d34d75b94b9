"""The Ansible half is the collection cesres.ctl (galaxy.yml): the checks of `ansible-test sanity` that matter
for it, run offline (ansible-test itself installs each test's requirements from the network first).

- documentation: ansible-doc lists every module of plugins/modules, from the checkout, without -M, and reads each;
- validate-modules: DOCUMENTATION, EXAMPLES and RETURN parse and hold what they must, and the documented
  options are the module's argument_spec (names, types, defaults, required, elements, choices);
- compile: every file of plugins/ compiles with each Python it may run on (the cluster's, rules.CLUSTER_PYTHON,
  and newer; the CLI's own);
- the build: `ansible-galaxy collection build` makes, offline, an artifact that installs, lists its modules and
  whose playbooks parse;
- and ansible-test sanity itself, on that artifact, for each of its tests that needs no download (compile,
  shebang, shellcheck, symlinks, ...; tests/sanity/ignore-2.19.txt says why the one exception is one).
"""

import json
import re
import shutil
import subprocess
import sys
import tarfile
import tomllib
from pathlib import Path
from typing import Any

import pytest
import yaml

from cesres_ctl import rules
from tests.conftest import PROJECT, collection_module

BIN = Path(sys.executable).parent
MODULES = sorted(path.stem for path in (PROJECT / "plugins" / "modules").glob("*.py"))
# ansible-test's validate-modules: an author names a GitHub account.
AUTHOR = re.compile(r"\s\(@[\w-]+\)$")
SUPPORT = {"full", "partial", "none", "N/A"}
PYENV = Path.home() / ".pyenv" / "versions"

pytestmark = pytest.mark.lint


def ansible(*argv: str, env: dict[str, str] | None = None, cwd: Path = PROJECT) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [str(BIN / argv[0]), *argv[1:]], cwd=cwd, env=env, capture_output=True, text=True, timeout=300, check=False
    )


def test_the_collection_is_the_checkout_and_its_version_the_package_s():
    link = PROJECT / "collections" / "ansible_collections" / "cesres" / "ctl"
    assert link.is_symlink() and link.resolve() == PROJECT
    galaxy = yaml.safe_load((PROJECT / "galaxy.yml").read_text())
    package = tomllib.loads((PROJECT / "pyproject.toml").read_text())["project"]
    assert (galaxy["namespace"], galaxy["name"], galaxy["version"]) == ("cesres", "ctl", package["version"])
    # The rules: one file, the collection's, that the CLI imports through a link.
    assert (PROJECT / "cesres_ctl" / "rules.py").resolve() == PROJECT / "plugins" / "module_utils" / "rules.py"


def test_ansible_doc_lists_every_module_without_a_module_path():
    done = ansible("ansible-doc", "--list", "--json", "cesres.ctl")
    assert done.returncode == 0, done.stderr[-3000:]
    assert sorted(json.loads(done.stdout)) == [f"cesres.ctl.{name}" for name in MODULES]


@pytest.fixture(scope="module")
def docs() -> dict[str, Any]:
    done = ansible("ansible-doc", "--json", *(f"cesres.ctl.{name}" for name in MODULES))
    assert done.returncode == 0, done.stderr[-3000:]
    return json.loads(done.stdout)


class _Spec(Exception):
    """What the module gave AnsibleModule, caught before it reads any parameter."""

    def __init__(self, **kwargs: Any) -> None:
        super().__init__("argument_spec")
        self.kwargs = kwargs


def argument_spec(name: str, monkeypatch: pytest.MonkeyPatch) -> dict[str, Any]:
    """The module's argument_spec, as ansible-test reads it: its main() run with AnsibleModule replaced."""
    module = collection_module(f"plugins.modules.{name}")

    def capture(**kwargs: Any) -> None:
        raise _Spec(**kwargs)

    monkeypatch.setattr(module, "AnsibleModule", capture)
    with pytest.raises(_Spec) as caught:
        module.main()
    return caught.value.kwargs["argument_spec"]


@pytest.mark.parametrize("name", MODULES)
def test_each_module_documents_itself_as_validate_modules_requires(name, docs):
    doc = docs[f"cesres.ctl.{name}"]["doc"]
    assert doc["module"] == name and doc["short_description"] and doc["description"]
    authors = doc["author"] if isinstance(doc["author"], list) else [doc["author"]]
    assert all(AUTHOR.search(author) for author in authors), authors
    assert re.fullmatch(r"\d+\.\d+\.\d+", str(doc["version_added"]))
    assert doc["attributes"]["check_mode"]["support"] in SUPPORT
    for option, spec in doc["options"].items():
        assert spec.get("description"), option
        assert not (spec.get("required") and "default" in spec), f"{option}: required with a default"
    for key, value in docs[f"cesres.ctl.{name}"]["return"].items():
        assert value.get("description") and value.get("returned") and value.get("type"), key
    examples = yaml.safe_load(docs[f"cesres.ctl.{name}"]["examples"])
    assert examples and all(task.get("name") and f"cesres.ctl.{name}" in task for task in examples)


@pytest.mark.parametrize("name", MODULES)
def test_each_module_documents_its_argument_spec(name, docs, monkeypatch):
    documented = docs[f"cesres.ctl.{name}"]["doc"]["options"]
    spec = argument_spec(name, monkeypatch)
    assert sorted(documented) == sorted(spec)
    for option, given in spec.items():
        doc = documented[option]
        assert doc.get("type", "str") == given.get("type", "str"), option
        assert bool(doc.get("required")) == bool(given.get("required")), option
        assert doc.get("default") == given.get("default"), option
        assert doc.get("elements") == given.get("elements"), option
        assert doc.get("choices") == given.get("choices"), option


def _python(version: str) -> str | None:
    """An interpreter of `version`: the cluster's is found as the sandbox finds it; the others on PATH."""
    if version == ".".join(map(str, rules.CLUSTER_PYTHON)):
        find = PROJECT / "roles" / "sandbox_cluster" / "files" / "find_python310.sh"
        done = subprocess.run(["bash", str(find)], capture_output=True, text=True, check=False)
        return f"{done.stdout.strip()}/bin/python{version}" if done.returncode == 0 else None
    if sys.version_info[:2] == tuple(map(int, version.split("."))):
        return sys.executable
    # On PATH, else pyenv's (whose shims answer only for the versions it selects).
    candidates = [shutil.which(f"python{version}"), *sorted(PYENV.glob(f"{version}.*/bin/python{version}"))]
    for candidate in filter(None, candidates):
        if subprocess.run([candidate, "-c", "pass"], capture_output=True, check=False).returncode == 0:
            return str(candidate)
    return None


# The cluster's oldest Python, and every newer one up to the newest that the CLI supports (pyproject.toml).
VERSIONS = [f"3.{minor}" for minor in range(rules.CLUSTER_PYTHON[1], 14)]


@pytest.mark.parametrize("version", VERSIONS)
def test_every_plugin_compiles_with_each_python_it_may_run_on(version, tmp_path):
    python = _python(version)
    if python is None:
        pytest.skip(f"no Python {version} on this machine")
    files = sorted(str(path) for path in (PROJECT / "plugins").rglob("*.py"))
    # compileall without writing bytecode into the checkout: into tmp_path.
    done = subprocess.run(
        [python, "-m", "compileall", "-q", "-f", "-s", str(PROJECT), "-p", str(tmp_path), *files],
        capture_output=True,
        text=True,
        check=False,
        env={"PATH": "/usr/bin:/bin", "PYTHONPYCACHEPREFIX": str(tmp_path)},
    )
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]


# The tests of `ansible-test sanity` that need nothing from the network (the others install their
# requirements into a venv first: validate-modules, ansible-doc, import, yamllint, pep8, pylint, runtime-metadata,
# whose checks the tests above and tests/test_lint.py make instead).
OFFLINE_SANITY = (
    "action-plugin-docs",
    "changelog",
    "compile",
    "empty-init",
    "ignores",
    "line-endings",
    "no-assert",
    "no-get-exception",
    "no-illegal-filenames",
    "no-smart-quotes",
    "replace-urlopen",
    "shebang",
    "shellcheck",
    "symlinks",
    "use-argspec-type-path",
    "use-compat-six",
)


@pytest.fixture(scope="module")
def built(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path, dict[str, str]]:
    """The artifact of `ansible-galaxy collection build`, and the collection it installs, away from the
    checkout (whose ansible.cfg names the checkout's own collection), as a person who runs the playbooks by
    hand installs it; with the environment that finds it there."""
    base = tmp_path_factory.mktemp("collection")
    done = ansible("ansible-galaxy", "collection", "build", "--output-path", str(base))
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    (artifact,) = base.glob("cesres-ctl-*.tar.gz")
    installed = base / "installed"
    (base / "ansible.cfg").write_text(f"[defaults]\ncollections_path = {installed}\n")
    env = {"PATH": f"{BIN}:/usr/bin:/bin", "HOME": str(base), "ANSIBLE_CONFIG": str(base / "ansible.cfg")}
    done = ansible("ansible-galaxy", "collection", "install", "--offline", str(artifact), env=env, cwd=base)
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    return artifact, installed / "ansible_collections" / "cesres" / "ctl", env


def test_the_collection_builds_offline_and_installs(built):
    artifact, installed, env = built
    with tarfile.open(artifact) as tar:
        names = set(tar.getnames())
        links = [member.name for member in tar.getmembers() if member.issym()]
    assert {f"plugins/modules/{name}.py" for name in MODULES} <= names
    assert {"plugins/module_utils/rules.py", "plugins/filter/cesres.py", "roles/cesres_job/tasks/main.yml"} <= names
    assert "plugins/module_utils/rules.py" not in links
    # Not the CLI, the tests (but ansible-test's ignore file), the sandbox or the checkout's tools.
    assert not [n for n in names if n.split("/")[0] in {"cesres_ctl", "sandbox", "collections", "bench"}]
    assert not [n for n in names if n.startswith("tests/") and not n.startswith("tests/sanity")]
    assert "tests/sanity/ignore-2.19.txt" in names
    # ansible-doc finds its modules where it is installed, and its playbooks parse there.
    done = ansible("ansible-doc", "--list", "--json", "cesres.ctl", env=env, cwd=installed.parent.parent.parent)
    assert done.returncode == 0, done.stderr[-3000:]
    assert sorted(json.loads(done.stdout)) == [f"cesres.ctl.{name}" for name in MODULES]
    for playbook in ("setup", "train", "prune"):
        done = ansible(
            "ansible-playbook", "-i", "localhost,", "--syntax-check", f"cesres.ctl.{playbook}", env=env, cwd=installed
        )
        assert done.returncode == 0, playbook + ": " + done.stdout[-3000:] + done.stderr[-3000:]


def test_ansible_test_sanity_passes_offline_on_the_artifact(built):
    """ansible-test itself, on the installed artifact (it runs only inside ansible_collections/NS/NAME), for each
    of its tests that needs no download, with tests/sanity/ignore-2.19.txt as the artifact carries it."""
    _artifact, installed, env = built
    tests = [arg for name in OFFLINE_SANITY for arg in ("--test", name)]
    python = f"{sys.version_info[0]}.{sys.version_info[1]}"
    done = ansible("ansible-test", "sanity", "--local", "--python", python, *tests, env=env, cwd=installed)
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
