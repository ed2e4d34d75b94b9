"""Issue 8, §3: the user's settings live with the user. `cesres-ctl config init` and `config set` (in a
private XDG_CONFIG_HOME), then `setup` and `train` with neither --cluster, -e nor --set: the configured
default cluster, repository version and paths reach the cluster, and no file of the checkout changes.

The code and venv of this test are its own (~/cesres-uc, ~/cesres-uc-env), removed at the end; the
Hugging Face cache is the shared default one (setup leaves a cached model alone).
"""

import json
import os
import subprocess
from pathlib import Path

import pytest
import yaml

from tests.conftest import MINI, PROJECT, mini_repo, run_cli

pytestmark = pytest.mark.sandbox

ROOT = "cesres-uc"
VENV = "cesres-uc-env"


def porcelain() -> str:
    done = subprocess.run(
        ["git", "status", "--porcelain", "--untracked-files=all"],
        cwd=PROJECT,
        capture_output=True,
        text=True,
        check=True,
    )
    return done.stdout


@pytest.fixture
def user_env(tmp_path):
    """cesres-ctl's environment: a private configuration and state, no cluster chosen by the environment."""
    env = {
        **os.environ,
        "XDG_CONFIG_HOME": str(tmp_path / "config"),
        "XDG_STATE_HOME": str(tmp_path / "state"),
        # The subprocess imports the code under test, wherever the CLI is installed from.
        "PYTHONPATH": str(PROJECT),
    }
    for name in ("CESRES_CTL_CONFIG", "CESRES_CLUSTER"):
        env.pop(name, None)
    return env


@pytest.fixture
def clean_cluster(sandbox):
    remove = f'rm -rf "$HOME/{ROOT}" "$HOME/{VENV}"'
    assert sandbox.ssh(remove).returncode == 0
    yield sandbox
    done = sandbox.ssh(remove)
    assert done.returncode == 0, done.stderr


def test_config_init_then_setup_and_train_use_the_users_settings(user_env, clean_cluster, tmp_path):
    sandbox = clean_cluster
    before = porcelain()
    elsewhere = tmp_path / "work"
    elsewhere.mkdir()

    def ok(*args: str, cwd: Path = elsewhere, timeout: float = 600) -> subprocess.CompletedProcess[str]:
        done = run_cli(*args, cwd=cwd, timeout=timeout, env=user_env)
        assert done.returncode == 0, f"{args}:\n{done.stdout[-3000:]}\n{done.stderr[-3000:]}"
        return done

    # cesres-mini (the quick stand-in the sandbox publishes beside the real CESReS), pinned by commit: values
    # group_vars does not hold.
    repo = mini_repo()["cesres_repo_url"]
    commit = subprocess.run(
        ["git", "--git-dir", repo, "rev-parse", "master"],
        capture_output=True,
        text=True,
        check=True,
    ).stdout.strip()
    assert len(commit) == 40

    ok("config", "init", "--cluster", "sandbox")
    config_file = tmp_path / "config" / "cesres-ctl" / "config.yml"
    assert config_file.is_file()
    ok("config", "set", "cesres_root", f"~/{ROOT}")
    ok("config", "set", "cesres_venv", f"~/{VENV}")
    ok("config", "set", "cesres_repo_url", repo)
    ok("config", "set", "cesres_repo_version", commit)
    report = json.loads(ok("config", "show", "--json").stdout)
    assert report["default_cluster"] == {"name": "sandbox", "source": str(config_file)}
    shown = report["clusters"]["sandbox"]
    assert shown["cesres_root"] == {"value": f"~/{ROOT}", "source": "user config (config.yml)"}
    assert shown["cesres_repo_version"]["value"] == commit

    # setup: no --cluster, no -e. The sandbox (the configured default) gets the code at the configured
    # commit in the configured root, and a ready venv at the configured path.
    done = ok("setup", timeout=1500)
    assert "setup of sandbox done" in done.stdout
    head = sandbox.ssh(f"cat ~/{ROOT}/.git/HEAD && test -f ~/{ROOT}/cesres_graphcodebert_model.py")
    assert head.returncode == 0, head.stderr
    assert head.stdout.strip() == commit
    assert sandbox.ssh(f"test -e ~/{VENV}/.cesres-ready && test -x ~/{VENV}/bin/python").returncode == 0

    # train: no --cluster, no --set. The run lives under the configured root, uses the configured venv
    # and code, and completes.
    fetched = tmp_path / "fetched"
    done = ok(
        "train",
        "configs/demo.yaml",
        "--partition",
        "batch",
        "--name",
        "userconfig",
        "--new",
        "--wait",
        "--dest",
        str(fetched),
        "--json",
        "--",
        "-d",
        "cpu",
        "-l",
        "1",
        cwd=MINI,
        timeout=900,
    )
    run = json.loads(done.stdout)
    assert run["cluster"] == "sandbox"
    assert run["state"] == "COMPLETED", run
    assert run["remote_dir"].startswith(f"{sandbox.home}/{ROOT}/runs/userconfig-"), run["remote_dir"]
    assert run["code_version"] == commit
    # The job reads the run's cluster paths, expanded there, from its run.env.
    run_env = sandbox.ssh(f"cat {run['remote_dir']}/run.env")
    assert run_env.returncode == 0, run_env.stderr
    assert f"venv={sandbox.home}/{VENV}\n" in run_env.stdout
    assert (fetched / "results").is_dir()

    # Nothing of the checkout was edited (nor created: the fetched results went to --dest).
    assert porcelain() == before


# The sandbox under a name of the user's own, with this module's throwaway code and venv (clean_cluster).
def test_a_cluster_defined_in_the_users_configuration_only_is_set_up_and_trained_on(user_env, clean_cluster, tmp_path):
    """Issue 20: the sandbox as `mylab`, a cluster the project does not ship, written in the user's file by hand:
    how ssh reaches it, the code to deploy, its paths and its site's mirrors (the model hub's imitation and the
    pip cache that the sandbox's own group_vars give it, and a package index). doctor saves its partitions,
    setup provisions it, and a run on it completes and is fetched."""
    sandbox = clean_cluster
    config = {
        "default_cluster": "mylab",
        "clusters": {
            "mylab": {
                "ansible_host": sandbox.alias,
                "ansible_ssh_common_args": f"-F {sandbox.ssh_config}",
                "cesres_repo_url": mini_repo()["cesres_repo_url"],
                "cesres_repo_version": "master",
                "cesres_root": f"~/{ROOT}",
                "cesres_venv": f"~/{VENV}",
                "cesres_hf_cache_endpoint": "http://127.0.0.1:6820",
                "cesres_venv_pip_cache_dir": "/var/cache/cesres-sandbox/pip",
                # The site's package index: PyPI's, named as pip does not name its default (a trailing /).
                "cesres_venv_pip_extra_args": ["--index-url", "https://pypi.org/simple/"],
            }
        },
    }
    config_file = tmp_path / "config" / "cesres-ctl" / "config.yml"
    config_file.parent.mkdir(parents=True)
    config_file.write_text(yaml.safe_dump(config), encoding="utf-8")

    def ok(*args: str, cwd: Path = PROJECT, timeout: float = 600) -> subprocess.CompletedProcess[str]:
        done = run_cli(*args, cwd=cwd, timeout=timeout, env=user_env)
        assert done.returncode == 0, f"{args}:\n{done.stdout[-3000:]}\n{done.stderr[-3000:]}"
        return done

    shown = json.loads(ok("config", "show", "-C", "mylab", "--json").stdout)["clusters"]["mylab"]
    assert shown["cesres_hf_cache_endpoint"] == {"value": "http://127.0.0.1:6820", "source": "user config (config.yml)"}
    assert "saved the partitions of mylab as yours" in ok("doctor", "--save-facts").stderr
    assert "setup of mylab done" in ok("setup", "--cluster", "mylab", timeout=1500).stdout
    assert sandbox.ssh(f"test -e ~/{VENV}/.cesres-ready && test -f ~/{ROOT}/.git/HEAD").returncode == 0
    pip_log = sandbox.ssh(f"cat ~/{VENV}/cesres-pip.log")
    assert "Looking in indexes: https://pypi.org/simple/" in pip_log.stdout, pip_log.stdout[-3000:]

    fetched = tmp_path / "fetched"
    done = ok(
        "train", "configs/demo.yaml", "--cluster", "mylab", "--partition", "batch", "--name", "mylab", "--new",
        "--wait", "--dest", str(fetched), "--json", "--", "-d", "cpu", "-l", "1",
        cwd=MINI, timeout=900,
    )  # fmt: skip
    run = json.loads(done.stdout)
    assert (run["cluster"], run["state"]) == ("mylab", "COMPLETED"), run
    assert run["remote_dir"].startswith(f"{sandbox.home}/{ROOT}/runs/mylab-"), run["remote_dir"]
    assert (fetched / "results").is_dir()
