"""The real CESReS, unchanged, in the sandbox (issue 17): the fork's own code (sandbox/cesres-fork, which the
sandbox publishes as its CESReS repository) on the Python 3.10 module with the modules' real packages.

- setup from nothing installs the fork's real installation/CECI_requirements.txt through the product's
  policy, and says what it decided (the module's torch kept, the pip check lines that only the modules'
  copies on PYTHONPATH cause, the notebook extension a setup script wrote into the venv); again: no change;
- train runs the fork's real template_config.yaml, unchanged, on the CPU (`-- -d cpu` on a partition without
  GPUs: the sandbox has none, and the real torch cannot pretend), with its data (the fork's demo/ files,
  where the template names them: dataset/);
- predict classifies snippets with that run's best.th; a 2-point sweep trains one job array.
A job that imported TensorFlow (a stand-in in the sandbox, whose import fails) would fail: these runs
complete, so the program never imports it.

The runs' own code and venv (~/cesres-real, ~/cesres-real-env) are set up from nothing by this module.
"""

import json
import os
import re
import shutil
import subprocess
import time
from pathlib import Path

import pytest

from tests.conftest import PROJECT, run_cli

pytestmark = pytest.mark.sandbox

BUNDLE = PROJECT / "sandbox" / "cesres-fork" / "INGInious-CESReS.bundle"
ROOT = "~/cesres-real"
VENV = "~/cesres-real-env"
SETS = ("--set", f"root={ROOT}", "--set", f"venv={VENV}")
ON_THE_CPU = ("--partition", "batch", "--gpus", "0")
PIP_CACHE = "/var/cache/cesres-sandbox/pip"  # group_vars/cluster_sandbox.yml, cesres_venv_pip_cache_dir
RECAP = re.compile(r"^sandbox\s*:\s*(.*)$", re.MULTILINE)


@pytest.fixture(scope="module")
def real_setup(sandbox):
    # From nothing: no code, no venv, and no wheel that pip built from checklist's sdist on an earlier run (its
    # cache would skip the setup script that runs while pip reads the sdist's metadata; a first setup runs it).
    # Nor the Jupyter files that an install without setup's policy writes into the home (bench's by-hand steps):
    # the test below proves that setup writes none.
    done = sandbox.ssh(
        f"rm -rf {ROOT} {VENV} ~/.jupyter ~/.local/share/jupyter; rm -f {PIP_CACHE}/wheels/*/*/*/*/checklist-*.whl"
    )
    assert done.returncode == 0, done.stderr
    started = time.monotonic()
    done = run_cli("setup", "--cluster", "sandbox", "-e", json.dumps({"cesres_root": ROOT, "cesres_venv": VENV}))
    print(f"setup of the real CESReS from nothing: {time.monotonic() - started:.0f} s")
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr
    return done


@pytest.fixture(scope="module")
def checkout(tmp_path_factory):
    """The researcher's checkout of the fork on the laptop, its demo data where the template names it."""
    where = tmp_path_factory.mktemp("laptop") / "INGInious-CESReS"
    subprocess.run(["git", "clone", "--quiet", str(BUNDLE), str(where)], check=True)
    (where / "dataset").mkdir()
    for name in ("train.txt", "validation.txt", "test.txt"):
        shutil.copyfile(where / "demo" / name, where / "dataset" / name)
    return where


@pytest.fixture(scope="module")
def cli(tmp_path_factory, real_setup):
    env = {**os.environ, "XDG_STATE_HOME": str(tmp_path_factory.mktemp("state")), "CESRES_CLUSTER": "sandbox"}

    def call(*args: str, cwd: Path, timeout: float = 1200) -> subprocess.CompletedProcess[str]:
        return run_cli(*args, cwd=cwd, env=env, timeout=timeout)

    return call


@pytest.fixture(scope="module")
def trained(cli, checkout):
    template = (checkout / "template_config.yaml").read_bytes()
    done = cli(
        "train", "template_config.yaml", *SETS, *ON_THE_CPU, "--name", "real", "--wait", "--json",
        "--dest", str(checkout / "results-real"), "--", "-d", "cpu", cwd=checkout,
    )  # fmt: skip
    assert (checkout / "template_config.yaml").read_bytes() == template, "train changed the user's config"
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    return json.loads(done.stdout), checkout / "results-real"


def test_setup_from_nothing_installs_the_real_requirements_and_says_what_it_decided(real_setup):
    out = real_setup.stderr  # the roles' reports are notes, beside the progress
    assert "module PyTorch gives torch 1.12.1; the file asks 1.12.0: kept the module's" in out
    # dragon2's TensorFlow and protobuf-python modules put older copies on PYTHONPATH, ahead of the venv.
    assert "pip check: googleapis-common-protos 1.61.0 needs protobuf" in out
    assert "module protobuf-python puts protobuf 3.19.4 on PYTHONPATH, before the venv" in out
    assert "pip check: google-cloud-storage 2.13.0 needs google-auth" in out
    assert "module TensorFlow puts google-auth 2.16.0 on PYTHONPATH" in out
    # checklist 0.0.11's setup script installs jupyter (held to the file's versions) and its notebook extension
    # ("viewer") while pip reads its metadata: into the venv, not into the user's home.
    extensions = r"notebook extensions in the venv \(\S+/cesres-real-env/share/jupyter/nbextensions\), not in your home"
    assert re.search(extensions + r": .*viewer", out)


def test_the_venv_holds_the_files_versions_beside_the_modules_real_packages(sandbox, real_setup):
    script = (
        "module purge; module load releases/2022a; module load Python/3.10.4-GCCcore-11.3.0 "
        "SciPy-bundle/2022.05-foss-2022a PyTorch/1.12.1-foss-2022a-CUDA-11.7.0 "
        "TensorFlow/2.11.0-foss-2022a-CUDA-11.7.0 torchvision/0.13.1-foss-2022a-CUDA-11.7.0; "
        f'. {VENV}/bin/activate; python -c "import json, sys, importlib.metadata as md, torch, numpy, allennlp, '
        "transformers; print(json.dumps([sys.version_info[:2], torch.__version__, torch.__file__, numpy.__version__, "
        "transformers.__version__, md.version('allennlp'), md.version('notebook'), md.version('checklist')]))\"; "
        "ls -d ~/.local/share/jupyter ~/.jupyter 2>/dev/null | wc -l"
    )
    done = sandbox.login_shell(script)
    assert done.returncode == 0, done.stderr[-2000:]
    version, torch, torch_file, numpy, transformers, allennlp, notebook, checklist = json.loads(
        done.stdout.splitlines()[0]
    )
    assert version == [3, 10]
    assert torch == "1.12.1+cu102" and "/sw/PyTorch/1.12.1/" in torch_file  # the module's real torch
    assert numpy == "1.22.3"
    assert (transformers, allennlp, notebook, checklist) == ("4.20.1", "2.10.1", "6.0.1", "0.0.11")  # the file's
    assert done.stdout.splitlines()[1] == "0", "setup wrote Jupyter files into the user's home"


def test_setup_again_changes_nothing(real_setup):
    again = run_cli("setup", "--cluster", "sandbox", "-e", json.dumps({"cesres_root": ROOT, "cesres_venv": VENV}))
    assert again.returncode == 0, again.stderr
    assert re.search(r"sandbox: ok=\d+ changed=0 failed=0", again.stderr), again.stderr


def test_a_changed_pin_of_the_real_file_installs_that_line_only(sandbox, real_setup):
    """The bench's "one pin" row as a test: pip gets the moved line alone, every other line of the real file is
    met and keeps its pin; setting the file back is the same path, and leaves the venv as the runs below need."""
    file, moved = f"{ROOT}/installation/CECI_requirements.txt", f"{ROOT}/installation/CECI_requirements-pin.txt"
    done = sandbox.ssh(f"sed 's/^tqdm==4.66.1$/tqdm==4.66.0/' {file} > {moved} && ! cmp -s {file} {moved}")
    assert done.returncode == 0, done.stderr
    variables = {"cesres_root": ROOT, "cesres_venv": VENV}
    try:
        done = run_cli(
            "setup", "--cluster", "sandbox", "-e", json.dumps({**variables, "cesres_venv_requirements_file": moved})
        )
        assert done.returncode == 0, done.stderr[-3000:]
        met = re.search(r"already installed, not given to pip: (\d+) of (\d+) requirement lines", done.stderr)
        assert met and int(met[2]) == int(met[1]) + 1, done.stderr[-3000:]
        given = sandbox.ssh(f"grep -v '^#' {VENV}/.cesres-plan/requirements.txt | grep .").stdout.split()
        assert given == ["tqdm==4.66.0"], given
    finally:
        back = run_cli("setup", "--cluster", "sandbox", "-e", json.dumps(variables))
        sandbox.ssh(f"rm -f {moved}")
    assert back.returncode == 0, back.stderr[-3000:]
    tqdm = sandbox.ssh(f"ls -d {VENV}/lib/python3.10/site-packages/tqdm-*.dist-info").stdout
    assert "tqdm-4.66.1.dist-info" in tqdm, tqdm


def test_the_real_program_trains_with_the_real_template_on_the_cpu(trained):
    run, results = trained
    assert run["state"] == "COMPLETED", run
    # The template's own loops (10) and outputs, from the real trainer.
    names = {path.name for path in (results / "results").iterdir()}
    assert {"best.th", "test_results.txt", "predictions.txt", "metrics_epoch_9.json"} <= names
    assert "metrics_epoch_10.json" not in names
    assert json.loads((results / "results" / "test_results.txt").read_text())["loss"] > 0
    log = next(results.glob("slurm-*.out")).read_text()
    assert "Building the trainer" in log
    assert "stand-in in the cesres-ctl sandbox" not in log


def test_predict_labels_snippets_with_the_runs_best_weights(cli, checkout, trained):
    run, _ = trained
    snippets = checkout / "snippets.txt"
    snippets.write_text("def f(x):\n    print(x)\n$$$\ndef g(a, b):\n    return a / b\n")
    done = cli(
        "predict", run["run_id"], str(snippets), *ON_THE_CPU, "--set", f"venv={VENV}", "--wait", "--json", cwd=checkout
    )
    assert done.returncode == 0, done.stdout[-2000:] + done.stderr[-2000:]
    predictions = json.loads(done.stdout)["predictions"]
    assert [p["snippet"].splitlines()[0] for p in predictions] == ["def f(x):", "def g(a, b):"]
    labels = {label for p in predictions for label in p["labels"]}
    assert labels <= set(re.findall(r'- "(\w+)"', (checkout / "template_config.yaml").read_text()))


def test_a_two_point_sweep_of_the_real_template(cli, checkout, trained):
    done = cli(
        "sweep", "template_config.yaml", *SETS, *ON_THE_CPU, "--name", "real-sweep",
        "--vary", "TRAINER.learning_rate=1e-5,3e-5", "--json", "--", "-d", "cpu", cwd=checkout,
    )  # fmt: skip
    assert done.returncode == 0, done.stdout[-2000:] + done.stderr[-2000:]
    sweep = json.loads(done.stdout)
    assert len(sweep["points"]) == 2
    deadline = time.monotonic() + 1200
    while True:
        compared = cli("compare", sweep["sweep_id"], "--json", cwd=checkout)
        assert compared.returncode == 0, compared.stderr
        rows = json.loads(compared.stdout)
        if all(row["state"] in ("COMPLETED", "FAILED", "CANCELLED", "TIMEOUT") for row in rows):
            break
        assert time.monotonic() < deadline, rows
        time.sleep(10)
    assert [row["state"] for row in rows] == ["COMPLETED", "COMPLETED"], rows
    assert all(row["best_epoch"] is not None for row in rows), rows


def test_the_sandbox_python_is_a_real_310(sandbox):
    done = sandbox.login_shell(
        "module load releases/2022a Python/3.10.4-GCCcore-11.3.0; python3 -c 'import sys; print(sys.version_info[:2])'"
    )
    assert done.stdout.strip() == "(3, 10)", done.stdout + done.stderr
