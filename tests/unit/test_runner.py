"""cesres_ctl.runner: failure lines and stats from plain events, and real runs of a throwaway project."""

import io
import sys
import tempfile
from pathlib import Path

import pytest
from rich.console import Console

from cesres_ctl.errors import CesresError
from cesres_ctl.progress import ProgressDisplay, ProgressState, report_lines
from cesres_ctl.runner import (
    MAX_FAILURE_CHARS,
    HostStats,
    PlaybookResult,
    describe_failure,
    event_output,
    failure_from_output,
    first_failure,
    format_summary,
    parse_stats,
    run_playbook,
)


def event(name, host="sandbox", task="venv | Create the virtualenv", role=None, **data):
    event_data = {"host": host, "task": task, "task_action": "ansible.builtin.command", **data}
    if role:
        event_data["role"] = role
    return {"event": name, "event_data": event_data}


# --- failure classification -------------------------------------------------------------------


def test_unreachable_publickey_is_explained():
    ev = event(
        "runner_on_unreachable",
        task="Gathering Facts",
        res={
            "unreachable": True,
            "msg": "Task failed: Failed to connect to the host via ssh: "
            "jdoe@lemaitre4.cism.ucl.ac.be: Permission denied (publickey,gssapi-keyex).",
        },
    )
    assert describe_failure(ev) == ("sandbox: Gathering Facts: the SSH key was refused (Permission denied (publickey))")


@pytest.mark.parametrize(
    ("msg", "expected"),
    [
        (
            "ssh: Could not resolve hostname nic5: Name or service not known",
            "cannot reach sandbox: its address",
        ),
        (
            "ssh: connect to host 10.0.0.1 port 22: Connection refused",
            "cannot reach sandbox: connection refused",
        ),
        (
            "ssh: connect to host 10.0.0.1 port 22: Connection timed out",
            "cannot reach sandbox: the connection",
        ),
        ("Host key verification failed.", "host key verification failed for sandbox"),
        (
            "Failed to connect to the host via ssh: @@@@@@@@@@\r\n@    WARNING: REMOTE HOST IDENTIFICATION HAS CHANGED!"
            "\r\nOffending ED25519 key in /home/u/.ssh/known_hosts:7\r\n"
            "Host key for gwceci.cism.ucl.ac.be has changed and you have requested strict checking.\r\n"
            "Host key verification failed.\r\nkex_exchange_identification: Connection closed by remote host\r\n"
            "Connection closed by UNKNOWN port 65535",
            "host key verification failed for gwceci.cism.ucl.ac.be: the key it sent is not the one in "
            "/home/u/.ssh/known_hosts line 7",
        ),
    ],
)
def test_unreachable_reasons(msg, expected):
    line = describe_failure(event("runner_on_unreachable", task="ping", res={"msg": msg}))
    assert line.startswith(f"sandbox: ping: {expected}")


def test_quota_exceeded_in_stderr():
    ev = event(
        "runner_on_failed",
        res={
            "msg": "non-zero return code",
            "rc": 1,
            "stderr": "Collecting torch\nERROR: Could not install packages due to an OSError: "
            "[Errno 122] Disk quota exceeded: '/home/ucl/jdoe/.venv/lib'\n",
        },
    )
    assert describe_failure(ev).startswith("sandbox: venv | Create the virtualenv: disk quota exceeded on the cluster")


def test_failed_task_uses_msg_with_role_prefix():
    ev = event("runner_on_failed", role="cesres_venv", res={"msg": "Destination /scratch not writable"})
    assert (
        describe_failure(ev) == "sandbox: cesres_venv : venv | Create the virtualenv: Destination /scratch not writable"
    )


def test_failed_command_shows_its_stderr():
    ev = event("runner_on_failed", res={"msg": "non-zero return code", "rc": 2, "stderr": "a\nsbatch: error: bad\n"})
    assert describe_failure(ev) == "sandbox: venv | Create the virtualenv: command failed (rc=2): sbatch: error: bad"


def test_multiline_message_reduced_to_one_line():
    long_tail = "x" * 1000
    ev = event("runner_on_failed", res={"msg": f"\n  first line\nsecond line\n{long_tail}"})
    line = describe_failure(ev)
    assert line == "sandbox: venv | Create the virtualenv: first line"
    stderr_only = describe_failure(event("runner_on_failed", res={"stderr": f"{long_tail}\nlast\n\n"}))
    assert stderr_only.endswith(": last")
    huge = describe_failure(event("runner_on_failed", res={"msg": long_tail}))
    assert "\n" not in huge
    assert len(huge) == MAX_FAILURE_CHARS


def test_ignored_failure_is_not_the_failure():
    events = [
        event("runner_on_failed", task="optional", ignore_errors=True, res={"msg": "ignored one"}),
        event("runner_on_ok", task="fine", res={"changed": False}),
        event("runner_on_failed", task="real", res={"msg": "the real one"}),
    ]
    assert first_failure(events) == "sandbox: real: the real one"
    assert first_failure(events[:2]) is None


def test_no_log_result_is_not_shown():
    ev = event("runner_on_failed", res={"censored": "the output has been hidden due to no_log"})
    assert describe_failure(ev) == "sandbox: venv | Create the virtualenv: failed (output hidden by no_log)"


def test_loop_failure_reports_the_failed_item():
    res = {
        "msg": "One or more items failed",
        "results": [
            {"failed": False, "msg": ""},
            {"failed": True, "msg": "non-zero return code", "rc": 3, "stderr": "oops"},
        ],
    }
    assert describe_failure(event("runner_on_failed", res=res)).endswith(": command failed (rc=3): oops")


def test_failure_from_output_prefers_the_error_line():
    text = "\n[ERROR]: YAML parsing failed: did not find expected ','\nOrigin: x.yml:4:1\n\n(source not shown)\n"
    assert failure_from_output(text) == "YAML parsing failed: did not find expected ','"
    assert failure_from_output("\nThe command was not found: ansible-playbook.\n\n") == (
        "The command was not found: ansible-playbook."
    )
    assert failure_from_output("\n \n") is None


# --- stats, output, summary --------------------------------------------------------------------


def test_parse_stats_fills_missing_counters():
    data = {
        "ok": {"sandbox": 12, "login": 1},
        "changed": {"sandbox": 2},
        "failures": {"login": 1},
        "dark": {},
        "skipped": {"sandbox": 3},
        "rescued": {},
        "ignored": {"sandbox": 1},
        "processed": {"sandbox": 1, "login": 1, "idle": 1},
    }
    stats = parse_stats(data)
    assert stats["sandbox"] == HostStats(ok=12, changed=2, failed=0, unreachable=0, skipped=3, rescued=0, ignored=1)
    assert stats["login"].failed == 1
    assert stats["idle"] == HostStats(0, 0, 0, 0, 0, 0, 0)
    result = PlaybookResult("failed", 2, stats, Path("x.log"), "login: t: m")
    assert not result.ok
    assert format_summary(result).splitlines() == [
        "idle: ok=0 changed=0 failed=0 unreachable=0",
        "login: ok=1 changed=0 failed=1 unreachable=0",
        "sandbox: ok=12 changed=2 failed=0 unreachable=0",
    ]


def test_event_output_strips_colour_and_carriage_returns():
    assert event_output({"event": "runner_on_ok", "stdout": "\x1b[0;32mok: [h]\x1b[0m\r\nnext"}) == [
        "ok: [h]",
        "next",
    ]
    assert event_output({"event": "runner_on_start", "stdout": ""}) == []
    assert event_output({"event": "verbose", "stdout": ""}) == [""]


# --- progress state and plain display ----------------------------------------------------------


def test_progress_state_counts_results():
    state = ProgressState("setup")
    line = state.apply({"event": "playbook_on_task_start", "event_data": {"task": "venv | X", "role": "cesres_venv"}})
    assert line == "[setup] TASK cesres_venv : venv | X"
    state.apply(event("runner_on_start"))
    state.apply(event("runner_on_ok", res={"changed": True}))
    state.apply(event("runner_on_ok", res={"changed": False}))
    state.apply(event("runner_on_failed", ignore_errors=True, res={}))
    state.apply(event("runner_on_failed", res={}))
    assert (state.tasks_started, state.ok, state.changed, state.failed) == (1, 3, 1, 1)
    assert state.status_line() == "ok=3 changed=1 failed=1  sandbox: cesres_venv : venv | X"


def test_display_without_tty_prints_one_plain_line_per_task():
    out = io.StringIO()
    console = Console(file=out, force_terminal=False, width=200)
    with ProgressDisplay("setup", console=console) as display:
        display.set_total(5)
        display.handle({"event": "playbook_on_task_start", "event_data": {"task": "[brackets] kept"}}, ["TASK ..."])
        display.handle(event("runner_on_ok", res={}), ["ok: [sandbox]"])
    assert out.getvalue() == "[setup] TASK [brackets] kept\n"


# --- real runs ---------------------------------------------------------------------------------

FIXTURE_PLAYBOOKS = {
    "ok.yml": """\
- name: Succeeds
  hosts: localhost
  connection: local
  gather_facts: false
  tasks:
    - name: Say hello
      ansible.builtin.debug:
        msg: "hello {{ who | default('nobody') }}"
""",
    "fail.yml": """\
- name: Fails
  hosts: localhost
  connection: local
  gather_facts: false
  tasks:
    - name: Run false
      ansible.builtin.command: /bin/false
      changed_when: false
    - name: Never reached
      ansible.builtin.debug:
        msg: unreachable code
""",
    "broken.yml": "- hosts: localhost\n  tasks:\n    - ansible.builtin.debug: {msg: 1\n",
}


@pytest.fixture
def project(tmp_path, monkeypatch):
    root = tmp_path / "project"
    (root / "playbooks").mkdir(parents=True)
    (root / "inventory").mkdir()
    (root / "ansible.cfg").write_text("[defaults]\ninventory = inventory/hosts\nretry_files_enabled = false\n")
    (root / "inventory" / "hosts").write_text(
        f"localhost ansible_connection=local ansible_python_interpreter={sys.executable}\n"
    )
    for name, text in FIXTURE_PLAYBOOKS.items():
        (root / "playbooks" / name).write_text(text)
    monkeypatch.setenv("CESRES_CTL_PROJECT", str(root))
    monkeypatch.setenv("XDG_STATE_HOME", str(tmp_path / "state"))
    return root


def test_successful_run_and_no_leak_between_runs(project, tmp_path, monkeypatch):
    private_dirs = []
    real_mkdtemp = tempfile.mkdtemp

    def recording_mkdtemp(**kwargs):
        private_dirs.append(Path(real_mkdtemp(**kwargs)))
        return str(private_dirs[-1])

    monkeypatch.setattr(tempfile, "mkdtemp", recording_mkdtemp)
    first = run_playbook("playbooks/ok.yml", extravars={"who": "first-run"}, quiet=True)
    assert first.ok
    assert (first.status, first.rc, first.failure) == ("successful", 0, None)
    assert first.hosts == {"localhost": HostStats(1, 0, 0, 0, 0, 0, 0)}
    assert first.log_path.parent == tmp_path / "state" / "cesres-ctl" / "logs"
    assert first.log_path.name.startswith("ok-")
    log = first.log_path.read_text()
    assert "TASK [Say hello]" in log
    assert '"msg": "hello first-run"' in log
    assert "PLAY RECAP" in log
    assert "\x1b[" not in log
    assert "\r" not in log
    assert format_summary(first) == "localhost: ok=1 changed=0 failed=0 unreachable=0"

    second = run_playbook("playbooks/ok.yml", quiet=True)
    assert second.ok
    assert second.log_path != first.log_path
    second_log = second.log_path.read_text()
    assert '"msg": "hello nobody"' in second_log
    assert "first-run" not in second_log
    # One fresh private data dir per run, gone afterwards; only the logs stay.
    assert len(set(private_dirs)) == 2
    assert all(d.name.startswith("cesres-") and not d.exists() for d in private_dirs)


def test_failed_run(project):
    result = run_playbook("playbooks/fail.yml", quiet=True)
    assert not result.ok
    assert result.status == "failed"
    assert result.rc == 2
    assert result.hosts["localhost"].failed == 1
    assert result.failure == "localhost: Run false: command failed (rc=1)"
    log = result.log_path.read_text()
    assert "TASK [Run false]" in log
    assert "Never reached" not in log


def test_broken_playbook_reports_the_ansible_error(project):
    result = run_playbook("playbooks/broken.yml", quiet=True)
    assert result.status == "failed"
    assert result.hosts == {}
    assert result.failure is not None
    assert result.failure.startswith("YAML parsing failed")


def test_plain_progress_and_verbose_output(project, capsys):
    run_playbook("playbooks/ok.yml", title="hello")
    assert capsys.readouterr().out == "[hello] TASK Say hello\n"
    run_playbook("playbooks/ok.yml", verbose=True)
    out = capsys.readouterr().out
    assert "TASK [Say hello]" in out
    assert "PLAY RECAP" in out


def test_missing_playbook_or_inventory(project):
    with pytest.raises(CesresError, match="no playbook"):
        run_playbook("playbooks/nope.yml", quiet=True)
    with pytest.raises(CesresError, match="inventory"):
        run_playbook("playbooks/ok.yml", inventory="inventory/nope", quiet=True)


def test_explicit_inventory(project):
    (project / "inventory" / "other").write_text(
        f"otherhost ansible_connection=local ansible_python_interpreter={sys.executable}\n"
    )
    (project / "playbooks" / "any.yml").write_text(
        "- name: All\n  hosts: all\n  gather_facts: false\n"
        "  tasks:\n    - name: Noop\n      ansible.builtin.debug:\n        msg: hi\n"
    )
    result = run_playbook("playbooks/any.yml", inventory="inventory/other", quiet=True)
    assert result.ok
    assert list(result.hosts) == ["otherhost"]


def test_several_inventory_sources_are_read_in_order(project, tmp_path):
    """The user's overlay after the project's inventory: its host vars win, the project's hosts stay."""
    overlay = tmp_path / "overlay" / "user.yml"
    overlay.parent.mkdir()
    overlay.write_text("all:\n  hosts:\n    localhost:\n      who: the-overlay\n")
    result = run_playbook("playbooks/ok.yml", inventory=["inventory/hosts", str(overlay)], quiet=True)
    assert result.ok, result.failure
    assert list(result.hosts) == ["localhost"]
    assert '"msg": "hello the-overlay"' in result.log_path.read_text()


def test_report_tasks_reach_the_user_other_debug_tasks_do_not():
    def event(task: str, msg: object, action: str = "ansible.builtin.debug", kind: str = "runner_on_ok") -> dict:
        return {
            "event": kind,
            "event_data": {"task": task, "task_action": action, "host": "sandbox", "res": {"msg": msg}},
        }

    kept = "module PyTorch gives torch 1.12.1; the file asks 1.12.0: kept the module's"
    assert report_lines(event("Report the module versions kept", [kept])) == [f"sandbox: {kept}"]
    assert report_lines(event("Report one thing", "single")) == ["sandbox: single"]
    assert report_lines(event("Show the run", ["not a report"])) == []
    assert report_lines(event("Report x", ["y"], action="ansible.builtin.command")) == []
    assert report_lines(event("Report x", ["y"], kind="runner_on_skipped")) == []
