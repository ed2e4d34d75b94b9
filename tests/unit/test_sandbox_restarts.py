"""`sandbox up` restarts exactly the daemons whose configuration the build changed.

The role's handlers mark daemons (one file per name in the manifest's restart_dir); lifecycle.up() stops
the marked ones in reverse start order, starts every daemon in order, and removes each marker once its
daemon runs. Tested with plain data and stubs: nothing here touches the real sandbox.
"""

import json
import re
from pathlib import Path

import pytest
import yaml

from cesres_ctl.errors import CesresError
from cesres_ctl.sandbox import lifecycle, manifest

ROLE = Path(__file__).resolve().parent.parent.parent / "roles" / "sandbox_cluster"
START_ORDER = ["munged", "mariadbd", "slurmdbd", "slurmctld", "slurmd", "hub", "sshd-gateway", "sshd-login"]


# --- which markers restart which daemons ------------------------------------------------------------


@pytest.mark.parametrize(
    ("marked", "order"),
    [
        (set(), []),
        ({"slurmctld", "slurmd"}, ["slurmd", "slurmctld"]),
        ({"munged", "slurmdbd", "slurmctld", "slurmd"}, ["slurmd", "slurmctld", "slurmdbd", "munged"]),
        ({"sshd-login"}, ["sshd-login"]),
        ({"sshd-gateway", "hub", "gone-daemon"}, ["sshd-gateway", "hub"]),
    ],
)
def test_marked_daemons_stop_in_reverse_start_order(marked, order):
    assert lifecycle.restart_order(START_ORDER, marked) == order


def test_markers_are_the_files_of_the_restart_directory(tmp_path):
    assert lifecycle.marked_for_restart(tmp_path / "missing") == set()
    (tmp_path / "slurmctld").write_text("x")
    (tmp_path / "slurmd").write_text("x")
    (tmp_path / "a-directory").mkdir()
    assert lifecycle.marked_for_restart(tmp_path) == {"slurmctld", "slurmd"}


# --- up(): stop the marked, start all, remove the markers -----------------------------------------


def make_manifest(root: Path) -> manifest.Manifest:
    daemons = [
        manifest.Daemon(
            name, [f"/usr/sbin/{name}"], root / f"{name}.pid", f"/usr/sbin/{name}", root / "log", False, False, {}
        )
        for name in START_ORDER
    ]
    netns = manifest.Netns("cesres-compute", "h", "n", "10.0.0.1", "10.0.0.2", 30)
    return manifest.Manifest(
        root,
        "m",
        "ceciuser",
        "sandbox",
        "node",
        root / "ssh_config",
        "login",
        "gw",
        "ceci",
        netns,
        daemons,
        root / "restart",
    )


@pytest.fixture
def stubbed(tmp_path, monkeypatch):
    """lifecycle.up() with the build, the network and the daemons replaced by a journal of calls."""
    built = make_manifest(tmp_path)
    built.restart_dir.mkdir()
    journal: list[tuple[str, str]] = []
    running = set(START_ORDER)
    failing: set[str] = set()

    def stop(daemon):
        journal.append(("stop", daemon.name))
        was_running = daemon.name in running
        running.discard(daemon.name)
        return was_running

    def start(daemon, netns):
        if daemon.name in failing:
            raise CesresError(f"{daemon.name} did not become ready")
        journal.append(("start", daemon.name) if daemon.name not in running else ("running", daemon.name))
        running.add(daemon.name)
        return True

    monkeypatch.setattr(lifecycle, "require_root", lambda: None)
    monkeypatch.setattr(lifecycle, "_run_build_playbook", lambda *a, **k: None)
    monkeypatch.setattr(lifecycle, "load", lambda root: built)
    monkeypatch.setattr(lifecycle, "_ensure_run_dirs", lambda: None)
    monkeypatch.setattr(lifecycle, "_ensure_accounting", lambda m: None)
    monkeypatch.setattr(lifecycle, "_resume_nodes", list)
    monkeypatch.setattr(lifecycle.netns, "ensure", lambda n: None)
    monkeypatch.setattr(lifecycle.daemons, "stop", stop)
    monkeypatch.setattr(lifecycle.daemons, "start", start)
    return built, journal, running, failing


def mark(built: manifest.Manifest, *names: str) -> None:
    for name in names:
        (built.restart_dir / name).write_text(f"{name}: restart\n")


def test_a_slurm_conf_change_restarts_slurmctld_and_slurmd_only(stubbed, tmp_path):
    built, journal, _, _ = stubbed
    mark(built, "slurmctld", "slurmd")
    result = lifecycle.up(tmp_path)
    assert result.restarted == ["slurmctld", "slurmd"]
    assert journal == [
        ("stop", "slurmd"),
        ("stop", "slurmctld"),
        ("running", "munged"),
        ("running", "mariadbd"),
        ("running", "slurmdbd"),
        ("start", "slurmctld"),
        ("start", "slurmd"),
        ("running", "hub"),
        ("running", "sshd-gateway"),
        ("running", "sshd-login"),
    ]
    assert lifecycle.marked_for_restart(built.restart_dir) == set()


def test_nothing_marked_restarts_nothing(stubbed, tmp_path):
    _, journal, _, _ = stubbed
    assert lifecycle.up(tmp_path).restarted == []
    assert [call for call in journal if call[0] != "running"] == []


def test_a_marked_daemon_that_was_not_running_just_starts(stubbed, tmp_path):
    built, journal, running, _ = stubbed
    running.discard("sshd-login")
    mark(built, "sshd-login", "no-such-daemon")
    assert lifecycle.up(tmp_path).restarted == []
    assert ("start", "sshd-login") in journal
    assert lifecycle.marked_for_restart(built.restart_dir) == set()  # the unknown marker is dropped too


def test_a_failed_start_keeps_the_markers_of_what_did_not_start(stubbed, tmp_path):
    built, _, _, failing = stubbed
    mark(built, "munged", "slurmdbd", "slurmctld", "slurmd")
    failing.add("slurmctld")
    with pytest.raises(CesresError, match="slurmctld did not become ready"):
        lifecycle.up(tmp_path)
    # munged and slurmdbd run again; slurmctld and slurmd are restarted by the next up.
    assert lifecycle.marked_for_restart(built.restart_dir) == {"slurmctld", "slurmd"}


# --- the role: which change marks which daemon ----------------------------------------------------


def role_tasks() -> list[dict]:
    tasks = []
    for path in sorted((ROLE / "tasks").glob("*.yml")):
        tasks += yaml.safe_load(path.read_text()) or []
    return tasks


def notified(task: dict) -> set[str]:
    names = task.get("notify") or []
    return {name for name in ([names] if isinstance(names, str) else names)}


def marks(task_name: str) -> set[str]:
    """The daemons that a change by the named task marks for a restart."""
    task = next(t for t in role_tasks() if t["name"] == task_name)
    return {re.fullmatch(r"Mark (\S+) for a restart", name)[1] for name in notified(task)}


def test_every_handler_marks_a_daemon_of_the_manifest():
    handlers = yaml.safe_load((ROLE / "handlers" / "main.yml").read_text())
    manifest_names = re.findall(r"'name': '([^']+)'", (ROLE / "templates" / "sandbox.json.j2").read_text())
    assert manifest_names == START_ORDER
    marked = {}
    for handler in handlers:
        name = re.fullmatch(r"Mark (\S+) for a restart", handler["name"])[1]
        assert handler["ansible.builtin.copy"]["dest"] == "{{ __sandbox_cluster_paths.run }}/restart/" + name
        marked[name] = handler
    assert sorted(marked) == sorted(START_ORDER)
    notified_anywhere = set().union(*(notified(t) for t in role_tasks()))
    assert notified_anywhere == {h["name"] for h in handlers}


@pytest.mark.parametrize(
    ("task", "daemons"),
    [
        ("slurm | Write the Slurm and GRES configurations", {"slurmctld", "slurmd"}),
        ("slurm | Write the accounting configuration", {"slurmdbd"}),
        ("munge | Generate the sandbox's munge key", {"munged", "slurmdbd", "slurmctld", "slurmd"}),
        ("ssh | Write the sshd configuration of the login node", {"sshd-login"}),
        ("ssh | Write the sshd configuration of the gateway", {"sshd-gateway"}),
        ("ssh | Generate the host keys of the login node and the gateway", {"sshd-login", "sshd-gateway"}),
        ("mariadb | Write the MariaDB server configuration", {"mariadbd"}),
        ("hub | Install the hub imitation", {"hub"}),
        ("el8 | Write the stand-in of an EL8 python3", {"sshd-login", "slurmd"}),
    ],
)
def test_a_changed_file_marks_the_daemons_that_read_it(task, daemons):
    assert marks(task) == daemons


def test_the_restart_directory_is_created_and_named_in_the_manifest():
    layout = yaml.safe_load((ROLE / "tasks" / "layout.yml").read_text())
    assert any("{{ __sandbox_cluster_paths.run }}/restart" in (t.get("loop") or []) for t in layout)
    assert (
        "'restart_dir': __sandbox_cluster_paths.run ~ '/restart'"
        in (ROLE / "templates" / "sandbox.json.j2").read_text()
    )
    playbook = yaml.safe_load((ROLE.parent.parent / "playbooks" / "sandbox.yml").read_text())
    assert playbook[0]["force_handlers"] is True


def test_the_manifest_names_the_restart_directory_or_an_older_one_implies_it(tmp_path):
    data = {
        "root": str(tmp_path),
        "marker": "m",
        "user": "ceciuser",
        "cluster_name": "sandbox",
        "node_name": "node",
        "ssh_config": str(tmp_path / "ssh_config"),
        "login_alias": "login",
        "gateway_alias": "gw",
        "accounting": {"account": "ceci", "user": "ceciuser"},
        "netns": {
            "name": "n",
            "veth_host": "h",
            "veth_node": "v",
            "host_address": "10.0.0.1",
            "node_address": "10.0.0.2",
            "prefix_length": 30,
        },
        "daemons": [],
    }
    (tmp_path / "sandbox.json").write_text(json.dumps(data))
    assert manifest.load(tmp_path).restart_dir == tmp_path / "run" / "restart"
    (tmp_path / "sandbox.json").write_text(json.dumps({**data, "restart_dir": "/elsewhere/restart"}))
    assert manifest.load(tmp_path).restart_dir == Path("/elsewhere/restart")
