"""playbooks/setup.yml and `cesres-ctl setup` against the sandbox cluster.

One fresh setup is shared by the module's assertions; the requirement and local-change scenarios use
their own throwaway root and venv (pushed from a local copy of cesres-mini), so the shared ~/cesres and
~/cesres_env that the job tests read are never left broken.
"""

import json
import os
import re
import subprocess
import sys
import time
from pathlib import Path

import pytest

from tests.conftest import MINI, PROJECT, copy_mini, mini_repo, run_cli

pytestmark = pytest.mark.sandbox

BIN = Path(sys.executable).parent
MODULES = "releases/2022a"
RECAP = re.compile(r"^sandbox\s*:\s*(.*)$", re.MULTILINE)


def ansible_playbook(*args: str, timeout: float = 600) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "PATH": f"{BIN}{os.pathsep}{os.environ['PATH']}", "ANSIBLE_NOCOLOR": "1"}
    return subprocess.run(
        [str(BIN / "ansible-playbook"), "playbooks/setup.yml", "-l", "sandbox", "-e", json.dumps(mini_repo()), *args],
        cwd=PROJECT,
        capture_output=True,
        text=True,
        timeout=timeout,
        check=False,
        env=env,
    )


def recap(output: str) -> dict[str, int]:
    match = RECAP.findall(output)
    assert match, output[-3000:]
    return {k: int(v) for k, v in re.findall(r"(\w+)=(\d+)", match[-1])}


def reset(sandbox, *paths: str) -> None:
    quoted = " ".join(f'"$HOME/{p}"' for p in paths)
    done = sandbox.ssh(f"rm -rf {quoted}")
    assert done.returncode == 0, done.stderr


def venv_env(sandbox, venv: str) -> str:
    """Shell prefix: the modules of group_vars/ceci.yml loaded, as in a job."""
    return (
        f"module purge; module load {MODULES}; module load Python/3.10.4-GCCcore-11.3.0 "
        "SciPy-bundle/2022.05-foss-2022a CUDA/11.7.0 OpenMPI/4.1.4-NVHPC-22.11-CUDA-11.7.0 "
        "tensorboardX/2.5.1-foss-2022a PyTorch/1.12.1-foss-2022a-CUDA-11.7.0 "
        "TensorFlow/2.11.0-foss-2022a-CUDA-11.7.0 torchvision/0.13.1-foss-2022a-CUDA-11.7.0; "
        f"py=$HOME/{venv}/bin/python; "
    )


# --- molecule first: it resets the user's state before and after itself -------------------------


def test_molecule_default_scenario(sandbox):
    env = {**os.environ, "PATH": f"{BIN}{os.pathsep}{os.environ['PATH']}", "PY_COLORS": "0"}
    done = subprocess.run(
        [str(BIN / "molecule"), "test"], cwd=PROJECT, capture_output=True, text=True, timeout=600, check=False, env=env
    )
    assert done.returncode == 0, (done.stdout + done.stderr)[-6000:]
    assert "idempotence: Executed: Successful" in re.sub(r"\x1b\[[0-9;]*m", "", done.stdout + done.stderr)


# --- one setup from nothing, shared -----------------------------------------------------------


@pytest.fixture(scope="module")
def first_setup(sandbox):
    reset(sandbox, "cesres", "cesres_env", ".cache/huggingface")
    start = time.monotonic()
    done = run_cli("setup", "--cluster", "sandbox", "-e", json.dumps(mini_repo()))
    elapsed = time.monotonic() - start
    print(f"first setup: {elapsed:.1f} s")
    return done, elapsed


def test_setup_from_nothing_succeeds(first_setup):
    done, _ = first_setup
    assert done.returncode == 0, done.stdout + done.stderr
    assert "failed=0" in done.stderr and "unreachable=0" in done.stderr
    # cesres-mini's requirements pin torch 1.12.0, as the real file does: reported (a note: stderr), not fatal.
    assert "sandbox: module PyTorch gives torch 1.12.1; the file asks 1.12.0: kept the module's" in done.stderr
    assert done.stdout.startswith("setup of sandbox done (log: ") and len(done.stdout.splitlines()) == 1, done.stdout


def test_numpy_comes_from_the_module_and_requirements_import(sandbox, first_setup):
    assert first_setup[0].returncode == 0
    done = sandbox.login_shell(
        venv_env(sandbox, "cesres_env") + '"$py" -c "import json, sys, numpy, yaml, tabulate; '
        'print(json.dumps([sys.prefix, numpy.__file__, numpy.__version__]))"; '
        '"$py" -m pip list --path "$HOME/cesres_env/lib/python3.10/site-packages" --format=json'
    )
    assert done.returncode == 0, done.stderr
    prefix, numpy_file, numpy_version = json.loads(done.stdout.splitlines()[0])
    assert prefix.endswith("/cesres_env")
    assert "/sw/SciPy-bundle/" in numpy_file and numpy_version == "1.22.3"
    in_venv = {p["name"].lower(): p["version"] for p in json.loads(done.stdout.splitlines()[1])}
    # numpy, torch and PyYAML (a dependency of dragon2's PyTorch module, compiled) are the modules'.
    assert not {"numpy", "torch", "pyyaml"} & set(in_venv) and "tabulate" in in_venv
    # The Python module bundles requests 2.27.1; the file needs 2.31.0: installed into the venv.
    assert in_venv["requests"] == "2.31.0"


def test_pip_check_passes_for_the_venv(sandbox, first_setup):
    assert first_setup[0].returncode == 0
    done = sandbox.login_shell(
        venv_env(sandbox, "cesres_env") + '"$py" -m pip check; echo ==; '
        '"$py" -m pip list --path "$HOME/cesres_env/lib/python3.10/site-packages" --format=json'
    )
    check, _, listed = done.stdout.partition("==\n")
    ours = {item["name"].lower().replace("_", "-") for item in json.loads(listed)}
    # What the modules bundle may clash among themselves and with the venv's newer copies (dragon2's Python
    # module's poetry wants an older packaging): not the venv's to fix. Nothing the venv installed may clash.
    problems = [line for line in check.splitlines() if line.split(" ", 1)[0].lower().replace("_", "-") in ours]
    assert problems == [], check


NOTHING_CHANGED = "nothing changed since the last setup that succeeded"
PLAY_PROBE = "Read the state of what the play provisions"
RECORD = ".cesres/setup.record"
GIT = "git/2.23.0-GCCcore-8.3.0-nodocs"


def test_rerun_ends_after_one_command_nothing_having_changed(sandbox, first_setup):
    """roles/cesres_unchanged: the record of the first setup holds, so the play ends after one command (no login
    shell, no probe), and says so; cesres-ctl says it on stdout."""
    assert first_setup[0].returncode == 0
    assert sandbox.ssh(f"test -s {RECORD}").returncode == 0
    before = sandbox.ssh("stat -c %Y cesres_env/cesres-pip.log").stdout
    done = ansible_playbook()
    assert done.returncode == 0, done.stdout[-3000:]
    assert NOTHING_CHANGED in done.stdout and PLAY_PROBE not in done.stdout, done.stdout[-3000:]
    assert "-e cesres_unchanged_shortcut=false runs every step" in done.stdout
    assert recap(done.stdout)["changed"] == 0
    via_cli = run_cli("setup", "--cluster", "sandbox", "-e", json.dumps(mini_repo()))
    assert via_cli.returncode == 0, via_cli.stderr
    full = run_cli("setup", "--cluster", "sandbox", "--full", "-e", json.dumps(mini_repo()))
    assert full.returncode == 0 and full.stdout.startswith("setup of sandbox done"), full.stdout + full.stderr
    assert "changed=0" in full.stderr
    assert re.fullmatch(
        r"setup of sandbox: nothing changed since its last setup \(recorded [^)]+\): no step ran\n", via_cli.stdout
    ), via_cli.stdout
    assert NOTHING_CHANGED in ansible_playbook().stdout  # --full recorded its setup too
    assert sandbox.ssh("stat -c %Y cesres_env/cesres-pip.log").stdout == before


def test_a_change_on_the_cluster_since_the_last_setup_runs_it_whole(sandbox, first_setup):
    """What the record watches, changed by hand on the cluster: the play runs whole, and records again. A commit
    made by hand is refused as before (the record does not hide it), and that failed setup leaves no record."""
    assert first_setup[0].returncode == 0
    assert NOTHING_CHANGED in ansible_playbook().stdout
    # pip run by hand: a directory added to (and removed from) site-packages.
    byhand = "cesres_env/lib/python3.10/site-packages/cesres-byhand"
    assert sandbox.ssh(f"sleep 1; mkdir {byhand} && rmdir {byhand}").returncode == 0
    done = ansible_playbook()
    assert done.returncode == 0 and PLAY_PROBE in done.stdout and NOTHING_CHANGED not in done.stdout, done.stdout[
        -3000:
    ]
    assert recap(done.stdout)["changed"] == 0
    assert NOTHING_CHANGED in ansible_playbook().stdout
    # A commit made on the cluster by hand.
    git = f"module load {MODULES} {GIT} && git -C cesres"
    commit = sandbox.ssh(f"bash -lc '{git} -c user.name=t -c user.email=t@t commit -q --allow-empty -m byhand'")
    assert commit.returncode == 0, commit.stderr
    try:
        done = ansible_playbook()
        assert done.returncode != 0 and "are not on the remote" in done.stdout, done.stdout[-3000:]
        assert sandbox.ssh(f"test -e {RECORD}").returncode == 1
    finally:
        assert sandbox.ssh(f"bash -lc '{git} reset -q --hard HEAD~1'").returncode == 0
    done = ansible_playbook()
    assert done.returncode == 0 and PLAY_PROBE in done.stdout, done.stdout[-3000:]
    assert NOTHING_CHANGED in ansible_playbook().stdout


def test_a_branch_that_moved_on_the_remote_is_deployed(sandbox, first_setup):
    """The record asks the remote again for a version that is a branch: a new commit there runs the setup whole,
    which deploys it. (A remote of the test's own, a copy of cesres-mini's, on the cluster.)"""
    assert first_setup[0].returncode == 0
    remote, work = "cesres-moved.git", "cesres-moved-work"
    load = f"module load {MODULES} {GIT} && "
    done = sandbox.ssh(
        f"bash -lc '{load} rm -rf {remote} {work} && git clone -q --bare "
        f"{mini_repo()['cesres_repo_url']} {remote} && git clone -q {remote} {work}'"
    )
    assert done.returncode == 0, done.stderr
    moved = {"cesres_repo_url": str(sandbox.home / remote)}
    try:
        assert ansible_playbook("-e", json.dumps(moved)).returncode == 0  # another URL: another record
        assert NOTHING_CHANGED in ansible_playbook("-e", json.dumps(moved)).stdout
        push = sandbox.ssh(
            f"bash -lc '{load} cd {work} && git -c user.name=t -c user.email=t@t commit -q --allow-empty -m moved "
            "&& git push -q origin HEAD:master && git rev-parse HEAD'"
        )
        assert push.returncode == 0, push.stderr
        done = ansible_playbook("-e", json.dumps(moved))
        assert done.returncode == 0 and NOTHING_CHANGED not in done.stdout, done.stdout[-3000:]
        assert recap(done.stdout)["changed"] >= 1
        head = sandbox.ssh(f"bash -lc '{load} git -C cesres rev-parse HEAD'").stdout
        assert head.split() == push.stdout.split()[-1:]
        assert NOTHING_CHANGED in ansible_playbook("-e", json.dumps(moved)).stdout
    finally:
        # Back to cesres-mini's own remote: the commit made here is on no other remote (forced).
        back = ansible_playbook("-e", json.dumps({"cesres_repo_force": True}))
        sandbox.ssh(f"rm -rf {remote} {work}")
    assert back.returncode == 0, back.stdout[-3000:]


def test_rerun_in_full_changes_nothing_and_skips_pip(sandbox, first_setup):
    assert first_setup[0].returncode == 0
    before = sandbox.ssh("stat -c %Y cesres_env/cesres-pip.log").stdout
    done = ansible_playbook("-e", json.dumps({"cesres_unchanged_shortcut": False}))
    assert done.returncode == 0, done.stdout[-3000:]
    assert PLAY_PROBE in done.stdout
    stats = recap(done.stdout)
    assert stats["changed"] == 0 and stats["failed"] == 0
    assert re.search(r"Install the requirements.*\*+\nskipping: \[sandbox\]", done.stdout)
    assert sandbox.ssh("stat -c %Y cesres_env/cesres-pip.log").stdout == before


def test_without_the_plays_probe_each_role_reads_its_own_state_and_changes_nothing(sandbox, first_setup):
    """Roles stand alone: with no probe from the play, each reads its own state (one cesres_probe call) and, the
    environment being ready, does nothing more, by the same path as with the play's probe."""
    assert first_setup[0].returncode == 0
    before = sandbox.ssh("stat -c %Y cesres_env/cesres-pip.log").stdout
    done = ansible_playbook("-e", json.dumps({"cesres_python_probe_request": {}, "cesres_unchanged_shortcut": False}))
    assert done.returncode == 0, done.stdout[-3000:]
    stats = recap(done.stdout)
    assert stats["changed"] == 0 and stats["failed"] == 0
    for task in ("Read the state of the code on the cluster", "Read the state of the virtualenv"):
        assert re.search(rf"{task}, unless the play's probe read it.*\*+\nok: \[sandbox\]", done.stdout), task
    assert re.search(r"Install the requirements.*\*+\nskipping: \[sandbox\]", done.stdout)
    assert sandbox.ssh("stat -c %Y cesres_env/cesres-pip.log").stdout == before


def test_ansible_playbook_and_cesres_ctl_agree(first_setup):
    assert first_setup[0].returncode == 0
    # The same state for both: the setup that an earlier test may have left to do, done and recorded.
    assert ansible_playbook().returncode == 0
    via_cli = run_cli("setup", "--cluster", "sandbox", "-e", json.dumps(mini_repo()))
    assert via_cli.returncode == 0, via_cli.stderr
    via_playbook = recap(ansible_playbook().stdout)
    line = re.search(r"sandbox: ok=(\d+) changed=(\d+) failed=(\d+) unreachable=(\d+)", via_cli.stderr)
    assert line, via_cli.stderr
    assert tuple(map(int, line.groups())) == (
        via_playbook["ok"],
        via_playbook["changed"],
        via_playbook["failed"],
        via_playbook["unreachable"],
    )


def test_misspelled_module_fails_before_any_change(sandbox):
    modules = ["Python/3.10.4-GCCcore-11.3.0", "SciPy-bundel/2022.05-foss-2022a"]
    done = run_cli(
        "setup",
        "--cluster",
        "sandbox",
        "-e",
        json.dumps({"cesres_cluster_modules": modules, "cesres_root": "~/t3_typo", "cesres_venv": "~/t3_typo_env"}),
    )
    assert done.returncode == 1
    assert "SciPy-bundel/2022.05-foss-2022a" in done.stderr and "sandbox" in done.stderr
    assert "Traceback" not in done.stderr and "full log:" in done.stderr
    assert sandbox.ssh("ls -d t3_typo t3_typo_env").returncode != 0


def test_doctor_says_which_python_runs_ansible(sandbox):
    """The login node's python3 is too old for Ansible (3.6, as on EL8): doctor names the module's instead."""
    done = run_cli("doctor", "--cluster", "sandbox", "--json")
    checks = {check["id"]: check for check in json.loads(done.stdout)["checks"]}
    python = checks["python"]
    assert python["status"] == "pass", python
    assert "module Python/3.10.4-GCCcore-11.3.0" in python["detail"], python
    assert "the login node's python3 is 3.6.8" in python["detail"], python


def test_invalid_variable_is_refused_before_ssh():
    done = run_cli(
        "setup", "--cluster", "sandbox", "-e", "cesres_venv_import_check=perhaps", "-e", "cesres_repo_forcee=1"
    )
    assert done.returncode == 1
    assert "cesres_venv_import_check" in done.stderr and "did you mean cesres_repo_force" in done.stderr
    assert "full log" not in done.stderr  # nothing ran


# --- requirements and local changes, in a throwaway root pushed from a local checkout -------------


@pytest.fixture(scope="module")
def checkout(sandbox, tmp_path_factory):
    local = tmp_path_factory.mktemp("checkout") / "cesres-mini"
    copy_mini(local)
    reset(sandbox, "t3_root", "t3_env")
    yield local
    reset(sandbox, "t3_root", "t3_env")


def push_setup(checkout: Path, *extra: str) -> subprocess.CompletedProcess[str]:
    variables = {"cesres_repo_local_path": str(checkout), "cesres_root": "~/t3_root", "cesres_venv": "~/t3_env"}
    return run_cli("setup", "--cluster", "sandbox", "-e", json.dumps(variables), *extra)


def requirements(checkout: Path) -> Path:
    return checkout / "installation" / "CECI_requirements.txt"


def test_requirement_lifecycle(sandbox, checkout):
    done = push_setup(checkout)
    assert done.returncode == 0, done.stderr
    # One changed requirement: pip runs again and installs it.
    text = requirements(checkout).read_text()
    requirements(checkout).write_text(text.replace("tabulate==0.10.0", "tabulate==0.9.0"))
    done = push_setup(checkout)
    assert done.returncode == 0, done.stderr
    assert "changed=0" not in done.stderr
    version = sandbox.login_shell(
        venv_env(sandbox, "t3_env") + '"$py" -c "import tabulate; print(tabulate.__version__)"'
    )
    assert version.stdout.strip() == "0.9.0", version.stderr
    # ... and pip got that line only: every other line was met, and is left to the last installation.
    given = sandbox.ssh("grep -v '^#' t3_env/.cesres-plan/requirements.txt | grep .").stdout.split()
    assert given == ["tabulate==0.9.0"], given
    assert re.search(r"already installed, not given to pip: \d+ of \d+ requirement lines", done.stderr), done.stderr
    # A dependency that the file does not list, removed by hand: pip check finds the venv broken after the
    # one changed line installed, and pip then gets every line, which brings it back.
    requirements(checkout).write_text(text.replace("smmap==5.0.1\n", ""))
    removed = sandbox.login_shell(venv_env(sandbox, "t3_env") + '"$py" -m pip uninstall -y -q smmap')
    assert removed.returncode == 0, removed.stderr
    done = push_setup(checkout)
    assert done.returncode == 0, done.stderr
    healed = sandbox.login_shell(venv_env(sandbox, "t3_env") + '"$py" -c "import gitdb, smmap"')
    assert healed.returncode == 0, healed.stdout + healed.stderr
    assert sandbox.ssh("grep -c '^== PIP_CONSTRAINT=.* pip install' t3_env/cesres-pip.log").stdout.strip() == "2"
    # A requirement that cannot install: named, and the venv is not ready.
    requirements(checkout).write_text(requirements(checkout).read_text() + "cesres-no-such-package-t3==1.0\n")
    done = push_setup(checkout)
    assert done.returncode == 1
    assert "cesres-no-such-package-t3==1.0" in done.stderr and "tabulate" not in done.stderr.split("error:")[-1]
    assert sandbox.ssh("test -e t3_env/.cesres-ready").returncode != 0
    # A genuine conflict: one message naming both lines, found with a single pip run (no retry per line).
    requirements(checkout).write_text(text.replace("huggingface-hub==0.16.4", "huggingface-hub==0.10.1"))
    done = push_setup(checkout)
    assert done.returncode == 1
    error = done.stderr.split("error:")[-1]
    assert "huggingface-hub==0.10.1" in error and "transformers" in error, done.stderr
    assert sandbox.ssh("grep -c '^== PIP_CONSTRAINT=.* pip install' t3_env/cesres-pip.log").stdout.strip() == "1"
    assert sandbox.ssh("test -e t3_env/.cesres-ready").returncode != 0
    # train refuses the venv that is not ready, in one line, and records nothing.
    refused = run_cli(
        "train",
        "configs/demo.yaml",
        "--cluster",
        "sandbox",
        "--set",
        "root=~/t3_root",
        "--set",
        "venv=~/t3_env",
        cwd=MINI,
    )
    assert refused.returncode == 1
    lines = [line for line in refused.stderr.splitlines() if line.startswith("cesres-ctl: error:")]
    assert lines and "is not ready" in lines[0] and "cesres-ctl setup" in lines[0], refused.stderr
    # A program that imports what the venv lacks: the import check (run beside pip check) names it, and the
    # venv is not ready.
    entry = checkout / "cesres_graphcodebert_model.py"
    program = entry.read_text()
    entry.write_text(program.replace("import argparse\n", "import argparse\nimport cesres_no_such_module_t3\n", 1))
    requirements(checkout).write_text(text.replace("tabulate==0.10.0", "tabulate==0.9.0"))
    done = push_setup(checkout)
    assert done.returncode == 1, done.stderr
    error = done.stderr.split("error:")[-1]
    assert "import check" in error and "cesres_no_such_module_t3" in error, done.stderr
    assert sandbox.ssh("test -e t3_env/.cesres-ready").returncode != 0
    # The next good run repairs it.
    entry.write_text(program)
    requirements(checkout).write_text(text)
    done = push_setup(checkout)
    assert done.returncode == 0, done.stderr
    assert sandbox.ssh("test -e t3_env/.cesres-ready").returncode == 0


def test_changes_on_the_cluster_stop_the_push_unless_forced(sandbox, checkout):
    done = push_setup(checkout)
    assert done.returncode == 0, done.stderr
    assert sandbox.ssh("echo '# edited on the cluster' >> t3_root/README.md").returncode == 0
    (checkout / "README.md").write_text((checkout / "README.md").read_text() + "\nlocal edit\n")
    done = push_setup(checkout)
    assert done.returncode == 1
    assert "README.md" in done.stderr and "cesres_repo_force" in done.stderr
    done = push_setup(checkout, "-e", "cesres_repo_force=true")
    assert done.returncode == 0, done.stderr
    assert sandbox.ssh("grep -c 'edited on the cluster' t3_root/README.md").stdout.strip() == "0"


# --- offline models ------------------------------------------------------------------------------


def test_models_are_cached_by_the_venvs_loaders_and_load_offline_in_a_job(sandbox, first_setup):
    """setup cached the model the configs name from the hub imitation, with the venv's transformers, and
    recorded it; a job, whose node cannot reach the hub, loads it offline; an uncached one fails there."""
    from tests.integration.test_sandbox import submit_and_wait

    assert first_setup[0].returncode == 0
    listed = sandbox.ssh("cat .cache/huggingface/cesres-models.list")
    stamp = sandbox.ssh("cat cesres_env/.cesres-ready").stdout.strip()
    # Proven by this venv (its ready stamp: its transformers, whose cache layout it is). Other tests' venvs
    # share this HF_HOME and add their own lines: one line per model and venv.
    lines = listed.stdout.splitlines()
    assert f"Enoch/graphcodebert-py main {stamp}" in lines, listed.stdout + listed.stderr
    assert len(lines) == len(set(lines)), listed.stdout
    _, output = submit_and_wait(
        sandbox,
        f"""
        #!/bin/bash -l
        {venv_env(sandbox, "cesres_env")}
        export HF_HOME=~/.cache/huggingface TRANSFORMERS_OFFLINE=1 HF_HUB_OFFLINE=1
        export TRANSFORMERS_CACHE=$HF_HOME/transformers  # as a cesres-ctl job pins it, and setup fills it
        "$py" -c '
        from transformers import AutoConfig, AutoTokenizer
        print("type=" + AutoConfig.from_pretrained("Enoch/graphcodebert-py").model_type)
        tokenizer = AutoTokenizer.from_pretrained("Enoch/graphcodebert-py")
        print("tokens=" + " ".join(tokenizer.tokenize("def f(): return 1")))
        try:
            AutoTokenizer.from_pretrained("microsoft/graphcodebert-base")
        except OSError:
            print("uncached=refused")
        '
        "$py" -c 'import urllib.request; urllib.request.urlopen("http://127.0.0.1:6820/", timeout=5)' 2>/dev/null \\
            && echo hub=reached || echo hub=unreachable
        """,
        "--time=00:03:00",
    )
    assert "type=roberta" in output and "tokens=def" in output, output
    assert "uncached=refused" in output and "hub=unreachable" in output, output


def test_a_model_named_by_no_config_is_cached_on_demand_and_a_bad_id_fails_in_one_line(sandbox, first_setup):
    assert first_setup[0].returncode == 0
    models = {
        "cesres_hf_models": [{"id": "Enoch/graphcodebert-py"}, {"id": "microsoft/graphcodebert-base"}],
        **mini_repo(),
    }
    done = run_cli("setup", "--cluster", "sandbox", "-e", json.dumps(models))
    assert done.returncode == 0, done.stdout[-2000:] + done.stderr
    listed = sandbox.ssh("cat .cache/huggingface/cesres-models.list").stdout.splitlines()
    stamp = sandbox.ssh("cat cesres_env/.cesres-ready").stdout.strip()
    # This venv's lines (other tests' venvs share the HF_HOME).
    assert [line for line in listed if line.endswith(f" {stamp}")] == [
        f"Enoch/graphcodebert-py main {stamp}",
        f"microsoft/graphcodebert-base main {stamp}",
    ]
    again = run_cli("setup", "--cluster", "sandbox", "-e", json.dumps(models))
    assert "changed=0" in again.stdout + again.stderr
    bad = run_cli(
        "setup",
        "--cluster",
        "sandbox",
        "-e",
        json.dumps({"cesres_hf_models": [{"id": "nobody/no-such-model"}], **mini_repo()}),
    )
    assert bad.returncode == 1
    assert "cannot cache model nobody/no-such-model" in bad.stderr, bad.stderr
    assert "nobody/no-such-model" not in sandbox.ssh("cat .cache/huggingface/cesres-models.list").stdout
