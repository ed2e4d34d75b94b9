"""The user's configuration (cesres_ctl.userconfig): the file's checks, the inventory overlay it becomes,
the precedence Ansible gives it, and `cesres-ctl config` / `--cluster` on the command line."""

import json
import os
import stat
import sys
from pathlib import Path

import pytest
import yaml

from cesres_ctl import paths, userconfig
from cesres_ctl.errors import CesresError
from cesres_ctl.inventory import Inventory
from cesres_ctl.provision.settings import validate_setup_vars
from cesres_ctl.runs import cluster as clusters
from tests.conftest import PROJECT, run_main


@pytest.fixture
def config_file(tmp_path, monkeypatch):
    """A private configuration path (absent at first) and state directory."""
    path = tmp_path / "config" / "cesres-ctl" / "config.yml"
    monkeypatch.delenv(userconfig.CONFIG_ENV, raising=False)
    monkeypatch.delenv(userconfig.CLUSTER_ENV, raising=False)
    monkeypatch.setenv("XDG_CONFIG_HOME", str(tmp_path / "config"))
    monkeypatch.setenv("XDG_STATE_HOME", str(tmp_path / "state"))
    clusters.load.cache_clear()
    yield path
    clusters.load.cache_clear()


def write(path: Path, data: object) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(data if isinstance(data, str) else yaml.safe_dump(data))
    return path


def one_line_error(path: Path) -> str:
    with pytest.raises(CesresError) as info:
        userconfig.load(path)
    message = str(info.value)
    assert "\n" not in message
    return message


# --- the file ------------------------------------------------------------------------------------


def test_the_path_follows_xdg_and_the_override(config_file, monkeypatch, tmp_path):
    assert userconfig.config_path() == config_file
    monkeypatch.delenv("XDG_CONFIG_HOME")
    assert userconfig.config_path() == Path.home() / ".config" / "cesres-ctl" / "config.yml"
    monkeypatch.setenv(userconfig.CONFIG_ENV, str(tmp_path / "elsewhere.yml"))
    assert userconfig.config_path() == tmp_path / "elsewhere.yml"


def test_an_absent_or_empty_file_is_an_empty_configuration(config_file):
    config = userconfig.load()
    assert (config.exists, config.default_cluster, config.clusters) == (False, None, {})
    write(config_file, "# nothing yet\n")
    config = userconfig.load()
    assert (config.exists, config.default_cluster, config.clusters) == (True, None, {})


def test_a_valid_file_is_read_as_written(config_file):
    write(
        config_file,
        {
            "default_cluster": "sandbox",
            "clusters": {
                "sandbox": {"cesres_root": "~/cesres-uc", "cesres_job_gpus": 0, "ansible_port": 2222},
                "dragon2": {"cesres_hf_models": ["a/b", {"id": "c/d", "revision": "v1"}]},
                "empty": None,
            },
        },
    )
    config = userconfig.load()
    assert config.default_cluster == "sandbox"
    assert config.clusters["sandbox"] == {"cesres_root": "~/cesres-uc", "cesres_job_gpus": 0, "ansible_port": 2222}
    assert config.clusters["empty"] == {}


@pytest.mark.parametrize(
    ("data", "words"),
    [
        ({"clusterz": {}}, ["unknown key 'clusterz'", "did you mean clusters?", "allowed: default_cluster, clusters"]),
        ({"clusters": {"sandbox": {"cesres_rot": "x"}}}, ["clusters.sandbox", "'cesres_rot'", "cesres_root?"]),
        ({"clusters": {"sandbox": {"cesres_venv_path": "x"}}}, ["unknown setting", "allowed: cesres_repo_url"]),
        ({"clusters": {"sandbox": {"cesres_repo_version": 1.0}}}, ["cesres_repo_version", "must be a string"]),
        ({"clusters": {"sandbox": {"cesres_root": ""}}}, ["cesres_root must not be empty"]),
        ({"clusters": {"sandbox": {"cesres_root": "{{ lookup('pipe', 'id') }}"}}}, ["template delimiters"]),
        ({"clusters": {"sandbox": {"cesres_root": "a\nb"}}}, ["newlines"]),
        ({"clusters": {"sandbox": {"ansible_host": "-oProxyCommand=x"}}}, ["ansible_host", "not a host"]),
        ({"clusters": {"sandbox": {"ansible_port": 70000}}}, ["ansible_port", "at most 65535"]),
        ({"clusters": {"sandbox": {"ansible_port": True}}}, ["ansible_port", "whole number"]),
        ({"clusters": {"sandbox": {"cesres_job_cpus_per_task": 0}}}, ["cesres_job_cpus_per_task", "at least 1"]),
        ({"clusters": {"sandbox": {"cesres_job_time": "soon"}}}, ["cesres_job_time", "invalid time"]),
        ({"clusters": {"sandbox": {"cesres_job_partition": "gpu batch"}}}, ["cesres_job_partition", "Slurm"]),
        ({"clusters": {"sandbox": {"cesres_hf_models": "a/b"}}}, ["cesres_hf_models", "list"]),
        ({"clusters": {"sandbox": {"cesres_hf_models": [{"id": "a/b", "rev": "x"}]}}}, ["neither a model id"]),
        ({"clusters": {"sandbox": {"cesres_hf_models": ["not an id"]}}}, ["not a Hugging Face model id"]),
        ({"clusters": {"sandbox": {"cesres_hf_cache_endpoint": "mirror.example"}}}, ["not an http(s) URL"]),
        ({"clusters": {"sandbox": {"cesres_hf_cache_endpoint": "https://me:secret@hf.example"}}}, ["not an http"]),
        ({"clusters": {"sandbox": {"cesres_venv_pip_extra_args": "--index-url"}}}, ["pip_extra_args", "list"]),
        ({"clusters": {"sandbox": {"cesres_venv_pip_extra_args": ["--index-url https://x"]}}}, ["two items"]),
        ({"clusters": {"sandbox": {"cesres_venv_pip_cache_dir": "{{ x }}"}}}, ["template delimiters"]),
        ({"clusters": {"../etc": {}}}, ["'../etc' is not a cluster name"]),
        ({"default_cluster": "a;b"}, ["default_cluster", "not a cluster name"]),
        ({"clusters": ["sandbox"]}, ["clusters must be a mapping"]),
        ({"clusters": {"sandbox": "x"}}, ["clusters.sandbox must be a mapping"]),
        (["sandbox"], ["must be a YAML mapping"]),
        ("clusters: {sandbox: [unclosed\n", ["line"]),
        ("a: " + "[" * 5000 + "]" * 5000, ["nested too deeply"]),
    ],
)
def test_a_bad_file_is_one_line_naming_the_key(config_file, data, words):
    message = one_line_error(write(config_file, data))
    assert message.startswith(f"config file {config_file}"), message
    assert all(word in message for word in words), message


def test_a_file_that_cannot_be_read_is_one_line(config_file):
    config_file.parent.mkdir(parents=True)
    config_file.write_bytes(b"\xff\xfe")
    assert "not UTF-8" in one_line_error(config_file)
    config_file.unlink()
    config_file.mkdir()
    assert "not a regular file" in one_line_error(config_file)


@pytest.mark.parametrize(
    ("key", "text", "value"),
    [
        ("cesres_root", "~/cesres-uc", "~/cesres-uc"),
        ("cesres_venv", "$GLOBALSCRATCH/cesres_env", "$GLOBALSCRATCH/cesres_env"),
        ("ansible_port", " 2222 ", 2222),
        ("cesres_hf_models", "a/b, c/d@v1", ["a/b", {"id": "c/d", "revision": "v1"}]),
        ("cesres_job_time", "1-00:00:00", "1-00:00:00"),
        ("cesres_hf_cache_endpoint", "https://hf.mirror.example/", "https://hf.mirror.example/"),
        (
            "cesres_venv_pip_extra_args",
            "--index-url, https://pypi.example/simple",
            ["--index-url", "https://pypi.example/simple"],
        ),
        ("cesres_venv_pip_cache_dir", "$GLOBALSCRATCH/.cache/pip", "$GLOBALSCRATCH/.cache/pip"),
    ],
)
def test_command_line_values(key, text, value):
    assert userconfig.parse_value(key, text) == value


@pytest.mark.parametrize(
    ("key", "text", "words"),
    [
        ("cesres_roots", "x", ["unknown setting 'cesres_roots'", "did you mean cesres_root?"]),
        ("ansible_port", "ssh", ["whole number"]),
        ("cesres_job_gpus", "-1", ["at least 0"]),
        ("cesres_hf_models", "a/b,", ["not a Hugging Face model id"]),
        ("cesres_repo_version", "   ", ["must not be empty"]),
    ],
)
def test_bad_command_line_values_are_one_line(key, text, words):
    with pytest.raises(CesresError) as info:
        userconfig.parse_value(key, text)
    assert all(word in str(info.value) for word in words), str(info.value)


def test_save_is_owner_only_exclusive_and_round_trips(config_file):
    config = userconfig.UserConfig(
        path=config_file,
        default_cluster="sandbox",
        clusters={"sandbox": {"cesres_root": "~/x", "cesres_hf_models": [{"id": "a/b", "revision": "v1"}]}},
    )
    userconfig.save(config, exclusive=True)
    assert stat.S_IMODE(config_file.stat().st_mode) == 0o600
    assert config_file.read_text().startswith("# cesres-ctl user configuration")
    again = userconfig.load()
    assert (again.default_cluster, again.clusters) == (config.default_cluster, config.clusters)
    with pytest.raises(CesresError, match="exists"):
        userconfig.save(config, exclusive=True)
    assert [p.name for p in config_file.parent.iterdir()] == ["config.yml"]  # no temporary file left


def test_set_and_unset_keep_the_other_settings():
    config = userconfig.UserConfig(path=Path("c.yml"), clusters={"sandbox": {"cesres_root": "~/a"}})
    config = userconfig.with_setting(config, "sandbox", "cesres_venv", "~/v")
    config = userconfig.with_setting(config, "dragon2", "ansible_host", "d2")
    assert config.clusters == {
        "sandbox": {"cesres_root": "~/a", "cesres_venv": "~/v"},
        "dragon2": {"ansible_host": "d2"},
    }
    config, removed = userconfig.without_setting(config, "dragon2", "ansible_host")
    assert removed and "dragon2" not in config.clusters
    config, removed = userconfig.without_setting(config, "dragon2", "ansible_host")
    assert not removed


# --- the overlay ---------------------------------------------------------------------------------


def test_the_overlay_is_an_inventory_of_host_vars():
    config = userconfig.UserConfig(
        path=Path("c.yml"),
        default_cluster="sandbox",
        clusters={"sandbox": {"cesres_root": "~/a", "cesres_hf_models": ["a/b", {"id": "c/d"}]}, "dragon2": {}},
    )
    assert userconfig.overlay(config) == {
        "all": {"hosts": {"sandbox": {"cesres_root": "~/a", "cesres_hf_models": [{"id": "a/b"}, {"id": "c/d"}]}}}
    }
    assert yaml.safe_load(userconfig.overlay_text(config)) == userconfig.overlay(config)
    assert userconfig.overlay(userconfig.with_default(config, "x")) == userconfig.overlay(config)
    assert userconfig.overlay(userconfig.UserConfig(path=Path("c.yml"), default_cluster="sandbox")) == {}


def test_the_overlay_is_written_after_the_project_inventory_and_only_when_it_changes(config_file):
    assert userconfig.inventory_sources() == [str(PROJECT / "inventory")]
    assert not userconfig.overlay_path().exists()  # a default cluster alone needs no overlay
    write(config_file, {"clusters": {"sandbox": {"cesres_root": "~/a"}}})
    sources = userconfig.inventory_sources()
    overlay = userconfig.overlay_path()
    assert sources == [str(PROJECT / "inventory"), str(overlay)]
    assert overlay.parent == paths.state_dir() / "inventory"
    assert stat.S_IMODE(overlay.stat().st_mode) == 0o600
    before = overlay.stat()
    userconfig.inventory_sources()
    assert (overlay.stat().st_ino, overlay.stat().st_mtime_ns) == (before.st_ino, before.st_mtime_ns)
    write(config_file, {"clusters": {"sandbox": {"cesres_root": "~/b"}}})
    userconfig.inventory_sources()
    assert yaml.safe_load(overlay.read_text())["all"]["hosts"]["sandbox"] == {"cesres_root": "~/b"}
    # The last setting unset: the project's inventory alone, and no stale overlay left behind.
    write(config_file, {"default_cluster": "sandbox"})
    assert userconfig.inventory_sources() == [str(PROJECT / "inventory")]
    assert not overlay.exists()


# --- precedence, as Ansible applies it -----------------------------------------------------------


def test_user_settings_beat_group_vars_and_role_defaults_and_lose_to_extra_vars(config_file):
    write(
        config_file,
        {
            "clusters": {
                "sandbox": {
                    "cesres_root": "~/cesres-uc",
                    "cesres_repo_version": "v9",
                    "ansible_host": "my-login-alias",
                    "ansible_user": "me",
                    "cesres_job_time": "02:00:00",  # group_vars/cluster_sandbox.yml says 00:30:00
                    "cesres_job_mem": "4G",  # only a role default ("") otherwise
                }
            }
        },
    )
    inventory = Inventory()
    host = inventory.host_vars("sandbox")
    assert (host["cesres_root"], host["cesres_repo_version"], host["ansible_host"]) == (
        "~/cesres-uc",
        "v9",
        "my-login-alias",
    )
    # Another cluster keeps the project's values; facts the user cannot set stay the project's.
    assert inventory.host_vars("dragon2")["cesres_root"] == "~/cesres"
    assert (
        host["cesres_cluster_partitions"]
        == Inventory(user_config=False).host_vars("sandbox")["cesres_cluster_partitions"]
    )
    # Role defaults that read a shared setting see the user's value; extra vars still win.
    defaults = PROJECT / "roles" / "cesres_repo" / "defaults" / "main.yml"
    values, errors = inventory.resolve("sandbox", {}, ["cesres_repo_dest", "cesres_repo_version"], defaults)
    assert (values, errors) == ({"cesres_repo_dest": "~/cesres-uc", "cesres_repo_version": "v9"}, [])
    values, _ = inventory.resolve("sandbox", {"cesres_repo_version": "cli"}, ["cesres_repo_version"], defaults)
    assert values == {"cesres_repo_version": "cli"}
    # What train checks locally: the job role's inputs and the ssh settings.
    target = clusters.load("sandbox")
    assert target.job_vars["cesres_job_root"] == "~/cesres-uc"
    assert (target.job_vars["cesres_job_time"], target.job_vars["cesres_job_mem"]) == ("02:00:00", "4G")
    assert (target.ssh.host, target.ssh.user) == ("my-login-alias", "me")
    assert target.inventory_sources == tuple(inventory.sources)
    # Setup's checks pass with the user's values.
    assert validate_setup_vars("sandbox", {}, inventory) == []


def test_ansible_playbook_reads_the_same_values(config_file):
    """ansible-inventory with the two sources (what the playbook runs get) agrees with the local reading."""
    import subprocess

    write(config_file, {"clusters": {"sandbox": {"cesres_root": "~/cesres-uc", "ansible_host": "alias"}}})
    sources = userconfig.inventory_sources()
    argv = [str(Path(sys.executable).parent / "ansible-inventory"), "--host", "sandbox"]
    for source in sources:
        argv += ["-i", source]
    env = {**os.environ, "ANSIBLE_CONFIG": str(PROJECT / "ansible.cfg")}
    done = subprocess.run(argv, capture_output=True, text=True, check=True, env=env, cwd=PROJECT)
    host = json.loads(done.stdout)
    assert (host["cesres_root"], host["ansible_host"], host["cesres_venv"]) == ("~/cesres-uc", "alias", "~/cesres_env")


def test_a_cluster_the_project_does_not_know_is_one_line(config_file):
    write(config_file, {"clusters": {"sandbx": {"cesres_root": "~/a"}}})
    with pytest.raises(CesresError) as info:
        Inventory()
    message = str(info.value)
    assert "clusters.sandbx: unknown cluster (did you mean sandbox?)" in message and "\n" not in message


# --- the cluster of a command --------------------------------------------------------------------


def test_the_default_cluster_is_the_environment_then_the_file_then_dragon2(config_file, monkeypatch):
    assert userconfig.default_cluster() == ("dragon2", "built-in default")
    write(config_file, {"default_cluster": "sandbox"})
    assert userconfig.default_cluster() == ("sandbox", str(config_file))
    monkeypatch.setenv("CESRES_CLUSTER", "dragon2")
    assert userconfig.default_cluster() == ("dragon2", "$CESRES_CLUSTER")
    assert userconfig.cluster_or_default(None) == "dragon2"
    assert userconfig.cluster_or_default("") == ""  # given empty: refused later as an unknown cluster


# --- the commands --------------------------------------------------------------------------------


def test_config_init_set_unset_and_show(config_file, monkeypatch, capsys):
    code, out, _ = run_main(
        monkeypatch, capsys, "config", "init", "-C", "sandbox", "--repo", "https://example.org/me/CESReS.git"
    )
    assert code == 0 and str(config_file) in out
    assert stat.S_IMODE(config_file.stat().st_mode) == 0o600
    code, _, err = run_main(monkeypatch, capsys, "config", "init")
    assert code == 1 and "exists" in err and "--force" in err
    assert run_main(monkeypatch, capsys, "config", "set", "cesres_root", "~/cesres-uc")[0] == 0
    assert run_main(monkeypatch, capsys, "config", "set", "ansible_host", "d2", "-C", "dragon2")[0] == 0
    assert run_main(monkeypatch, capsys, "config", "set", "cesres_venv", "~/v")[0] == 0
    assert run_main(monkeypatch, capsys, "config", "unset", "cesres_venv")[0] == 0
    assert yaml.safe_load(config_file.read_text()) == {
        "default_cluster": "sandbox",
        "clusters": {
            "sandbox": {"cesres_repo_url": "https://example.org/me/CESReS.git", "cesres_root": "~/cesres-uc"},
            "dragon2": {"ansible_host": "d2"},
        },
    }
    code, out, _ = run_main(monkeypatch, capsys, "config", "show", "--json")
    assert code == 0
    report = json.loads(out)
    assert report["default_cluster"] == {"name": "sandbox", "source": str(config_file)}
    sandbox = report["clusters"]["sandbox"]
    assert sandbox["cesres_root"] == {"value": "~/cesres-uc", "source": "user config (config.yml)"}
    assert sandbox["cesres_venv"] == {"value": "~/cesres_env", "source": "group_vars/ceci.yml"}
    assert sandbox["cesres_repo_version"] == {"value": "master", "source": "group_vars/cluster_sandbox.yml"}
    assert sandbox["cesres_job_mem"] == {"value": "", "source": "role default (cesres_job)"}
    assert sandbox["ansible_user"] == {"value": None, "source": "unset"}
    assert report["clusters"]["dragon2"]["ansible_host"]["value"] == "d2"
    code, out, _ = run_main(monkeypatch, capsys, "config", "show", "-C", "dragon2")
    assert code == 0 and "dragon2" in out and "sandbox\n" not in out
    code, out, _ = run_main(monkeypatch, capsys, "config", "path")
    assert (code, out.strip()) == (0, str(config_file))
    code, out, _ = run_main(monkeypatch, capsys, "config", "path", "--inventory")
    assert (code, out.strip()) == (0, str(userconfig.overlay_path()))
    code, _, _ = run_main(monkeypatch, capsys, "config", "init", "-C", "dragon2", "--force")
    assert code == 0 and yaml.safe_load(config_file.read_text()) == {"default_cluster": "dragon2"}


@pytest.mark.parametrize(
    ("argv", "words"),
    [
        (("config", "init", "-C", "nope"), ["unknown cluster 'nope'"]),
        (("config", "init", "--login-alias", "-x"), ["--login-alias", "not a host"]),
        (("config", "set", "default_cluster", "dragon"), ["unknown cluster 'dragon'", "dragon2?"]),
        (("config", "set", "cesres_root", "~/x", "-C", "../x"), ["unknown cluster '../x'"]),
        (("config", "set", "cesres_rot", "~/x"), ["unknown setting 'cesres_rot'", "allowed:"]),
        (("config", "set", "cesres_job_time", "later"), ["cesres_job_time", "invalid time"]),
        (("config", "unset", "bogus"), ["unknown setting 'bogus'"]),
        (("config", "path", "--inventory"), ["no cluster settings"]),
    ],
)
def test_config_errors_are_one_line_and_write_nothing(config_file, monkeypatch, capsys, argv, words):
    code, _, err = run_main(monkeypatch, capsys, *argv)
    lines = err.strip().splitlines()
    assert code == 1 and len(lines) == 1 and lines[0].startswith("cesres-ctl: error: "), err
    assert all(word in lines[0] for word in words), lines[0]
    assert not config_file.exists()


def test_a_broken_configuration_stops_every_cluster_command_in_one_line(config_file, monkeypatch, capsys):
    write(config_file, {"clusters": {"sandbox": {"cesres_roots": "~/x"}}})
    for argv in (("setup",), ("doctor", "-C", "sandbox"), ("train", str(PROJECT / "tests/data/template_config.yaml"))):
        code, _, err = run_main(monkeypatch, capsys, *argv)
        lines = err.strip().splitlines()
        assert code == 1 and len(lines) == 1 and "cesres_roots" in lines[0], (argv, err)


def test_every_cluster_command_takes_the_same_option(monkeypatch, capsys):
    for command in ("setup", "doctor", "train", "config init", "config set", "config show"):
        code, out, _ = run_main(monkeypatch, capsys, *command.split(), "--help")
        assert code == 0
        assert "--cluster" in out and "-C" in out, command
    code, out, _ = run_main(monkeypatch, capsys, "setup", "--help")
    assert "CESRES_CLUSTER" in out and " -c " not in out


def test_train_uses_the_configured_default_cluster_and_paths(config_file, monkeypatch, capsys):
    write(config_file, {"default_cluster": "sandbox", "clusters": {"sandbox": {"cesres_root": "~/cesres-uc"}}})
    monkeypatch.chdir(PROJECT / "sandbox" / "cesres-mini")
    code, out, err = run_main(monkeypatch, capsys, "train", "configs/demo.yaml", "--dry-run")
    assert code == 0, err
    assert out.startswith("# dry run: nothing is sent to sandbox\n# run directory: ~/cesres-uc/runs/demo-")
    # --cluster and $CESRES_CLUSTER still win over the configured default.
    code, out, _ = run_main(monkeypatch, capsys, "train", "configs/demo.yaml", "--dry-run", "-C", "dragon2")
    assert code == 0 and "nothing is sent to dragon2" in out and "~/cesres/runs/" in out
    monkeypatch.setenv("CESRES_CLUSTER", "dragon2")
    code, out, _ = run_main(monkeypatch, capsys, "train", "configs/demo.yaml", "--dry-run")
    assert code == 0 and "nothing is sent to dragon2" in out


def test_setup_uses_the_configured_default_cluster(config_file, monkeypatch, capsys):
    """setup without --cluster: the configured cluster and the sources reach the playbook run."""
    write(config_file, {"default_cluster": "sandbox", "clusters": {"sandbox": {"cesres_root": "~/cesres-uc"}}})
    seen = {}

    def fake_run_playbook(playbook, **kwargs):
        seen.update(kwargs, playbook=playbook)
        raise CesresError("stop here")

    monkeypatch.setattr("cesres_ctl.provision.commands.run_playbook", fake_run_playbook)
    code, _, err = run_main(monkeypatch, capsys, "setup")
    assert (code, err.strip()) == (1, "cesres-ctl: error: stop here")
    assert (seen["playbook"], seen["limit"]) == ("playbooks/setup.yml", "sandbox")
    assert seen["inventory"] == [str(PROJECT / "inventory"), str(userconfig.overlay_path())]
