"""Daemon bookkeeping by pid file: only the expected program is ever signalled."""

import json
import os
import subprocess
from pathlib import Path

import pytest

from cesres_ctl.errors import CesresError
from cesres_ctl.sandbox import daemons, manifest


def make_daemon(tmp_path: Path, exe: str, **overrides) -> manifest.Daemon:
    values = {
        "name": "probe",
        "argv": [exe],
        "pidfile": tmp_path / "probe.pid",
        "exe": exe,
        "log": tmp_path / "probe.log",
        "detach": True,
        "netns": False,
        "ready": {"command": ["true"]},
    }
    values.update(overrides)
    return manifest.Daemon(**values)


def test_pid_of_another_program_is_not_ours(tmp_path):
    daemon = make_daemon(tmp_path, "/usr/sbin/munged")
    daemon.pidfile.write_text(f"{os.getpid()}\n")  # this process is python, not munged
    assert daemons.running_pid(daemon) is None
    assert daemons.stop(daemon) is False  # nothing signalled
    assert not daemon.pidfile.exists()  # the stale pid file is cleaned up


def test_stale_pid_is_not_running(tmp_path):
    daemon = make_daemon(tmp_path, "/usr/bin/sleep")
    finished = subprocess.Popen(["true"])
    finished.wait()
    daemon.pidfile.write_text(f"{finished.pid}\n")
    assert daemons.state(daemon).running is False


def test_start_and_stop_a_foreground_program_by_pid_file(tmp_path):
    sleep = os.path.realpath("/usr/bin/sleep")
    pidfile = tmp_path / "sleep.pid"
    # A foreground program that writes its own pid file, as mariadbd does.
    script = f"echo $$ > {pidfile}; exec {sleep} 60"
    # The readiness check ("true") passes at once: not exclusive, or it would look foreign.
    daemon = make_daemon(tmp_path, sleep, argv=["sh", "-c", script], pidfile=pidfile, exclusive=False)
    netns = manifest.Netns("unused", "a", "b", "127.0.0.1", "127.0.0.2", 30)
    assert daemons.start(daemon, netns, timeout=10) is True
    pid = daemons.running_pid(daemon)
    assert pid is not None
    assert daemons.start(daemon, netns, timeout=10) is False  # already running: not started twice
    assert daemons.stop(daemon) is True
    assert daemons.running_pid(daemon) is None


def test_a_daemon_that_never_gets_ready_is_reported_with_its_log(tmp_path):
    sleep = os.path.realpath("/usr/bin/sleep")
    pidfile = tmp_path / "sleep.pid"
    log = tmp_path / "probe.log"
    log.write_text("starting\nfatal: cannot bind\n")
    daemon = make_daemon(
        tmp_path,
        sleep,
        argv=["sh", "-c", f"echo $$ > {pidfile}; exec {sleep} 30"],
        pidfile=pidfile,
        log=log,
        ready={"command": ["false"]},
    )
    netns = manifest.Netns("unused", "a", "b", "127.0.0.1", "127.0.0.2", 30)
    try:
        with pytest.raises(CesresError, match=r"did not become ready within 1 s: fatal: cannot bind"):
            daemons.start(daemon, netns, timeout=1)
    finally:
        daemons.stop(daemon)


def test_manifest_errors_are_one_line(tmp_path):
    with pytest.raises(CesresError, match="run 'cesres-ctl sandbox up'"):
        manifest.load(tmp_path)
    (tmp_path / "sandbox.json").write_text(json.dumps({"root": str(tmp_path)}))
    with pytest.raises(CesresError, match="incomplete"):
        manifest.load(tmp_path)
    (tmp_path / "sandbox.json").write_text("{not json")
    with pytest.raises(CesresError, match="cannot read"):
        manifest.load(tmp_path)


def test_a_service_that_already_answers_is_never_taken_over(tmp_path):
    sleep = os.path.realpath("/usr/bin/sleep")
    daemon = make_daemon(tmp_path, sleep, argv=["false"], ready={"command": ["true"]})
    netns = manifest.Netns("unused", "a", "b", "127.0.0.1", "127.0.0.2", 30)
    with pytest.raises(CesresError, match="another probe that the sandbox did not start already answers"):
        daemons.start(daemon, netns, timeout=1)


def test_a_non_exclusive_daemon_starts_even_if_its_check_already_passes(tmp_path):
    sleep = os.path.realpath("/usr/bin/sleep")
    pidfile = tmp_path / "sleep.pid"
    daemon = make_daemon(
        tmp_path,
        sleep,
        argv=["sh", "-c", f"echo $$ > {pidfile}; exec {sleep} 30"],
        pidfile=pidfile,
        exclusive=False,
    )
    netns = manifest.Netns("unused", "a", "b", "127.0.0.1", "127.0.0.2", 30)
    try:
        assert daemons.start(daemon, netns, timeout=10) is True
    finally:
        daemons.stop(daemon)
