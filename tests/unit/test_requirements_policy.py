"""The collection's module_utils requirements_policy.py: the module policy on plain data, no cluster."""

import json
import subprocess
import sys
from pathlib import Path

import pytest

from tests.conftest import PROJECT, collection_module

SCRIPT = PROJECT / "plugins" / "module_utils" / "requirements_policy.py"
rp = collection_module("plugins.module_utils.requirements_policy")

# What a dragon2-like module set gives (versions of the public 2022a easyconfigs).
PROVIDED = {
    "torch": {"version": "1.12.1", "module": "PyTorch", "compiled": True, "pythonpath": True},
    "numpy": {"version": "1.22.3", "module": "SciPy-bundle", "compiled": True, "pythonpath": True},
    "requests": {"version": "2.27.1", "module": "Python", "compiled": False, "pythonpath": False},
    "setuptools": {"version": "62.1.0", "module": "Python", "compiled": False, "pythonpath": False},
    "PyYAML": {"version": "6.0", "module": "PyYAML", "compiled": True, "pythonpath": True},
    "protobuf": {"version": "3.19.4", "module": "protobuf-python", "compiled": False, "pythonpath": True},
    "typing_extensions": {"version": "4.2.0", "module": "Python", "compiled": False, "pythonpath": False},
}


def plan(lines, provided=PROVIDED, **kwargs):
    return rp.plan(lines, provided, **kwargs)


# --- the policy -----------------------------------------------------------------------------------


def test_framework_pin_clash_is_dropped_reported_and_constrained():
    result = plan(["allennlp==2.10.1", "torch==1.12.0", "transformers==4.20.1"])
    assert result["kept_module"] == [
        {
            "line": 2,
            "requirement": "torch==1.12.0",
            "name": "torch",
            "module": "PyTorch",
            "module_version": "1.12.1",
            "message": "module PyTorch gives torch 1.12.1; the file asks 1.12.0: kept the module's",
        }
    ]
    assert result["install"] == ["allennlp==2.10.1", "transformers==4.20.1"]
    # Same line numbers: the dropped line becomes a comment naming what was kept.
    assert len(result["lines"]) == 3
    assert result["lines"][1].startswith("#")
    assert "torch==1.12.0" in result["lines"][1]
    pins = {c["requirement"]: c["reason"] for c in result["constraints"]}
    assert pins["torch==1.12.1"] == "framework"
    assert result["shadowed"] == []


@pytest.mark.parametrize("line", ["torch==1.12.1", "torch>=1.10,<1.13", "torch", "torch==1.12.*", "torch~=1.12.0"])
def test_a_line_the_module_satisfies_is_kept_as_a_no_op(line):
    result = plan([line])
    assert result["install"] == [line]
    assert result["kept_module"] == []
    assert result["lines"] == [line]
    assert {"requirement": "torch==1.12.1", "name": "torch", "module": "PyTorch", "reason": "framework"} in result[
        "constraints"
    ]


@pytest.mark.parametrize(
    "line", ["torch<1.12", "torch>1.12.1", "torch!=1.12.1", "torch~=1.11.0", "torch==1.12.1.post1"]
)
def test_any_line_the_module_does_not_satisfy_is_dropped(line):
    result = plan([line])
    assert result["install"] == []
    assert [k["line"] for k in result["kept_module"]] == [1]


def test_pure_python_module_package_is_not_constrained_and_its_line_stays():
    result = plan(["requests==2.31.0", "setuptools==54.2.0", "typing-extensions==4.2.0"])
    assert result["install"] == ["requests==2.31.0", "setuptools==54.2.0", "typing-extensions==4.2.0"]
    assert result["kept_module"] == []
    constrained = {c["name"] for c in result["constraints"]}
    assert not constrained & {"requests", "setuptools", "typing_extensions"}
    # Only the lines asking another version than the module's are reported.
    assert [(s["line"], s["name"], s["module_version"]) for s in result["shadowed"]] == [
        (1, "requests", "2.27.1"),
        (2, "setuptools", "62.1.0"),
    ]
    assert result["shadowed"][0]["message"] == (
        "module Python gives requests 2.27.1; the file asks 2.31.0: the venv installs its own, which hides the module's"
    )


def test_a_pure_package_on_pythonpath_is_reported_as_imported_before_the_venv():
    result = plan(["protobuf==3.20.3"])
    assert result["install"] == ["protobuf==3.20.3"]
    assert "PYTHONPATH puts the module's first" in result["shadowed"][0]["message"]


def test_compiled_module_package_is_protected_even_if_not_a_framework_name():
    result = plan(["PyYAML==5.4.1"])
    assert result["install"] == []
    assert result["kept_module"][0]["message"] == (
        "module PyYAML gives PyYAML 6.0; the file asks 5.4.1: kept the module's"
    )
    assert {"requirement": "PyYAML==6.0", "name": "PyYAML", "module": "PyYAML", "reason": "compiled"} in result[
        "constraints"
    ]


def test_every_protected_module_package_is_constrained_even_when_the_file_does_not_name_it():
    result = plan(["allennlp==2.10.1"])
    assert [c["requirement"] for c in result["constraints"]] == ["numpy==1.22.3", "PyYAML==6.0", "torch==1.12.1"]
    assert rp.constraints_text(result).splitlines()[1:] == [
        "numpy==1.22.3  # module SciPy-bundle, framework",
        "PyYAML==6.0  # module PyYAML, compiled",
        "torch==1.12.1  # module PyTorch, framework",
    ]


def test_a_framework_name_not_provided_by_a_module_is_left_alone():
    result = plan(["scipy==1.11.0", "tensorflow==2.15.0"])
    assert result["install"] == ["scipy==1.11.0", "tensorflow==2.15.0"]
    assert result["kept_module"] == []
    assert "scipy" not in {c["name"] for c in result["constraints"]}


def test_protect_adds_framework_names_and_no_default_frameworks_removes_them():
    provided = {
        "transformers": {"version": "4.30.0", "module": "Transformers", "compiled": False},
        "numpy": {"version": "1.22.3", "module": "SciPy-bundle", "compiled": False},
    }
    lines = ["transformers==4.20.1", "numpy==1.26.0"]
    result = plan(lines, provided, protect=["Transformers"])
    assert [k["name"] for k in result["kept_module"]] == ["transformers", "numpy"]
    result = plan(lines, provided, protect=["transformers"], frameworks=False)
    assert [k["name"] for k in result["kept_module"]] == ["transformers"]
    assert [s["name"] for s in result["shadowed"]] == ["numpy"]


@pytest.mark.parametrize(
    ("provided_name", "line"),
    [
        ("PyYAML", "pyyaml==5.4"),
        ("pyyaml", "PyYAML==5.4"),
        ("ruamel.yaml", "ruamel-yaml==0.18.2"),
        ("ruamel-yaml", "ruamel.yaml==0.18.2"),
        ("ruamel.yaml", "Ruamel_YAML==0.18.2"),
        ("zc.lockfile", "zc-lockfile==3.0.post1"),
    ],
)
def test_names_are_compared_pep503_normalised(provided_name, line):
    provided = {provided_name: {"version": "0.1", "module": "M", "compiled": True}}
    result = plan([line], provided)
    assert result["install"] == []
    assert result["kept_module"][0]["requirement"] == line
    assert result["constraints"][0]["requirement"] == f"{provided_name}==0.1"


def test_comments_blank_lines_and_options_pass_through(tmp_path):
    lines = [
        "# CESReS requirements",
        "",
        "--index-url https://pypi.example/simple",
        "--extra-index-url=https://mirror.example/simple",
        "-r base.txt",
        "-c ../pins.txt",
        "-e ./vendor/pkg",
        "-e git+https://example.org/repo.git#egg=thing",
        "https://example.org/wheels/thing-1.0-py3-none-any.whl",
        "allennlp==2.10.1  # the model",
        "captum==0.7.0 --hash=sha256:abc",
        "numpy==1.22.3 \\",
        "    --hash=sha256:def",
        "requests==2.31.0 ; python_version >= '3.8'",
    ]
    result = plan(lines, base_dir=str(tmp_path))
    out = result["lines"]
    assert len(out) == len(lines)
    for i in (0, 1, 2, 3, 7, 8, 9, 10, 13):
        assert out[i] == lines[i]
    assert out[4] == f"-r {tmp_path / 'base.txt'}"
    assert out[5] == f"-c {(tmp_path / '../pins.txt').resolve()}"
    assert out[6] == f"-e {tmp_path / 'vendor' / 'pkg'}"
    assert out[11] == "numpy==1.22.3     --hash=sha256:def"
    assert out[12] == ""
    assert result["install"][0] == "--index-url https://pypi.example/simple"
    assert "allennlp==2.10.1" in result["install"]
    assert any("base.txt is not filtered" in w for w in result["warnings"])
    assert result["kept_module"] == []
    assert [s["line"] for s in result["shadowed"]] == [14]
    assert "(when python_version >= '3.8')" in result["shadowed"][0]["message"]


def test_editable_current_directory_and_url_options(tmp_path):
    lines = ["-e .", "--find-links wheels", "-f https://download.example/whl", "--requirement=more.txt"]
    assert plan(lines, base_dir=str(tmp_path))["lines"] == [
        f"-e {tmp_path}",
        f"--find-links {tmp_path / 'wheels'}",
        "-f https://download.example/whl",
        f"--requirement={tmp_path / 'more.txt'}",
    ]


def test_extras_markers_and_direct_references_of_a_framework():
    result = plan(['torch[opt]==1.12.0 ; python_version >= "3.8"', "torch @ https://example.org/torch-1.12.0.whl"])
    assert result["install"] == []
    first, second = result["kept_module"]
    assert first["name"] == "torch"
    assert first["message"].endswith('the file asks 1.12.0 (when python_version >= "3.8"): kept the module\'s')
    assert "a direct reference (https://example.org/torch-1.12.0.whl)" in second["message"]


def test_a_venv_copy_of_a_protected_package_is_a_warning():
    provided = {"torch": dict(PROVIDED["torch"], venv_copy={"version": "1.12.0", "first": False})}
    result = plan(["allennlp==2.10.1"], provided)
    assert result["warnings"] == [
        "the venv has its own torch 1.12.0, behind module PyTorch's 1.12.1: pip uninstall torch in the venv removes it"
    ]


# --- versions -------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("version", "spec", "expected"),
    [
        ("1.12.1", "==1.12.1", True),
        ("1.12.1", "==1.12.0", False),
        ("1.0", "==1.0.0", True),
        ("1.12.1+cu117", "==1.12.1", True),
        ("1.12.1", "==1.12.1+cu117", False),
        ("1.12.1", "==1.12.*", True),
        ("1.13.0", "==1.12.*", False),
        ("1.12.1", "!=1.12.*", False),
        ("1.12.1", "~=1.12.0", True),
        ("1.13.0", "~=1.12.0", False),
        ("1.13.0", "~=1.12", True),
        ("2.0.0rc1", "<2.0", False),
        ("2.0.0rc1", ">=2.0.0rc1", True),
        ("1.0.post1", ">1.0", False),
        ("1.0.post1", ">=1.0", True),
        ("1.0.dev1", "<1.0", False),
        ("0.9.dev1", "<1.0", True),
        ("2022.4.24", "!=2019.12.17", True),
        ("3.0.post1", "==3.0.post1", True),
        ("6.0", "(>=5.1)", True),
        ("1!1.0", ">=2.0", True),
        ("1.12.1", "", True),
        ("1.12.1", "=>1.0", None),
        ("not-a-version", "==1.0", None),
    ],
)
def test_satisfies(version, spec, expected):
    assert rp.satisfies(version, spec) is expected


def test_unreadable_version_of_a_framework_is_dropped_with_a_note():
    provided = {"torch": {"version": "weird", "module": "PyTorch", "compiled": True}}
    result = plan(["torch==1.12.0"], provided)
    assert result["kept_module"][0]["message"].endswith("kept the module's (cannot compare the versions)")
    assert result["constraints"] == []
    assert any("not a PEP 440 version" in w for w in result["warnings"])


# --- pip's ResolutionImpossible -------------------------------------------------------------------

# Captured from `pip install --dry-run --ignore-installed --report /dev/null --python-version 3.10
# --platform manylinux2014_x86_64 --only-binary=:all: -r r5.txt` (pip 26.3; progress bars removed).
PIP_TRANSITIVE = """\
Collecting transformers==4.20.1 (from -r r5.txt (line 2))
  Downloading transformers-4.20.1-py3-none-any.whl (4.4 MB)
Collecting tokenizers==0.13.0 (from -r r5.txt (line 3))
  Downloading tokenizers-0.13.0-cp310-cp310-manylinux_2_12_x86_64.manylinux2010_x86_64.whl (7.0 MB)
Collecting filelock (from transformers==4.20.1->-r r5.txt (line 2))
  Downloading filelock-4.1.0-py3-none-any.whl (133 kB)
Collecting huggingface-hub<1.0,>=0.1.0 (from transformers==4.20.1->-r r5.txt (line 2))
  Downloading huggingface_hub-0.36.2-py3-none-any.whl (566 kB)
Collecting numpy>=1.17 (from transformers==4.20.1->-r r5.txt (line 2))
  Downloading numpy-2.2.6-cp310-cp310-manylinux_2_17_x86_64.manylinux2014_x86_64.whl (16.8 MB)
Collecting packaging>=20.0 (from transformers==4.20.1->-r r5.txt (line 2))
  Downloading packaging-26.4-py3-none-any.whl (140 kB)
Collecting pyyaml>=5.1 (from transformers==4.20.1->-r r5.txt (line 2))
  Downloading pyyaml-6.0.4-cp310-cp310-manylinux2014_x86_64.manylinux_2_17_x86_64.manylinux_2_28_x86_64.whl (798 kB)
Collecting regex!=2019.12.17 (from transformers==4.20.1->-r r5.txt (line 2))
  Downloading regex-2026.9.29-cp310-cp310-manylinux2014_x86_64.manylinux_2_17_x86_64.whl (797 kB)
Collecting requests (from transformers==4.20.1->-r r5.txt (line 2))
  Downloading requests-2.34.2-py3-none-any.whl (73 kB)
ERROR: Cannot install -r r5.txt (line 2) and tokenizers==0.13.0 because these package versions have conflicting \
dependencies.

The conflict is caused by:
    The user requested tokenizers==0.13.0
    transformers 4.20.1 depends on tokenizers!=0.11.3, <0.13 and >=0.11.1

Additionally, some packages in these conflicts have no matching distributions available for your environment:
    tokenizers

To fix this you could try to:
1. loosen the range of package versions you've specified
2. remove package versions to allow pip to attempt to solve the dependency conflict

ERROR: ResolutionImpossible: for help visit \
https://pip.pypa.io/en/latest/topics/dependency-resolution/#dealing-with-dependency-conflicts
"""

# The same pip, `-r r1.txt -c c1.txt`: r1.txt = "# demo", "allennlp==2.10.1", "requests==2.27.1",
# "torch==1.12.0"; c1.txt = "torch==1.12.1" (what happens if the policy kept the file's torch).
PIP_CONSTRAINT = """\
Collecting allennlp==2.10.1 (from -r r1.txt (line 2))
  Downloading allennlp-2.10.1-py3-none-any.whl (730 kB)
Collecting requests==2.27.1 (from -r r1.txt (line 3))
  Downloading requests-2.27.1-py2.py3-none-any.whl (63 kB)
ERROR: Cannot install torch==1.12.0 because these package versions have conflicting dependencies.

The conflict is caused by:
    The user requested torch==1.12.0
    The user requested (constraint) torch==1.12.1

Additionally, some packages in these conflicts have no matching distributions available for your environment:
    torch

To fix this you could try to:
1. loosen the range of package versions you've specified
2. remove package versions to allow pip to attempt to solve the dependency conflict

ERROR: ResolutionImpossible: for help visit \
https://pip.pypa.io/en/latest/topics/dependency-resolution/#dealing-with-dependency-conflicts
"""

# The same pip with --only-binary=:all: on allennlp (fairscale 0.4.6 has no wheel).
PIP_NO_DISTRIBUTION = """\
Collecting allennlp==2.10.1 (from -r r2.txt (line 2))
  Downloading allennlp-2.10.1-py3-none-any.whl (730 kB)
Collecting cached-path<1.2.0,>=1.1.3 (from allennlp==2.10.1->-r r2.txt (line 2))
  Downloading cached_path-1.1.6-py3-none-any.whl (26 kB)
ERROR: Ignored the following versions that require a different python version: 0.2.0 Requires-Python ==3.6
ERROR: Could not find a version that satisfies the requirement fairscale==0.4.6 (from allennlp) (from versions: none)
ERROR: No matching distribution found for fairscale==0.4.6 (from allennlp)
"""


def test_explain_conflict_names_the_lines_and_why():
    message = rp.explain_conflict(PIP_TRANSITIVE)
    assert "\n" not in message
    assert message == (
        "pip cannot install these together: line 2 (transformers==4.20.1), line 3 (tokenizers==0.13.0): "
        "the file asks tokenizers==0.13.0; transformers 4.20.1 depends on tokenizers!=0.11.3, <0.13 and >=0.11.1"
    )


def test_explain_conflict_with_a_constraint_uses_the_requirements_file_for_line_numbers():
    lines = ["# demo", "allennlp==2.10.1", "requests==2.27.1", "torch==1.12.0"]
    message = rp.explain_conflict(PIP_CONSTRAINT, lines)
    assert message == (
        "pip cannot install these together: line 4 (torch==1.12.0), the constraint torch==1.12.1: "
        "the file asks torch==1.12.0; the constraints pin torch==1.12.1 (a module's version)"
    )
    assert "torch==1.12.0, the constraint" in rp.explain_conflict(PIP_CONSTRAINT)


def test_explain_no_matching_distribution_and_other_failures():
    assert rp.explain_conflict(PIP_NO_DISTRIBUTION) == (
        "pip finds no installable release for fairscale==0.4.6 (from allennlp) (versions it could use: none)"
    )
    assert rp.explain_conflict("ERROR: Disk quota exceeded\n") == "pip failed: Disk quota exceeded"
    assert rp.explain_conflict("") == "pip failed without a resolution error in its output"


# --- the environment on the cluster, faked --------------------------------------------------------


def _dist(site: Path, name: str, version: str, files=(), wheel=None, egg_top=None):
    if egg_top is not None:
        info = site / f"{name}-{version}-py3.10.egg-info"
        info.mkdir(parents=True)
        (info / "PKG-INFO").write_text(f"Metadata-Version: 2.1\nName: {name}\nVersion: {version}\n")
        (info / "top_level.txt").write_text(f"{egg_top}\n")
        (info / "SOURCES.txt").write_text(f"setup.py\next/{egg_top}.pyx\n")  # sources, not installed files
    else:
        info = site / f"{name}-{version}.dist-info"
        info.mkdir(parents=True)
        (info / "METADATA").write_text(f"Metadata-Version: 2.1\nName: {name}\nVersion: {version}\n")
        (info / "RECORD").write_text("".join(f"{f},,\n" for f in files))
        if wheel is not None:
            (info / "WHEEL").write_text(f"Wheel-Version: 1.0\nRoot-Is-Purelib: {wheel}\n")
    for f in files:
        (site / f).parent.mkdir(parents=True, exist_ok=True)
        (site / f).write_text("")


def test_discover_provided_maps_distributions_to_loaded_modules(tmp_path):
    sw = tmp_path / "easybuild" / "software"
    python_root = sw / "Python" / "3.10.4-GCCcore-11.3.0"
    torch_root = sw / "PyTorch" / "1.12.1-foss-2022a-CUDA-11.7.0"
    scipy_root = sw / "SciPy-bundle" / "2022.05-foss-2022a"
    yaml_root = sw / "PyYAML" / "6.0-GCCcore-11.3.0"
    site = "lib/python3.10/site-packages"
    venv = tmp_path / "venv"
    _dist(python_root / site, "requests", "2.27.1", ["requests/__init__.py"])
    _dist(python_root / site, "MarkupSafe", "2.1.1", ["markupsafe/_speedups.cpython-310-x86_64-linux-gnu.so"])
    _dist(torch_root / site, "torch", "1.12.1", ["torch/__init__.py", "torch/lib/libc10.so"])
    _dist(scipy_root / site, "numpy", "1.22.3", [], wheel="false")
    _dist(scipy_root / site, "gast", "0.5.3", ["gast/__init__.py"], wheel="true")
    (yaml_root / site / "_yaml.cpython-310-x86_64-linux-gnu.so").parent.mkdir(parents=True)
    (yaml_root / site / "_yaml.cpython-310-x86_64-linux-gnu.so").write_text("")
    _dist(yaml_root / site, "PyYAML", "6.0", egg_top="_yaml")
    _dist(tmp_path / "other" / "software" / "Foo" / "1.0" / site, "foo", "1.0", ["foo.py"])
    _dist(tmp_path / "plain", "bar", "2.0", ["bar.py"])
    _dist(venv / site, "torch", "1.12.0", ["torch/__init__.py"])
    _dist(venv / site, "requests", "2.31.0", ["requests/__init__.py"])
    _dist(tmp_path / "home" / ".local" / site, "userpkg", "0.1", ["userpkg.py"])
    pythonpath = [torch_root / site, scipy_root / site, yaml_root / site, tmp_path / "other/software/Foo/1.0" / site]
    pythonpath.append(tmp_path / "plain")
    env = {
        "PYTHONPATH": ":".join(map(str, pythonpath)),
        "EBROOTPYTHON": str(python_root),
        "EBROOTPYTORCH": str(torch_root),
        "EBROOTSCIPYMINBUNDLE": str(scipy_root),
        "EBROOTPYYAML": str(yaml_root),
        "LOADEDMODULES": ":".join(
            ["Python/3.10.4-GCCcore-11.3.0", "SciPy-bundle/2022.05-foss-2022a", "PyTorch/1.12.1-foss-2022a-CUDA-11.7.0"]
        ),
    }
    # sys.path order in a venv: PYTHONPATH entries, then the venv's site-packages, then the base's.
    path = [*map(str, pythonpath), str(venv / site), str(python_root / site), str(tmp_path / "home/.local" / site)]
    import importlib.metadata as md

    found = rp.discover_provided(md.distributions(path=path), env, str(venv), str(python_root))
    summary = {k: (v["version"], v["module"], v["compiled"], v["pythonpath"]) for k, v in found.items()}
    assert summary == {
        "torch": ("1.12.1", "PyTorch", True, True),
        "numpy": ("1.22.3", "SciPy-bundle", True, True),
        "gast": ("0.5.3", "SciPy-bundle", False, True),
        "pyyaml": ("6.0", "PyYAML", True, True),  # EBROOTPYYAML without LOADEDMODULES: its directory
        "foo": ("1.0", "Foo", False, True),  # no EBROOT: the software/<name>/<version> directory
        "bar": ("2.0", f"PYTHONPATH entry {(tmp_path / 'plain').resolve()}", False, True),
        "requests": ("2.27.1", "Python", False, False),
        "markupsafe": ("2.1.1", "Python", True, False),
    }
    assert found["torch"]["venv_copy"] == {"version": "1.12.0", "first": False}
    assert found["requests"]["venv_copy"] == {"version": "2.31.0", "first": True}
    assert found["torch"]["module_full"] == "PyTorch/1.12.1-foss-2022a-CUDA-11.7.0"
    result = rp.plan(["torch==1.12.0", "requests==2.31.0", "pyyaml==5.4"], found)
    assert [k["name"] for k in result["kept_module"]] == ["torch", "pyyaml"]
    assert [s["name"] for s in result["shadowed"]] == ["requests"]
    assert {c["name"] for c in result["constraints"]} == {"torch", "numpy", "PyYAML", "MarkupSafe"}


def test_module_roots_follow_easybuild_variable_names():
    env = {
        "LOADEDMODULES": "SciPy-bundle/2022.05-foss-2022a:libxml2+/1.0:a.b-c/2",
        "EBROOTSCIPYMINBUNDLE": "/sw/SciPy-bundle/2022.05-foss-2022a",
        "EBROOTLIBXML2PLUS": "/sw/libxml2+/1.0",
        "EBROOTABMINC": "/sw/a.b-c/2",
        "EBROOTGCCCORE": "/sw/GCCcore/11.3.0",
    }
    names = {full for _root, _name, full in rp.module_roots(env)}
    assert names == {"SciPy-bundle/2022.05-foss-2022a", "libxml2+/1.0", "a.b-c/2", "GCCcore/11.3.0"}


# --- the command line -----------------------------------------------------------------------------


def test_cli_plan_writes_both_files_and_prints_one_json_object(tmp_path):
    req = tmp_path / "req.txt"
    req.write_text("# top\nallennlp==2.10.1\ntorch==1.12.0\nrequests==2.31.0\n")
    provided = tmp_path / "provided.json"
    provided.write_text(json.dumps(PROVIDED))
    out = tmp_path / "out"
    done = subprocess.run(
        [sys.executable, str(SCRIPT), "plan", str(req), str(out), "--provided", str(provided), "--protect", "captum"],
        capture_output=True,
        text=True,
        check=False,
    )
    assert done.returncode == 0, done.stderr
    assert len(done.stdout.strip().splitlines()) == 1
    result = json.loads(done.stdout)
    assert set(result) == {
        "kept_module",
        "shadowed",
        "constraints",
        "install",
        "met",
        "pins",
        "warnings",
        "requirements",
        "constraints_file",
        "pins_file",
    }
    assert [k["line"] for k in result["kept_module"]] == [3]
    filtered = (out / "requirements.txt").read_text().splitlines()
    assert filtered[1] == "allennlp==2.10.1"
    assert filtered[2].startswith("# cesres: kept module PyTorch's torch 1.12.1")
    assert "torch==1.12.1  # module PyTorch, framework" in (out / "constraints.txt").read_text()
    assert result["requirements"] == str(out / "requirements.txt")


def test_cli_explains_a_conflict(tmp_path):
    log = tmp_path / "pip.log"
    log.write_text(PIP_TRANSITIVE)
    done = subprocess.run(
        [sys.executable, str(SCRIPT), "explain-conflict", str(log)],
        capture_output=True,
        text=True,
        check=False,
    )
    assert done.returncode == 0, done.stderr
    assert done.stdout.count("\n") == 1
    assert done.stdout.startswith("pip cannot install these together: line 2 (transformers==4.20.1)")


def test_cli_unreadable_requirements_is_one_line_exit_2(tmp_path):
    done = subprocess.run(
        [sys.executable, str(SCRIPT), "plan", str(tmp_path / "missing.txt"), str(tmp_path / "o"), "--provided", "-"],
        input="{}",
        capture_output=True,
        text=True,
        check=False,
    )
    assert done.returncode == 2
    assert done.stderr.count("\n") == 1


# --- every pip of the installation holds the file's pins (PIP_CONSTRAINT) ---------------------------


def test_the_pins_are_the_exact_versions_of_the_installed_lines_and_the_module_constraints():
    result = plan(
        [
            "torch==1.12.0",  # the module's 1.12.1 is kept: constrained, not pinned from the file
            "notebook==6.0.1",
            "jupyter[extra]==1.0.0 ; python_version >= '3'",  # extras cannot be constraints
            "requests>=2.28",  # a range holds no other pip to one version
            "numpy",
            "-e ./local",
            "https://example.org/pkg.tar.gz",
        ]
    )
    assert result["pins"] == ["notebook==6.0.1", "jupyter==1.0.0 ; python_version >= '3'"]
    text = rp.pins_text(result)
    lines = [line for line in text.splitlines() if not line.startswith("#")]
    assert lines == [
        "numpy==1.22.3",
        "PyYAML==6.0",
        "torch==1.12.1",
        "notebook==6.0.1",
        "jupyter==1.0.0 ; python_version >= '3'",
    ]


def test_a_pin_of_a_constrained_distribution_is_not_repeated():
    result = plan(["torch==1.12.1", "numpy==1.22.3"])
    lines = [line for line in rp.pins_text(result).splitlines() if not line.startswith("#")]
    assert lines.count("torch==1.12.1") == 1 and lines.count("numpy==1.22.3") == 1


def test_cli_plan_writes_the_pins_file(tmp_path):
    req = tmp_path / "req.txt"
    req.write_text("notebook==6.0.1\ntorch==1.12.0\n")
    provided = tmp_path / "provided.json"
    provided.write_text(json.dumps(PROVIDED))
    done = subprocess.run(
        [sys.executable, str(SCRIPT), "plan", str(req), str(tmp_path / "out"), "--provided", str(provided)],
        capture_output=True,
        text=True,
        check=True,
    )
    result = json.loads(done.stdout)
    assert result["pins_file"] == str(tmp_path / "out" / "pins.txt")
    assert "notebook==6.0.1\n" in (tmp_path / "out" / "pins.txt").read_text()


# --- pip check: what the venv can fix, and what only the modules' order on PYTHONPATH causes -------

PROTOBUF_LINE = (
    "googleapis-common-protos 1.61.0 has requirement protobuf!=3.20.0,!=3.20.1,!=4.21.1,<5.0.0.dev0,>=3.19.5, "
    "but you have protobuf 3.19.4."
)
GOOGLE_AUTH_LINE = (
    "google-cloud-storage 2.13.0 has requirement google-auth<3.0dev,>=2.23.3, but you have google-auth 2.16.0."
)
CHECK_PROVIDED = {
    **PROVIDED,
    "google-auth": {"name": "google-auth", "version": "2.16.0", "module": "TensorFlow", "pythonpath": True},
    "packaging": {"name": "packaging", "version": "20.9", "module": "Python", "pythonpath": False},
}
CHECK_PROVIDED["protobuf"] = {**PROVIDED["protobuf"], "name": "protobuf"}


def test_a_check_line_about_a_module_copy_ahead_of_the_venv_is_reported_not_fatal():
    venv = ["googleapis-common-protos", "google-cloud-storage", "protobuf", "google-auth"]
    result = rp.classify_check([PROTOBUF_LINE, GOOGLE_AUTH_LINE], CHECK_PROVIDED, venv)
    assert result["fatal"] == []
    assert result["reported"] == [
        "pip check: googleapis-common-protos 1.61.0 needs protobuf!=3.20.0,!=3.20.1,!=4.21.1,<5.0.0.dev0,>=3.19.5, "
        "but module protobuf-python puts protobuf 3.19.4 on PYTHONPATH, before the venv: what Python imports "
        "(the venv cannot change it)",
        "pip check: google-cloud-storage 2.13.0 needs google-auth<3.0dev,>=2.23.3, but module TensorFlow puts "
        "google-auth 2.16.0 on PYTHONPATH, before the venv: what Python imports (the venv cannot change it)",
    ]


def test_a_check_line_the_venv_can_fix_is_fatal():
    lines = [
        "allennlp 2.10.1 has requirement requests>=2.28, but you have requests 2.27.1.",  # the base's copy, behind
        "allennlp 2.10.1 requires cached-path, which is not installed.",
        "allennlp 2.10.1 has requirement torch<1.13,>=1.10, but you have torch 2.0.0.",
    ]
    result = rp.classify_check(lines, CHECK_PROVIDED, ["allennlp"])
    # torch is a module's on PYTHONPATH: reported; the other two are the venv's to fix.
    assert result["fatal"] == lines[:2]
    assert len(result["reported"]) == 1 and "module PyTorch puts torch 1.12.1" in result["reported"][0]


def test_a_check_line_of_a_distribution_outside_the_venv_is_reported():
    line = "poetry 1.1.13 has requirement packaging<21.0,>=20.4, but you have packaging 23.2."
    result = rp.classify_check([line, "No broken requirements found.", ""], CHECK_PROVIDED, ["packaging"])
    assert result == {"fatal": [], "reported": [f"pip check, outside the venv: {line}"]}


def test_an_unreadable_check_line_of_the_venv_is_fatal():
    result = rp.classify_check(["allennlp 2.10.1 is not supported on this platform"], CHECK_PROVIDED, ["allennlp"])
    assert result["fatal"] == ["allennlp 2.10.1 is not supported on this platform"]


# --- a changed pin installs that line only ------------------------------------------------------------

FILE = ["allennlp==2.10.1", "tqdm==4.66.0", "transformers==4.20.1", "torch==1.12.0", "rich[jupyter]==13.7.0"]
INSTALLED = {"allennlp": "2.10.1", "tqdm": "4.66.1", "transformers": "4.20.1", "torch": "1.12.1", "rich": "13.7.0"}


def test_lines_that_what_python_finds_meets_are_left_to_the_last_install_and_keep_their_pins():
    result = plan(FILE, installed=INSTALLED)
    # tqdm moved; the extras line always goes to pip (the extras' own requirements are not read here).
    assert result["install"] == ["tqdm==4.66.0", "rich[jupyter]==13.7.0"]
    assert result["met"] == ["allennlp==2.10.1", "transformers==4.20.1"]
    assert result["lines"][0] == "# cesres: already installed (allennlp 2.10.1): allennlp==2.10.1"
    assert result["lines"][1] == "tqdm==4.66.0"
    # pip resolving tqdm may not move what is met: every pin of the file holds it.
    assert {"allennlp==2.10.1", "transformers==4.20.1", "tqdm==4.66.0"} <= set(result["pins"])
    # The module policy is unchanged: torch stays the module's.
    assert [item["requirement"] for item in result["kept_module"]] == ["torch==1.12.0"]


def test_without_what_is_installed_every_line_goes_to_pip():
    assert plan(FILE)["met"] == []
    assert plan(FILE)["install"] == [
        "allennlp==2.10.1",
        "tqdm==4.66.0",
        "transformers==4.20.1",
        "rich[jupyter]==13.7.0",
    ]


@pytest.mark.parametrize("line", ["tqdm==4.66.1 ; python_version >= '3'", "tqdm @ https://example.org/tqdm.whl"])
def test_a_line_with_a_marker_or_a_url_always_goes_to_pip(line):
    assert plan([line], installed={"tqdm": "4.66.1"})["install"] == [line]


def test_a_pin_an_installed_distribution_refuses_gives_pip_every_line_so_that_it_names_the_conflict():
    required_by = {"huggingface-hub": [("transformers", "<1.0,>=0.1.0"), ("datasets", ">=0.14.0")]}
    installed = {"transformers": "4.30.2", "huggingface-hub": "0.16.4", "datasets": "2.14.0"}
    lines = ["transformers==4.30.2", "huggingface-hub==0.10.1", "datasets==2.14.0"]
    result = plan(lines, installed=installed, required_by=required_by)
    assert result["met"] == []
    assert result["install"] == lines
    assert result["warnings"] == [
        "pip gets every line: huggingface-hub==0.10.1 is not what the installed datasets requires"
        " (huggingface-hub>=0.14.0)"
    ]
    # A pin the installed distributions accept changes one line only.
    lines[1] = "huggingface-hub==0.15.1"
    assert plan(lines, installed=installed, required_by=required_by)["install"] == ["huggingface-hub==0.15.1"]


def test_the_plan_command_leaves_met_lines_out_unless_told_all(tmp_path):
    req = tmp_path / "req.txt"
    # pip is installed in every interpreter that runs this: its line is met at the version found.
    pip_version = subprocess.run(
        [sys.executable, "-m", "pip", "--version"], capture_output=True, text=True, check=True
    ).stdout.split()[1]
    req.write_text(f"pip=={pip_version}\ncesres-not-installed-anywhere==1.0\n")
    provided = tmp_path / "provided.json"
    provided.write_text("{}")
    for extra, install in (([], ["cesres-not-installed-anywhere==1.0"]), (["--all"], None)):
        done = subprocess.run(
            [sys.executable, str(SCRIPT), "plan", str(req), str(tmp_path / "out"), "--provided", str(provided), *extra],
            capture_output=True,
            text=True,
            check=False,
        )
        assert done.returncode == 0, done.stderr
        answer = json.loads(done.stdout)
        assert answer["install"] == (install or [f"pip=={pip_version}", "cesres-not-installed-anywhere==1.0"])
        assert f"pip=={pip_version}" in (tmp_path / "out" / "pins.txt").read_text()


def test_a_module_package_the_venv_holds_at_the_files_version_is_met_and_still_reported_as_shadowed():
    # PYTHONPATH puts the module's protobuf 3.19.4 first; the venv's own 3.20.3 is what pip installed last time.
    result = plan(["protobuf==3.20.3"], installed={"protobuf": "3.20.3"})
    assert result["met"] == ["protobuf==3.20.3"] and result["install"] == []
    assert [item["requirement"] for item in result["shadowed"]] == ["protobuf==3.20.3"]
    assert plan(["protobuf==3.20.3"], installed={"protobuf": "3.19.4"})["install"] == ["protobuf==3.20.3"]
