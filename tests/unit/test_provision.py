"""cesres_ctl.provision: -e parsing, argument_specs validation before any SSH, doctor parsing."""

import re
import sys
from pathlib import Path

import pytest

from cesres_ctl import paths, rules, sshdiag
from cesres_ctl.errors import CesresError, ExitCode
from cesres_ctl.inventory import Inventory
from cesres_ctl.provision import doctor, facts
from cesres_ctl.provision.commands import check_report
from cesres_ctl.provision.settings import SETUP_ROLES, parse_extra_vars, role_specs, validate_setup_vars
from cesres_ctl.runner import HostStats, PlaybookResult

# --- -e parsing ---------------------------------------------------------------------------------


def test_extra_vars_key_value_json_and_file(tmp_path):
    f = tmp_path / "vars.yml"
    f.write_text("cesres_data_items:\n  - {src: /tmp, dest: data}\n")
    parsed = parse_extra_vars(["a=1 b=two", '{"c": [1, 2]}', f"@{f}"])
    assert parsed == {"a": "1", "b": "two", "c": [1, 2], "cesres_data_items": [{"src": "/tmp", "dest": "data"}]}


@pytest.mark.parametrize(
    "bad",
    [
        "novalue",
        "=x",
        "{not: [closed",
        "@/nonexistent/file.yml",
        "1abc=2",
        "@~cesres-no-such-user/vars.yml",
        "{a: " + "[" * 20000 + "]" * 20000 + "}",
    ],
)
def test_extra_vars_errors_are_one_line(bad):
    with pytest.raises(CesresError) as info:
        parse_extra_vars([bad])
    assert "\n" not in str(info.value)


@pytest.mark.parametrize("content", [b"a: " + b"[" * 20000 + b"]" * 20000, b"\xff\xfe"])
def test_extra_vars_file_that_cannot_be_read_is_one_line(tmp_path, content):
    bad = tmp_path / "vars.yml"
    bad.write_bytes(content)
    with pytest.raises(CesresError) as info:
        parse_extra_vars([f"@{bad}"])
    assert "\n" not in str(info.value)


# --- validation against the roles' own argument_specs -------------------------------------------


@pytest.fixture(scope="module")
def inventory():
    return Inventory()


def test_every_setup_role_has_a_spec_and_defaults():
    specs = role_specs()
    assert [spec.role for spec in specs] == list(SETUP_ROLES)
    for spec in specs:
        assert spec.options and spec.defaults_file.is_file()
        assert all(name.startswith(spec.role + "_") for name in spec.options)


@pytest.mark.parametrize("cluster", ["sandbox", "dragon2"])
def test_inventory_values_pass(inventory, cluster):
    assert validate_setup_vars(cluster, {}, inventory) == []


def test_bad_values_are_named(inventory):
    problems = validate_setup_vars(
        "sandbox",
        {
            "cesres_venv_import_check": "perhaps",
            "cesres_repo_forcee": "1",
            "cesres_data_items": [{"src": "/tmp"}],
            "cesres_hf_cache_models": "not-a-list-of-dicts",
        },
        inventory,
    )
    text = "\n".join(problems)
    assert "cesres_venv: argument 'cesres_venv_import_check'" in text
    assert "unknown variable cesres_repo_forcee (did you mean cesres_repo_force?)" in text
    assert "missing required arguments: dest found in cesres_data_items" in text
    assert "cesres_hf_cache_models" in text


def test_templated_defaults_follow_the_shared_values(inventory):
    values, errors = inventory.resolve(
        "sandbox",
        {"cesres_venv": "$GLOBALSCRATCH/env"},
        ["cesres_venv_path"],
        next(s for s in role_specs() if s.role == "cesres_venv").defaults_file,
    )
    assert errors == [] and values == {"cesres_venv_path": "$GLOBALSCRATCH/env"}


def test_unknown_cluster_suggests(inventory):
    with pytest.raises(CesresError, match="did you mean sandbox"):
        validate_setup_vars("sandbx", {}, inventory)


# --- exit codes -------------------------------------------------------------------------------------


def result(status="failed", rc=2, **stats):
    base = {"ok": 1, "changed": 0, "failed": 0, "unreachable": 0, "skipped": 0, "rescued": 0, "ignored": 0}
    return PlaybookResult(status, rc, {"sandbox": HostStats(**{**base, **stats})}, Path("/x.log"), "x")


def test_exit_codes_match_the_result():
    assert result("successful", 0).exit_code == ExitCode.OK
    assert result(failed=1).exit_code == ExitCode.FAILED
    assert result(unreachable=1).exit_code == ExitCode.UNREACHABLE
    assert result("canceled", -1).exit_code == ExitCode.INTERRUPTED


def test_check_report_lists_what_would_change():
    nothing = result("successful", 0)
    assert check_report("sandbox", nothing) == ["setup --check of sandbox: nothing would change (log: /x.log)"]
    changes = ("sandbox: cesres_repo : git | Clone", "sandbox: cesres_venv : Report the virtualenv")
    some = PlaybookResult("successful", 0, nothing.hosts, Path("/x.log"), None, changes)
    assert check_report("sandbox", some) == [
        "setup --check of sandbox: 2 steps would change something (log: /x.log):",
        "  would change: sandbox: cesres_repo : git | Clone",
        "  would change: sandbox: cesres_venv : Report the virtualenv",
    ]


# --- doctor ---------------------------------------------------------------------------------------


def test_parse_checks_adds_hints_to_failures():
    out = "noise\nCHECK\tlmod\tpass\tVersion 8\nCHECK\tmodule:Nope/1\tfail\tnot available\r\n"
    probe = {"failed": True, "msg": "no python3", "checked_release": "r", "checked": [], "missing": []}
    checks = doctor.parse_checks(out, probe, "dragon2")
    assert [c.id for c in checks] == ["python", "lmod", "module:r", "module:Nope/1"]
    assert checks[1].hint == "" and "module spider" in checks[3].hint and checks[3].failed


def test_ssh_failures_are_explained_in_one_line():
    assert "key was refused" in sshdiag.explain("u@h: Permission denied (publickey).", "dragon2")
    assert "does not resolve" in sshdiag.explain("ssh: Could not resolve hostname dragon2: Name", "dragon2")
    assert "timed out" in sshdiag.explain("Connection timed out during banner exchange", "dragon2")
    unknown = "No ED25519 host key is known for gwceci and you have requested strict checking.\nHost key verification"
    assert sshdiag.explain(unknown, "dragon2").startswith("host key verification failed for gwceci: its key is not")
    assert sshdiag.explain("kex_exchange_identification: Connection closed by UNKNOWN port 65535", "x") is None
    assert sshdiag.reason("a\nkex_exchange_identification: closed\n", "x") == "kex_exchange_identification: closed"


def _stub_login_node(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """This machine as a login node for a local bash -lc: a stub Lmod (the release and Python/3.10.4 load,
    Python/3.10.4 is available) and sinfo in the home's .bash_profile, python3 this one; returns the home."""
    home, stub = tmp_path / "home", tmp_path / "bin"
    stub.mkdir(parents=True)
    home.mkdir()
    lines = "batch*|up|5-00:00:00|(null)|2|8|16000\\ngpu|down|1:00:00|gpu:2|1|8|16000\\n"
    (stub / "sinfo").write_text(f"#!/bin/sh\nprintf '{lines}'\n")
    (stub / "sinfo").chmod(0o755)
    (stub / "python3").symlink_to(sys.executable)
    (home / ".bash_profile").write_text(
        f"export PATH={stub}:$PATH GLOBALSCRATCH={tmp_path}\n"
        'module() { case "$*" in "is-avail Python/3.10.4"|"load releases/2022a"|"load Python/3.10.4"|purge|--version)'
        " return 0;; esac; return 1; }\n"
    )
    monkeypatch.setenv("HOME", str(home))
    return home


HERE_VARS = {
    "cesres_cluster_modules_release": "releases/2022a",
    "cesres_cluster_modules": ["Python/3.10.4", "Weird name'with quote"],
    "cesres_cluster_partitions": {"batch": {"default": True}, "gpu": {}, "debug": {}},
}


def test_doctor_runs_its_playbook_and_reads_its_checks(tmp_path, monkeypatch):
    """playbooks/doctor.yml on this machine (a local connection, no Python module: only raw reaches it) with a
    stub Lmod and sinfo: the probe's answer (roles/cesres_python, entry point check) and the lines of
    files/doctor.sh come back as facts, read into one check each, quoted safely."""
    import json

    _stub_login_node(tmp_path, monkeypatch)
    monkeypatch.setenv("XDG_STATE_HOME", str(tmp_path / "state"))
    inventory = tmp_path / "hosts.yml"
    host = {"ansible_connection": "local", "ansible_python_interpreter": "/nonexistent/python", **HERE_VARS}
    inventory.write_text(json.dumps({"all": {"hosts": {"here": host}}}))
    result = doctor.run_checks("here", sources=[str(inventory)])
    assert result.ok, result.failure
    found = result.facts["here"]
    assert "login_env" not in found["cesres_python_check"]  # the user's environment stays out of the log
    parsed = doctor.parse_checks(found["cesres_doctor_output"], found["cesres_python_check"], "x")
    checks = {c.id: c.status for c in parsed}
    assert re.search(r"Ansible runs with python3 3\.\d+\.\d+ of module Python/3\.10\.4", parsed[0].detail)
    assert checks["python"] == checks["lmod"] == checks["module:releases/2022a"] == "pass"
    assert checks["module:Python/3.10.4"] == "pass" and checks["module:Weird name'with quote"] == "fail"
    enforced = rules.parse_partitions(HERE_VARS["cesres_cluster_partitions"])
    partitions = facts.read(found["cesres_doctor_output"])
    assert partitions is not None
    partition_checks = {c.id: c.status for c in doctor.partition_checks(partitions, enforced, "x")}
    assert partition_checks == {"partition:batch": "warn", "partition:gpu": "fail", "partition:debug": "fail"}
    assert checks["space:$HOME"] == checks["space:$GLOBALSCRATCH"] == "pass"
    assert result.log_path.is_file() and "login_env" not in result.log_path.read_text()


def test_doctor_reaches_the_probe_only_through_the_roles_entry_point():
    """One way in to roles/cesres_python's probe.sh: the role's tasks (main, and check for doctor); the doctor's
    playbook uses the entry point, and no Python code sends the script itself."""
    import yaml

    project = paths.project_dir()
    [play] = yaml.safe_load((project / doctor.PLAYBOOK).read_text())
    uses = [task["ansible.builtin.import_role"] for task in play["tasks"] if "ansible.builtin.import_role" in task]
    assert uses == [{"name": "cesres.ctl.cesres_python", "tasks_from": "check"}]
    code = [path for top in ("cesres_ctl", "plugins", "roles", "playbooks") for path in (project / top).rglob("*")]
    # What reads the script: a Python string naming it, or a lookup of it.
    readers = sorted(
        str(path.relative_to(project))
        for path in code
        if path.suffix in (".py", ".yml") and re.search(r"[\"']probe\.sh[\"']", path.read_text())
    )
    assert readers == ["roles/cesres_python/tasks/check.yml", "roles/cesres_python/tasks/main.yml"]
    assert "cesres-probe check" in (project / "roles" / "cesres_python" / "tasks" / "check.yml").read_text()


def test_doctor_reads_a_failed_probe():
    """No Python: the module check still says what it found; no Lmod: one lmod failure."""
    failed = {
        "failed": True,
        "msg": "cannot load module P/1",
        "checked_release": "r",
        "checked": ["A/1"],
        "missing": ["A/1"],
    }
    checks = {c.id: (c.status, c.detail) for c in doctor.parse_checks("", failed, "x")}
    assert checks == {
        "python": ("fail", "cannot load module P/1"),
        "module:r": ("pass", "loads"),
        "module:A/1": ("fail", "not available in r"),
    }
    nolmod = {"failed": True, "msg": "Lmod's module command is not defined in a login shell", "checked_release": "r"}
    ids = [c.id for c in doctor.parse_checks("", nolmod, "x")]
    assert ids[:2] == ["python", "lmod"]


def test_setup_checks_settings_once_for_the_same_sources_and_extra_vars(tmp_path, monkeypatch):
    from cesres_ctl.provision import commands

    monkeypatch.setenv("XDG_STATE_HOME", str(tmp_path / "state"))
    monkeypatch.setenv("CESRES_CTL_CONFIG", str(tmp_path / "config.yml"))
    built = []
    real = commands.Inventory

    def counting_inventory():
        built.append(1)
        return real()

    monkeypatch.setattr(commands, "Inventory", counting_inventory)
    sources = commands._validated_sources("sandbox", {})
    assert commands._validated_sources("sandbox", {}) == sources and len(built) == 1
    # Other extra vars are checked again; bad ones every time, never stamped as valid.
    commands._validated_sources("sandbox", {"cesres_venv_lock_timeout": 60})
    assert len(built) == 2
    for _ in range(2):
        with pytest.raises(CesresError, match="invalid settings for sandbox"):
            commands._validated_sources("sandbox", {"cesres_venv_lock_timeout": "soon"})
    assert len(built) == 4
    # The user's settings change: checked again.
    (tmp_path / "config.yml").write_text("clusters:\n  sandbox:\n    cesres_root: ~/elsewhere\n")
    commands._validated_sources("sandbox", {})
    assert len(built) == 5


def test_doctor_says_what_it_waits_for_and_how_to_try_ssh_by_hand(monkeypatch, capsys):
    """Issue 20: doctor stayed silent while ssh waited for a hung gateway, then hinted `ssh CLUSTER` literally."""
    inventory = Inventory()
    waited_for = []

    def hung(cluster, **_kwargs):
        waited_for.append(capsys.readouterr().err)
        stats = HostStats(ok=0, changed=0, failed=0, unreachable=1, skipped=0, rescued=0, ignored=0)
        failure = "sandbox: Read the checks: ssh: connect to host 127.0.0.1 port 2221: Connection timed out"
        return PlaybookResult("failed", 4, {cluster: stats}, Path("/x.log"), failure)

    monkeypatch.setattr(doctor, "run_checks", hung)
    [reach] = doctor.diagnose("sandbox", inventory=inventory).checks
    ssh = f"ssh -F {paths.sandbox_root()}/ssh/ssh_config cesres-sandbox"
    assert waited_for == [
        f"doctor sandbox: waiting for `{ssh}` and the checks in its login shell (Lmod, sinfo, df, quota)…\n"
    ]
    assert (reach.id, reach.status, reach.detail) == ("reach", "fail", hung("sandbox").failure)
    assert reach.hint.startswith(f"check `{ssh}` by hand") and "CLUSTER" not in reach.hint
    assert doctor.exit_code([reach]) == ExitCode.UNREACHABLE
