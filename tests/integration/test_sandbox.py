"""The sandbox cluster behaves like CÉCI dragon2 where cesres-ctl depends on it."""

import json
import re
import shlex
import subprocess
import sys
import textwrap
import time
import uuid
from pathlib import Path

import pytest

from tests.conftest import PROJECT, run_cli

pytestmark = pytest.mark.sandbox

NO_MUX = ("-o", "ControlMaster=no", "-o", "ControlPath=none")
RELEASE = "releases/2022a"
PYTHON = "Python/3.10.4-GCCcore-11.3.0"
SCIPY = "SciPy-bundle/2022.05-foss-2022a"
OPENMPI = "OpenMPI/4.1.4-NVHPC-22.11-CUDA-11.7.0"
GIT = "git/2.23.0-GCCcore-8.3.0-nodocs"


def submit_and_wait(sandbox, script: str, *sbatch_args: str, timeout: float = 240) -> tuple[str, str]:
    """Submit a batch script as the cluster user, wait for it to end; return (job id, output)."""
    name = f"t-{uuid.uuid4().hex[:8]}"
    body = textwrap.dedent(script).lstrip()
    remote = (
        f"mkdir -p ~/sbx-tests && cd ~/sbx-tests && cat > {name}.sh && "
        f"sbatch --parsable --wait --output={name}-%j.out {' '.join(map(shlex.quote, sbatch_args))} {name}.sh"
    )
    done = subprocess.run(
        sandbox.ssh_argv(f"bash -lc {shlex.quote(remote)}"),
        input=body,
        capture_output=True,
        text=True,
        timeout=timeout,
        check=False,
    )
    job_id = done.stdout.strip().splitlines()[0] if done.stdout.strip() else ""
    assert job_id.isdigit(), f"sbatch did not submit: {done.stdout}\n{done.stderr}"
    output = sandbox.ssh(f"cat ~/sbx-tests/{name}-{job_id}.out").stdout
    return job_id, output


def sacct_state(sandbox, job_id: str) -> tuple[str, str]:
    # slurmctld sends the job's end to slurmdbd asynchronously: poll briefly.
    for _ in range(50):
        done = sandbox.login_shell(f"sacct --noheader --allocations --parsable2 -j {job_id} -o State,ExitCode")
        line = done.stdout.strip()
        if line and not line.startswith(("RUNNING", "PENDING", "COMPLETING")):
            state, exit_code = line.split("|")
            return state, exit_code
        time.sleep(0.2)
    pytest.fail(f"sacct never reported job {job_id} as finished: {done.stdout} {done.stderr}")


# --- ssh: key only, through the gateway -------------------------------------------------


def test_login_by_key_through_the_gateway(sandbox):
    done = sandbox.ssh("id -un", *NO_MUX)
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == sandbox.user
    config = subprocess.run(
        ["ssh", "-F", str(sandbox.ssh_config), "-G", sandbox.alias],
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    assert f"proxyjump {sandbox.gateway_alias}" in config
    assert "stricthostkeychecking true" in config


def test_password_login_is_refused(sandbox):
    done = sandbox.ssh("true", *NO_MUX, "-o", "PreferredAuthentications=password,keyboard-interactive")
    assert done.returncode == 255
    assert "Permission denied" in done.stderr


def test_root_login_is_refused(sandbox):
    done = sandbox.ssh("true", *NO_MUX, "-l", "root")
    assert done.returncode == 255
    assert "Permission denied" in done.stderr


@pytest.mark.parametrize(("port", "alias_attr"), [(2221, "gateway_alias"), (2222, "alias")])
def test_unknown_key_is_refused(sandbox, tmp_path, port, alias_attr):
    key = tmp_path / "other_key"
    subprocess.run(["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-f", str(key)], check=True)
    # Only this key: no ssh config file, so the sandbox's client key is not offered.
    done = subprocess.run(
        [
            "ssh",
            "-F",
            "/dev/null",
            "-i",
            str(key),
            "-o",
            "IdentitiesOnly=yes",
            "-o",
            "BatchMode=yes",
            "-o",
            f"UserKnownHostsFile={sandbox.root}/ssh/known_hosts",
            "-o",
            f"HostKeyAlias={getattr(sandbox, alias_attr)}",
            "-p",
            str(port),
            f"{sandbox.user}@127.0.0.1",
            "true",
        ],
        capture_output=True,
        text=True,
        timeout=30,
        check=False,
    )
    assert done.returncode == 255
    assert "Permission denied (publickey)" in done.stderr


def test_gateway_only_relays_to_the_login_node(sandbox):
    base = ["ssh", "-F", str(sandbox.ssh_config), *NO_MUX]
    relayed = subprocess.run(
        [*base, "-W", "127.0.0.1:2222", sandbox.gateway_alias],
        input="",
        capture_output=True,
        timeout=30,
        check=False,
    )
    assert relayed.stdout.startswith(b"SSH-2.0-OpenSSH"), relayed.stderr
    refused = subprocess.run(
        [*base, "-W", "127.0.0.1:3307", sandbox.gateway_alias],
        input="",
        capture_output=True,
        timeout=30,
        check=False,
    )
    assert b"administratively prohibited" in refused.stderr


def test_changed_host_key_is_rejected(sandbox, tmp_path):
    known_hosts = tmp_path / "known_hosts"
    other = tmp_path / "other_host_key"
    subprocess.run(["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-f", str(other)], check=True)
    fake = other.with_suffix(".pub").read_text().split()[:2]
    known_hosts.write_text(f"{sandbox.gateway_alias} {' '.join(fake)}\n")
    done = sandbox.ssh("true", *NO_MUX, "-o", f"UserKnownHostsFile={known_hosts}")
    assert done.returncode == 255
    assert "HOST IDENTIFICATION HAS CHANGED" in done.stderr or "Host key verification failed" in done.stderr


# --- Lmod ---------------------------------------------------------------------------------


def test_module_is_not_defined_in_a_plain_ssh_command(sandbox):
    done = sandbox.ssh("module --version")
    assert done.returncode == 127


def test_python_module_needs_the_release_first(sandbox):
    before = sandbox.login_shell(f"module purge && module load {PYTHON}")
    assert before.returncode != 0
    assert "cannot be loaded" in before.stderr or "unknown" in before.stderr
    after = sandbox.login_shell(
        f"module purge && module load {RELEASE} && module load {PYTHON} {SCIPY} && "
        'command -v python3 && echo "EB=$EBROOTPYTHON" && '
        "python3 -c 'import numpy; print(numpy.__version__, numpy.__file__)'"
    )
    assert after.returncode == 0, after.stderr
    python, eb_root, numpy_line = after.stdout.split("\n")[:3]
    assert python.startswith(str(sandbox.root / "sw" / "Python"))
    assert eb_root == f"EB={sandbox.root}/sw/Python/3.10.4"
    assert numpy_line.startswith("1.22.3 ")
    assert "/sw/SciPy-bundle/" in numpy_line


@pytest.mark.parametrize(
    "module",
    [
        "CUDA/11.7.0",
        OPENMPI,
        "tensorboardX/2.5.1-foss-2022a",
        "PyTorch/1.12.1-foss-2022a-CUDA-11.7.0",
        "TensorFlow/2.11.0-foss-2022a-CUDA-11.7.0",
        "torchvision/0.13.1-foss-2022a-CUDA-11.7.0",
        GIT,
    ],
)
def test_every_dragon2_module_loads_and_sets_its_root(sandbox, module):
    name = module.split("/")[0].upper().replace("-", "")
    done = sandbox.login_shell(
        f"module purge && module load {RELEASE} && module load {module} && "
        f"printenv EBROOT{name} && module help {module}"
    )
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip().startswith(str(sandbox.root / "sw"))
    assert "Sandbox:" in done.stderr  # module help says what the sandbox really provides


def test_tensorboardx_module_provides_the_real_package(sandbox):
    done = sandbox.login_shell(
        f"module purge && module load {RELEASE} && module load tensorboardX/2.5.1-foss-2022a && "
        "python3 -c 'import tensorboardX; print(tensorboardX.__version__)'"
    )
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == "2.5.1"


def test_globalscratch_is_set_in_login_shells(sandbox):
    done = sandbox.login_shell('test -d "$GLOBALSCRATCH" && test -w "$GLOBALSCRATCH" && echo "$GLOBALSCRATCH"')
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == f"{sandbox.root}/globalscratch/{sandbox.user}"


# --- Slurm --------------------------------------------------------------------------------


def test_partitions_are_dragon2s():
    status = json.loads(run_cli("sandbox", "status", "--json").stdout)
    partitions = {p["name"]: p for p in status["partitions"]}
    assert set(partitions) == {"batch", "gpu", "debug", "long"}
    assert partitions["batch"]["default"]
    assert partitions["debug"]["max_time"] == "30:00"
    assert partitions["batch"]["max_time"] == "5-00:00:00"
    assert partitions["long"]["max_time"] == "21-00:00:00"


def test_gpu_job_sees_its_gpu_and_a_private_localscratch(sandbox):
    job_id, output = submit_and_wait(
        sandbox,
        f"""
        #!/bin/bash -l
        echo "gpus=$CUDA_VISIBLE_DEVICES"
        echo "scratch=$LOCALSCRATCH"
        stat -c 'owner=%U mode=%a' "$LOCALSCRATCH"
        echo data > "$LOCALSCRATCH/probe" && echo "scratch-writable"
        module purge && module load {RELEASE} && module load {PYTHON} {OPENMPI}
        mpirun -np 1 python3 -c 'print("mpi-rank-ok")'
        nvidia-smi
        """,
        "--partition=gpu",
        "--gres=gpu:1",
        "--time=00:05:00",
    )
    assert re.search(r"^gpus=[01]$", output, re.M), output
    scratch = re.search(r"^scratch=(.+)$", output, re.M).group(1)
    assert scratch == f"{sandbox.root}/scratch/{job_id}"
    assert f"owner={sandbox.user} mode=700" in output
    assert "scratch-writable" in output
    assert "mpi-rank-ok" in output
    assert "Sandbox Fake GPU" in output
    assert not (sandbox.root / "scratch" / job_id).exists(), "the epilog must remove $LOCALSCRATCH"
    assert sacct_state(sandbox, job_id) == ("COMPLETED", "0:0")


def test_batch_job_has_no_gpu(sandbox):
    _, output = submit_and_wait(
        sandbox, '#!/bin/bash -l\necho "gpus=${CUDA_VISIBLE_DEVICES:-none}"\n', "--time=00:02:00"
    )
    assert "gpus=none" in output


def test_sacct_reports_a_failed_job_and_its_exit_code(sandbox):
    job_id, _ = submit_and_wait(sandbox, "#!/bin/bash -l\nexit 3\n", "--time=00:02:00")
    assert sacct_state(sandbox, job_id) == ("FAILED", "3:0")


def test_debug_partition_refuses_more_than_30_minutes(sandbox):
    done = sandbox.login_shell("sbatch --partition=debug --time=00:31:00 --wrap true")
    assert done.returncode != 0
    assert "time limit" in done.stderr.lower()
    accepted = sandbox.login_shell("sbatch --parsable --partition=debug --time=00:30:00 --wrap true")
    assert accepted.returncode == 0, accepted.stderr


PIP_DOWNLOAD = (
    # Ignore this machine's pip configuration (local wheel mirrors): ask the real index.
    "PIP_CONFIG_FILE=/dev/null python3 -m pip download --no-deps --no-cache-dir --retries 2 --timeout 30 "
    '--index-url https://pypi.org/simple -d "$(mktemp -d)" six'
)


def test_login_node_reaches_the_package_index(sandbox):
    done = sandbox.login_shell(f"module purge && module load {RELEASE} && module load {PYTHON} && {PIP_DOWNLOAD}")
    assert done.returncode == 0, done.stdout + done.stderr
    assert "Saved" in done.stdout


def test_jobs_have_no_internet(sandbox):
    _, output = submit_and_wait(
        sandbox,
        f"""
        #!/bin/bash -l
        module purge && module load {RELEASE} && module load {PYTHON}
        {PIP_DOWNLOAD}
        echo "pip-rc=$?"
        ip route show default | grep -q . && echo "has-default-route" || echo "no-default-route"
        """,
        "--time=00:03:00",
    )
    assert "pip-rc=0" not in output
    assert re.search(r"^pip-rc=[1-9]", output, re.M), output
    assert "no-default-route" in output


def test_login_and_compute_nodes_look_like_el8(sandbox):
    """As on CÉCI's EL8 nodes: python3 is 3.6 (too old for Ansible) and git is not on PATH until its module is
    loaded, on the login node and in jobs; the Python and git modules work."""
    probe = (
        "python3 -V; python3 -c 'print(1)' || echo python3-runs-nothing; git version >/dev/null 2>&1 || echo no-git; "
        f"module purge; module load {RELEASE} {PYTHON} {GIT}; "
        "python3 -c 'import sys; print(sys.version_info >= (3, 8))'; "
        "git --version"
    )
    login = sandbox.login_shell(probe)
    _, job = submit_and_wait(sandbox, f"#!/bin/bash -l\n{probe}\n", "--time=00:03:00")
    for output in (login.stdout, job):
        lines = output.splitlines()
        assert "Python 3.6.8" in lines and "python3-runs-nothing" in lines and "no-git" in lines, output
        assert "True" in lines and any(line.startswith("git version") for line in lines), output


def test_cesres_mini_trains_in_a_job_and_its_validation_loss_falls(sandbox):
    setup = sandbox.login_shell(
        f"set -e; module purge; module load {RELEASE}; module load {PYTHON} {SCIPY} {GIT}; "
        "rm -rf ~/sbx-tests/cesres ~/sbx-tests/env; mkdir -p ~/sbx-tests; "
        f"git clone --quiet {sandbox.root}/git/cesres-mini.git ~/sbx-tests/cesres; "
        "python3 -m venv --system-site-packages ~/sbx-tests/env; "
        # The file pins torch 1.12.0 as the real one does; the PyTorch module gives 1.12.1 (cesres_venv's
        # policy drops that line; by hand, as here, it has to go).
        "grep -v '^torch==' ~/sbx-tests/cesres/installation/CECI_requirements.txt > ~/sbx-tests/requirements.txt; "
        "~/sbx-tests/env/bin/pip install --quiet -r ~/sbx-tests/requirements.txt; "
        # The model its config names, from the hub imitation, as setup caches it on the login node.
        "HF_HOME=~/sbx-tests/hf HF_ENDPOINT=http://127.0.0.1:6820 ~/sbx-tests/env/bin/python -c "
        '\'from transformers import AutoConfig as C, AutoTokenizer as T; m = "Enoch/graphcodebert-py"; '
        "C.from_pretrained(m); T.from_pretrained(m)'"
    )
    assert setup.returncode == 0, setup.stderr
    job_id, output = submit_and_wait(
        sandbox,
        f"""
        #!/bin/bash -l
        module purge && module load {RELEASE} && module load {PYTHON} {SCIPY} {OPENMPI}
        source ~/sbx-tests/env/bin/activate
        # No git on the compute node (GitPython, imported by the model, needs this), no internet.
        export GIT_PYTHON_REFRESH=quiet HF_HOME=~/sbx-tests/hf TRANSFORMERS_OFFLINE=1 HF_HUB_OFFLINE=1
        work="$LOCALSCRATCH/$SLURM_JOB_ID"
        mkdir -p "$work" && cp -r ~/sbx-tests/cesres/. "$work" && cd "$work"
        sed -e 's/loops: 10/loops: 6/' -e 's#output/demo#output/run#' configs/demo.yaml > run.yaml
        mpirun -np 1 python3 cesres_graphcodebert_model.py -c run.yaml
        rc=$?
        deactivate
        rm -rf "$SLURM_SUBMIT_DIR/mini-results" && cp -r output/run "$SLURM_SUBMIT_DIR/mini-results"
        exit $rc
        """,
        "--partition=gpu",
        "--gres=gpu:1",
        "--time=00:10:00",
    )
    assert sacct_state(sandbox, job_id) == ("COMPLETED", "0:0"), output
    results = sandbox.home / "sbx-tests" / "mini-results"
    losses = [
        json.loads((results / f"metrics_epoch_{epoch}.json").read_text())["validation_loss"] for epoch in range(6)
    ]
    assert losses[-1] < losses[0], losses
    assert (results / "best.th").stat().st_size > 0
    assert "best_validation_loss" in json.loads((results / "metrics_epoch_5.json").read_text())


# --- the build itself ----------------------------------------------------------------------


ANSIBLE_PLAYBOOK = str(Path(sys.executable).parent / "ansible-playbook")


def build_sandbox(*options: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [ANSIBLE_PLAYBOOK, "playbooks/sandbox.yml", *options],
        cwd=PROJECT,
        capture_output=True,
        text=True,
        timeout=900,
        check=False,
    )


def test_second_build_changes_nothing_and_logs_no_secret(sandbox):
    # Verbose and with diffs: even then the accounting database password stays out of the output.
    done = build_sandbox("-v", "--diff")
    password = (sandbox.root / "secrets" / "slurmdbd_password").read_text().strip()
    assert len(password) >= 16
    assert password not in done.stdout + done.stderr
    assert done.returncode == 0, done.stdout[-3000:]
    recap = re.search(r"localhost\s*:\s*ok=\d+\s+changed=(\d+)\s+unreachable=0\s+failed=0", done.stdout)
    assert recap, done.stdout[-2000:]
    assert recap.group(1) == "0", done.stdout[-5000:]


def test_build_refuses_a_foreign_slurm_configuration(sandbox):
    conf = Path("/etc/slurm/gres.conf")
    original = conf.read_text()
    try:
        conf.write_text("# written by someone else\nNodeName=x Name=gpu File=/dev/null\n")
        done = build_sandbox()
    finally:
        conf.write_text(original)
    assert done.returncode != 0
    assert "was not written by cesres-ctl" in done.stdout
