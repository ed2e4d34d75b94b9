"""The job script of roles/cesres_job, rendered with Ansible's templating and run locally with stubs
for module and mpirun: exit code, copy-back on success, failure, USR1 and TERM, scratch removal,
and hostile values staying literal text."""

import json
import os
import signal
import subprocess
import time
from pathlib import Path

import pytest

from cesres_ctl import rules
from cesres_ctl.runs import jobscript

FAKE_MODEL = r"""
import json, os, sys, time
from pathlib import Path
out = Path("cesres_run/results")
out.mkdir(parents=True, exist_ok=True)
(out / "argv.json").write_text(json.dumps(sys.argv[1:]))
(out / "cwd.txt").write_text(os.getcwd())
(out / "env.json").write_text(json.dumps({k: os.environ.get(k) for k in
    ("HF_HOME", "HF_HUB_OFFLINE", "PYTHONUNBUFFERED", "OMP_NUM_THREADS", "FAKE_VENV", "TRANSFORMERS_CACHE",
     "PYTORCH_TRANSFORMERS_CACHE", "PYTORCH_PRETRAINED_BERT_CACHE")}))
mode = os.environ.get("FAKE_MODE", "ok")
(out / "metrics_epoch_0.json").write_text("{}")
print("fake model running", flush=True)
if mode == "fail":
    sys.exit(3)
if mode == "sleep":
    for _ in range(600):
        time.sleep(0.1)
        if Path(os.environ["FAKE_STOP"]).exists():
            break
(out / "metrics.json").write_text("{}")
"""


def variables(tmp_path: Path, **overrides) -> dict:
    base = {
        "cesres_job_name": "demo",
        "cesres_job_nodes": 1,
        "cesres_job_ntasks": 1,
        "cesres_job_cpus_per_task": 3,
        "cesres_job_gpus": 1,
        "cesres_job_mem": "",
        "cesres_job_time": "00:30:00",
        "cesres_job_account": "",
        "cesres_job_qos": "",
        "cesres_job_mail_user": "",
        "cesres_job_mail_type": "END",
        "cesres_job_extra_sbatch": [],
        "cesres_job_modules_release": "releases/2022a",
        "cesres_job_modules": ["Python/3.10.4-GCCcore-11.3.0", "SciPy-bundle/2022.05-foss-2022a"],
        "cesres_job_entry_point": "cesres_graphcodebert_model.py",
        "__cesres_job_partition": "gpu",
        "__cesres_job_signal_grace": 300,
    }
    base.update(overrides)
    return base


@pytest.fixture
def job(tmp_path):
    """A run directory, code, venv and stubs; returns a function that renders and starts the script."""
    code = tmp_path / "code"
    (code / "runs" / "old").mkdir(parents=True)
    (code / "runs" / "old" / "big.bin").write_text("must not be copied")
    (code / "cesres_graphcodebert_model.py").write_text(FAKE_MODEL)
    venv = tmp_path / "venv" / "bin"
    venv.mkdir(parents=True)
    (venv / "activate").write_text("export FAKE_VENV=active\ndeactivate() { unset FAKE_VENV; }\n")
    stubs = tmp_path / "stubs"
    stubs.mkdir()
    # mpirun [options] cmd...: log the whole command line, then run cmd.
    (stubs / "mpirun").write_text(
        '#!/bin/bash\nprintf "%s\\n" "$*" >> "$FAKE_MPIRUN_LOG"\n'
        'while [[ $1 == -* ]]; do case $1 in -np|--bind-to) shift 2 ;; *) shift ;; esac; done\nexec "$@"\n'
    )
    (stubs / "mpirun").chmod(0o755)
    run_dir = tmp_path / "run"
    (run_dir / "inputs").mkdir(parents=True)
    (run_dir / "config.yaml").write_text("CONFIG: {}\n")
    (run_dir / "inputs" / "training.txt").write_text("data\n")
    scratch = tmp_path / "scratch"
    scratch.mkdir()

    def start(mode="ok", run_env=None, extra_env=None, **overrides):
        script = run_dir / "job.sbatch"
        script.write_text(jobscript.render(variables(tmp_path, **overrides)))
        # What cesres_run writes on the cluster next to it, by the same rule.
        values = {"run_id": "demo-0123456789", "code_dir": str(code), "venv": str(venv.parent)}
        values = {**values, "hf_home": str(tmp_path / "hf"), **(run_env or {})}
        (run_dir / rules.RUN_ENV_FILE).write_text(rules.run_env_text(values))
        env = {
            "PATH": f"{stubs}:{os.environ['PATH']}",
            "HOME": str(tmp_path),
            "SLURM_SUBMIT_DIR": str(run_dir),
            "SLURM_JOB_ID": "42",
            "SLURM_CPUS_PER_TASK": "3",
            "SLURM_NTASKS": "1",
            "LOCALSCRATCH": str(scratch),
            "FAKE_MODE": mode,
            "FAKE_STOP": str(tmp_path / "stop"),
            "FAKE_MPIRUN_LOG": str(tmp_path / "mpirun.log"),
            # Lmod's `module` is a shell function of login shells; here a stub that logs its arguments.
            "BASH_FUNC_module%%": f'() {{ printf "%s\\n" "$*" >> {tmp_path}/module.log; }}',
            **(extra_env or {}),
        }
        return subprocess.Popen(
            ["bash", str(script)], cwd=run_dir, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True
        )

    start.run_dir = run_dir
    start.scratch = scratch
    start.tmp = tmp_path
    return start


def test_rendered_script_has_the_procedure_in_order(tmp_path):
    text = jobscript.render(variables(tmp_path))
    assert text.startswith("#!/bin/bash -l\n")
    assert text.endswith("\n")
    for directive in ("--partition=gpu", "--gres=gpu:1", "--cpus-per-task=3", "--time=00:30:00", "--signal=B:USR1@300"):
        assert f"#SBATCH {directive}\n" in text
    order = [
        "#SBATCH --job-name",
        "\nmodule purge",
        "\nmodule load releases/2022a",
        '\nsource "$venv/bin/activate"',
        '\nmkdir -p "$run_dir/results"',
        "tar -xf",
        '\ncd "$work"',
        "\nmpirun -np",
    ]
    positions = [text.index(marker) for marker in order]
    assert positions == sorted(positions)
    # every #SBATCH line comes before the first command
    last_directive = max(i for i, line in enumerate(text.splitlines()) if line.startswith("#SBATCH"))
    first_command = min(i for i, line in enumerate(text.splitlines()) if line and not line.startswith("#"))
    assert last_directive < first_command
    assert subprocess.run(["bash", "-n"], input=text, text=True, check=False).returncode == 0


def test_no_gpu_line_on_a_cpu_partition_and_optional_lines(tmp_path):
    text = jobscript.render(
        variables(
            tmp_path,
            cesres_job_gpus=0,
            cesres_job_mem="16G",
            cesres_job_account="proj",
            cesres_job_mail_user="a@b.be",
            cesres_job_extra_sbatch=["--exclusive"],
        )
    )
    assert "--gres" not in text
    for line in (
        "#SBATCH --mem=16G",
        "#SBATCH --account=proj",
        "#SBATCH --mail-user=a@b.be",
        "#SBATCH --mail-type=END",
        "#SBATCH --exclusive",
    ):
        assert line in text


def test_an_array_task_runs_the_point_of_its_index_and_logs_there(job, tmp_path):
    # A sweep's job array: submitted from the sweep's directory, whose `points` lists the points' run
    # directories; task 1 is the second point (the fixture's run directory).
    sweep_dir = tmp_path / "sweep"
    sweep_dir.mkdir()
    (sweep_dir / "points").write_text(f"{tmp_path / 'other-point'}\n{job.run_dir}\n")
    points = [{"spec_hash": "0" * 64, "config_b64": ""}] * 2
    env = {"SLURM_SUBMIT_DIR": str(sweep_dir), "SLURM_ARRAY_TASK_ID": "1", "SLURM_ARRAY_JOB_ID": "42"}
    proc = job(extra_env=env, cesres_job_points=points)
    output, _ = proc.communicate(timeout=60)
    assert proc.returncode == 0, output
    assert (job.run_dir / "results" / "metrics.json").is_file()
    assert (job.run_dir / "exit_code").read_text() == "0\n"
    log = (job.run_dir / "slurm-42_1.out").read_text()
    assert "cesres-job: exit code 0" in log
    assert "#SBATCH --output=slurm-%A_%a.out" in (job.run_dir / "job.sbatch").read_text()
    assert not (tmp_path / "other-point").exists()


def test_success_copies_results_back_and_removes_scratch(job):
    proc = job()
    output, _ = proc.communicate(timeout=60)
    assert proc.returncode == 0, output
    results = job.run_dir / "results"
    assert (results / "metrics.json").is_file()
    # The config is the model's only argument (the real program lets the file win over options), and
    # one process runs, not bound to a core (its threads would share it).
    assert json.loads((results / "argv.json").read_text()) == ["-c", "cesres_run/config.yaml"]
    mpirun = (job.tmp / "mpirun.log").read_text().split()
    assert mpirun == [
        "-np",
        "1",
        "--bind-to",
        "none",
        "python3",
        "cesres_graphcodebert_model.py",
        "-c",
        "cesres_run/config.yaml",
    ]
    assert (results / "cwd.txt").read_text() == str(job.scratch / "42")
    env = json.loads((results / "env.json").read_text())
    assert env == {
        "HF_HOME": str(job.tmp / "hf"),
        "HF_HUB_OFFLINE": "1",
        "PYTHONUNBUFFERED": "1",
        "OMP_NUM_THREADS": "3",
        "FAKE_VENV": "active",
        "TRANSFORMERS_CACHE": str(job.tmp / "hf" / "transformers"),
        "PYTORCH_TRANSFORMERS_CACHE": None,
        "PYTORCH_PRETRAINED_BERT_CACHE": None,
    }
    assert not (job.scratch / "42").exists()
    assert (job.run_dir / "exit_code").read_text() == "0\n"
    modules = (job.tmp / "module.log").read_text().splitlines()
    assert modules == [
        "purge",
        "load releases/2022a",
        "load Python/3.10.4-GCCcore-11.3.0 SciPy-bundle/2022.05-foss-2022a",
    ]
    assert "cesres-job: CUDA_VISIBLE_DEVICES=" in output


def transformers_4_20_cache(env: dict) -> str:
    """Where transformers 4.20.1 looks for its cache (transformers/utils/hub.py, lines 68-91)."""

    def getenv(name: str, default: str) -> str:  # env.json holds None for an unset variable
        return default if env.get(name) is None else env[name]

    bert = getenv("PYTORCH_PRETRAINED_BERT_CACHE", str(Path(env["HF_HOME"]) / "transformers"))
    return getenv("TRANSFORMERS_CACHE", getenv("PYTORCH_TRANSFORMERS_CACHE", bert))


def test_a_login_profile_cannot_move_the_transformers_cache(job):
    # The script runs under `bash -l`: what a user's profile exports reaches the model (as an environment
    # the job starts with does), and transformers 4.20 would read its models from there, not from the
    # HF_HOME that setup filled. All three of its variables are tried.
    profile = {
        "TRANSFORMERS_CACHE": str(job.tmp / "profile-cache"),
        "PYTORCH_TRANSFORMERS_CACHE": str(job.tmp / "legacy-cache"),
        "PYTORCH_PRETRAINED_BERT_CACHE": str(job.tmp / "older-cache"),
    }
    for name, value in profile.items():
        proc = job(extra_env={name: value})
        output, _ = proc.communicate(timeout=60)
        assert proc.returncode == 0, output
        env = json.loads((job.run_dir / "results" / "env.json").read_text())
        assert transformers_4_20_cache(env) == str(job.tmp / "hf" / "transformers"), name


def test_the_code_copy_leaves_out_runs_and_git(job):
    proc = job(mode="sleep")
    deadline = time.time() + 30
    while not (job.scratch / "42" / "cesres_run" / "results" / "argv.json").exists():
        assert time.time() < deadline
        time.sleep(0.1)
    copied = job.scratch / "42"
    assert (copied / "cesres_graphcodebert_model.py").is_file()
    assert not (copied / "runs").exists()
    (job.tmp / "stop").write_text("")
    proc.communicate(timeout=60)
    assert proc.returncode == 0


def test_a_failing_model_gives_its_exit_code_and_its_results(job):
    proc = job(mode="fail")
    output, _ = proc.communicate(timeout=60)
    assert proc.returncode == 3, output
    assert (job.run_dir / "results" / "metrics_epoch_0.json").is_file()
    assert (job.run_dir / "exit_code").read_text() == "3\n"
    assert not (job.scratch / "42").exists()


def _wait_running(job):
    deadline = time.time() + 30
    while not (job.scratch / "42" / "cesres_run" / "results" / "argv.json").exists():
        assert time.time() < deadline, "the fake model never started"
        time.sleep(0.1)


def test_usr1_copies_partial_results_and_the_model_goes_on(job):
    proc = job(mode="sleep")
    _wait_running(job)
    proc.send_signal(signal.SIGUSR1)
    deadline = time.time() + 20
    while not (job.run_dir / "results" / "metrics_epoch_0.json").exists():
        assert time.time() < deadline, "USR1 did not copy the partial results"
        time.sleep(0.1)
    assert proc.poll() is None, "the job stopped on USR1"
    (job.tmp / "stop").write_text("")
    output, _ = proc.communicate(timeout=60)
    assert proc.returncode == 0, output
    assert "copying partial results" in output
    assert (job.run_dir / "results" / "metrics.json").is_file()


def test_term_stops_the_model_copies_back_and_cleans(job):
    proc = job(mode="sleep")
    _wait_running(job)
    proc.send_signal(signal.SIGTERM)
    output, _ = proc.communicate(timeout=60)
    assert proc.returncode == 143, output
    assert "terminated: stopping the model" in output
    assert (job.run_dir / "results" / "metrics_epoch_0.json").is_file()
    assert not (job.scratch / "42").exists()
    assert (job.run_dir / "exit_code").read_text() == "143\n"


HOSTILE = ['x"; touch PWNED; "', "$(touch PWNED)", "`touch PWNED`", "a'b; touch PWNED", "${HOME}; touch PWNED"]


def test_hostile_values_stay_literal_text(job):
    proc = job(
        run_env={"run_id": HOSTILE[0]},
        cesres_job_modules=HOSTILE,
        cesres_job_entry_point="cesres_graphcodebert_model.py",
    )
    output, _ = proc.communicate(timeout=60)
    assert proc.returncode == 0, output
    argv = json.loads((job.run_dir / "results" / "argv.json").read_text())
    assert argv == ["-c", "cesres_run/config.yaml"]
    assert (job.tmp / "module.log").read_text().splitlines()[-1] == "load " + " ".join(HOSTILE)
    assert not list(job.tmp.rglob("PWNED")), "a value was executed"
    assert f"run {HOSTILE[0]}," in output


def test_hostile_paths_stay_literal_text(job, tmp_path):
    weird = tmp_path / "we ird$(touch PWNED)"
    (tmp_path / "code").rename(weird)
    paths = {"code_dir": str(weird), "venv": str(tmp_path / "venv"), "hf_home": "/x/$(touch PWNED)"}
    proc = job(run_env=paths)
    output, _ = proc.communicate(timeout=60)
    assert proc.returncode == 0, output
    env = json.loads((job.run_dir / "results" / "env.json").read_text())
    assert env["HF_HOME"] == "/x/$(touch PWNED)"
    assert not list(tmp_path.rglob("PWNED"))
