"""The REAL CESReS requirements file against dragon2's module set: one resolver run (package index only).

tests/data/CECI_requirements.txt is CESReS's `installation/CECI_requirements.txt` (a pip freeze of 180 exact pins);
roles/sandbox_cluster/files/dragon2_modules_2022a.json (which the sandbox builds its modules from) holds the Python
distributions that dragon2's modules provide, read from the
public EasyBuild easyconfigs of those modules (see its "source" and "notes"). The test applies the product's policy
with the very functions of the collection's module_utils requirements_policy.py, then makes ONE resolver run for
CPython 3.10 on x86_64 manylinux with the protected module packages as constraints, and asserts that it finds a
solution that keeps every protected package at its module's version. It prints what the policy kept, dropped
(kept the module's) and reported.

The resolver is `uv pip compile --python-version 3.10 --python-platform x86_64-manylinux_2_17` (a few seconds), not
`pip install --dry-run --platform ...`: pip needs --only-binary=:all: with --platform, and several pinned releases
have no wheel at all (fairscale 0.4.6, which allennlp 2.10.1 pins, is one: pip stops at "No matching distribution
found for fairscale==0.4.6"). uv reads those sdists' metadata instead; where an sdist has no static metadata, uv runs
its PEP 517 metadata hook with the controller's Python 3.11 (nothing is compiled; a setup.py that computed its
requirements from the running Python version would be read for 3.11, not 3.10). One sdist cannot give its metadata
that way: checklist 0.0.11's setup.py runs `pip install jupyter` from egg_info, and uv's build environment has no
pip. Its requirements are given to uv as they are declared in that sdist's own checklist.egg-info/requires.txt
(CHECKLIST_REQUIRES below): the resolution is still honest about what checklist asks for.

The index is uv's default (PyPI) or UV_INDEX_URL / UV_DEFAULT_INDEX when set; pip.conf is not read. Timeouts are
generous (UV_HTTP_TIMEOUT=300 s per request, 20 min in all) for a slow index.
"""

import json
import os
import re
import subprocess
import sys
import time
from pathlib import Path

import pytest

from tests.conftest import collection_module

pytestmark = pytest.mark.index

PROJECT = Path(__file__).resolve().parents[2]
DATA = PROJECT / "tests" / "data"
REQUIREMENTS = DATA / "CECI_requirements.txt"
MODULES = PROJECT / "roles" / "sandbox_cluster" / "files" / "dragon2_modules_2022a.json"

rp = collection_module("plugins.module_utils.requirements_policy")

# checklist-0.0.11.tar.gz, checklist.egg-info/requires.txt (its setup.py's install_requires).
CHECKLIST_REQUIRES = [
    "numpy>=1.18",
    "spacy>=2.2",
    "munch>=2.5",
    "dill>=0.3.1",
    "jupyter>=1.0",
    "ipywidgets>=7.5",
    "transformers>=2.8",
    "patternfork-nosql",
    "iso-639",
]


def dragon2_provided() -> dict:
    """{name: {version, module, compiled, pythonpath}} as the policy script would find it on dragon2.

    Modules later in load_order come earlier on PYTHONPATH (Lmod prepends), so their copy wins. The Python
    module's own site-packages is the base interpreter's: after the venv, not on PYTHONPATH.
    """
    data = json.loads(MODULES.read_text())
    compiled = {rp.normalize(name) for name in data["compiled"]}
    provided = {}
    for module in data["load_order"]:
        for name, version in data["modules"][module].items():
            provided[rp.normalize(name)] = {
                "name": name,
                "version": version,
                "module": module,
                "compiled": rp.normalize(name) in compiled,
                "pythonpath": module != "Python",
            }
    return provided


def _uv() -> list[str]:
    done = subprocess.run([sys.executable, "-m", "uv", "--version"], capture_output=True, text=True, check=False)
    if done.returncode != 0:
        pytest.fail(f"uv is not installed in {sys.prefix} (pip install -e '.[dev]'): {done.stderr.strip()[-300:]}")
    return [sys.executable, "-m", "uv"]


def _print_report(result: dict, provided: dict) -> None:
    kept = [line for line in result["install"] if not line.startswith("-")]
    overlapping = [line for line in kept if rp.normalize(re.split(r"[=<>!~;\[ ]", line)[0]) in provided]
    print(f"\n== policy on {REQUIREMENTS.name}: {len(kept)} lines kept, {len(result['kept_module'])} dropped")
    print(f"-- kept as they are ({len(kept)}): {', '.join(kept)}")
    print(f"-- of which name a module's distribution ({len(overlapping)}): {', '.join(overlapping)}")
    print(f"-- dropped, kept the module's ({len(result['kept_module'])}):")
    for entry in result["kept_module"]:
        print(f"   line {entry['line']}: {entry['message']}")
    print(f"-- reported, the venv installs its own copy of a pure-Python module package ({len(result['shadowed'])}):")
    for entry in result["shadowed"]:
        print(f"   line {entry['line']}: {entry['message']}")
    print(
        f"-- constraints ({len(result['constraints'])}): {', '.join(c['requirement'] for c in result['constraints'])}"
    )
    for warning in result["warnings"]:
        print(f"-- warning: {warning}")


def test_real_requirements_resolve_under_the_module_policy(tmp_path):
    uv = _uv()
    provided = dragon2_provided()
    lines = REQUIREMENTS.read_text().splitlines()
    result = rp.plan(lines, provided, base_dir=str(REQUIREMENTS.parent))
    _print_report(result, provided)

    # The policy: the file's torch pin gives way to the PyTorch module's, and is reported.
    torch_line = next(i for i, line in enumerate(lines, 1) if line.startswith("torch=="))
    assert {"line": torch_line, "name": "torch", "module": "PyTorch", "module_version": "1.12.1"}.items() <= next(
        e for e in result["kept_module"] if e["name"] == "torch"
    ).items()
    protected = rp.protected_names(provided)
    for line in result["install"]:
        req = rp.parse_requirement(line)
        if req is not None and req.key in protected:
            assert rp.satisfies(provided[req.key]["version"], req.specifier), f"a protected pin was kept: {line}"
    assert not {rp.normalize(c["name"]) for c in result["constraints"]} - set(protected)

    filtered, constraints, config = tmp_path / "requirements.txt", tmp_path / "constraints.txt", tmp_path / "uv.toml"
    filtered.write_text("\n".join(result["lines"]) + "\n")
    constraints.write_text(rp.constraints_text(result))
    config.write_text(
        "[[dependency-metadata]]\n"
        'name = "checklist"\n'
        'version = "0.0.11"\n'
        f"requires-dist = {json.dumps(CHECKLIST_REQUIRES)}\n"
    )
    # pip on the cluster keeps an installed module package that satisfies a requirement (only-if-needed): the
    # module versions of the pure-Python packages are the resolver's preferences (uv prefers the versions of an
    # existing output file), so the solution replaces only those that must change.
    resolved = tmp_path / "resolved.txt"
    resolved.write_text("".join(f"{i['name']}=={i['version']}\n" for k, i in provided.items() if k not in protected))
    argv = [*uv, "pip", "compile", "--config-file", str(config), "--python", sys.executable]
    argv += ["--python-version", "3.10", "--python-platform", "x86_64-manylinux_2_17"]
    argv += [
        "--no-header",
        "--no-annotate",
        "--no-progress",
        "-c",
        str(constraints),
        "-o",
        str(resolved),
        str(filtered),
    ]
    env = dict(os.environ, UV_HTTP_TIMEOUT="300", UV_PYTHON_DOWNLOADS="never", UV_NO_PROGRESS="1")
    start = time.monotonic()
    done = subprocess.run(argv, capture_output=True, text=True, timeout=1200, check=False, env=env, cwd=tmp_path)
    took = time.monotonic() - start
    print(f"== one resolver run (uv pip compile, CPython 3.10, x86_64 manylinux): exit {done.returncode}, {took:.1f} s")
    print("   " + (done.stderr.strip().splitlines() or [""])[-1])
    assert done.returncode == 0, f"no solution under the policy:\n{done.stderr[-6000:]}"

    pins = {}
    for row in resolved.read_text().splitlines():
        match = re.match(r"^([A-Za-z0-9][A-Za-z0-9._-]*)==(\S+)", row.strip())
        if match:
            pins[rp.normalize(match[1])] = match[2]
    print(f"   {len(pins)} distributions in the solution")
    # Every protected module package the solution needs is the module's own: pip will not replace it.
    for key in sorted(protected):
        if key in pins:
            assert pins[key] == provided[key]["version"], f"{key}: solution {pins[key]}, module {provided[key]}"
    assert pins.get("torch") == "1.12.1"
    used = sorted(key for key in protected if key in pins)
    print(f"   module packages the solution uses at the module's version: {', '.join(used)}")
    # Every line kept with an exact pin is honoured as written.
    for line in result["install"]:
        req = rp.parse_requirement(line)
        if req is not None and req.specifier.startswith("==") and "," not in req.specifier:
            assert rp.satisfies(pins[req.key], req.specifier), f"{line}: solution has {pins.get(req.key)}"
    # Pure-Python module packages that the file does not name but the solution needs at another version.
    named = {rp.parse_requirement(line).key for line in result["install"] if rp.parse_requirement(line)}
    for key, info in sorted(provided.items()):
        if key in pins and key not in protected and key not in named and pins[key] != info["version"]:
            where = "on PYTHONPATH, imported before the venv's" if info["pythonpath"] else "the venv's copy wins"
            change = f"{info['name']} {info['version']} -> {pins[key]}"
            print(f"   also installed in the venv, a dependency needs it: {change} ({info['module']}, {where})")
