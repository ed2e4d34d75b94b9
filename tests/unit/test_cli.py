"""The CLI's contract: one-line errors, non-zero exits, never a traceback."""

import sys

import pytest

from cesres_ctl import cli, paths


def run_main(monkeypatch, capsys, *argv: str) -> tuple[int, str, str]:
    # --root sets CESRES_SANDBOX_ROOT for the playbooks: restore it after the test.
    monkeypatch.setenv("CESRES_SANDBOX_ROOT", str(paths.sandbox_root()))
    monkeypatch.setattr(sys, "argv", ["cesres-ctl", *argv])
    with pytest.raises(SystemExit) as exited:
        cli.main()
    captured = capsys.readouterr()
    return exited.value.code, captured.out, captured.err


def test_sandbox_up_needs_root(monkeypatch, capsys):
    monkeypatch.setattr("os.geteuid", lambda: 1000)
    code, _, err = run_main(monkeypatch, capsys, "sandbox", "up")
    assert code == 1
    assert err.strip().splitlines() == [
        "cesres-ctl: error: the sandbox cluster is built and run as root on this machine: run with sudo"
    ]


def test_status_of_a_missing_sandbox_is_a_clear_failure(monkeypatch, capsys, tmp_path):
    code, out, err = run_main(monkeypatch, capsys, "sandbox", "status", "--root", str(tmp_path / "none"))
    assert code == 1
    assert "no sandbox at" in out
    assert "Traceback" not in err


def test_status_json_of_a_missing_sandbox_is_valid_json(monkeypatch, capsys, tmp_path):
    import json

    code, out, _ = run_main(monkeypatch, capsys, "sandbox", "status", "--json", "--root", str(tmp_path))
    assert code == 1
    report = json.loads(out)
    assert report["built"] is False
    assert report["healthy"] is False


def test_unknown_command_is_a_usage_error(monkeypatch, capsys):
    code, _, err = run_main(monkeypatch, capsys, "sandbox", "explode")
    assert code == 2
    assert "No such command" in err
    assert "Traceback" not in err
