"""The CLI's contract: one-line errors, non-zero exits, never a traceback."""

import sys
from pathlib import Path

import pytest

from cesres_ctl import cli
from tests.conftest import run_main


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


def one_error_line(err: str) -> str:
    lines = [line for line in err.splitlines() if line.strip()]
    assert len(lines) == 1, err
    assert lines[0].startswith("cesres-ctl: error: "), lines[0]
    return lines[0]


@pytest.mark.parametrize(
    ("argv", "words"),
    [
        (
            ("train", "tests/data/template_config.yaml", "--gpus", "abc"),
            ["--gpus", "not a valid int", "cesres-ctl train --help"],
        ),
        (("train",), ["Missing argument", "cesres-ctl train --help"]),
        (("runs", "--bogus"), ["--bogus", "cesres-ctl runs --help"]),
        (("status",), ["Missing argument"]),
        (("logs", "x", "--lines", "many"), ["--lines", "not a valid int"]),
        (("setup", "--cluster"), ["--cluster"]),
        (("sandbox", "explode"), ["No such command", "cesres-ctl sandbox --help"]),
    ],
)
def test_usage_errors_are_one_line_with_exit_code_2(monkeypatch, capsys, argv, words):
    code, out, err = run_main(monkeypatch, capsys, *argv)
    assert code == 2
    line = one_error_line(err)
    assert all(word in line for word in words), line
    assert out == ""


@pytest.mark.parametrize(("argv", "code"), [((), 2), (("sandbox",), 2), (("--help",), 0), (("train", "--help"), 0)])
def test_help_is_printed_on_stdout(monkeypatch, capsys, argv, code):
    exit_code, out, err = run_main(monkeypatch, capsys, *argv)
    assert exit_code == code
    assert "Usage: cesres-ctl" in out
    assert err == ""


def test_version_exits_0(monkeypatch, capsys):
    code, out, _ = run_main(monkeypatch, capsys, "--version")
    assert (code, out.split()[0]) == (0, "cesres-ctl")


def test_an_unwritable_state_directory_is_one_line(monkeypatch, capsys):
    monkeypatch.setenv("XDG_STATE_HOME", "/proc/cesres-ctl-test")
    code, _, err = run_main(monkeypatch, capsys, "runs")
    assert code == 1
    line = one_error_line(err)
    assert "/proc/cesres-ctl-test/cesres-ctl" in line and "XDG_STATE_HOME" in line, line


@pytest.mark.parametrize(
    ("error", "words"),
    [
        (PermissionError(13, "Permission denied", "/some/file"), ["Permission denied", "/some/file"]),
        (OSError("disk on fire"), ["disk on fire"]),
        (RecursionError("maximum recursion depth exceeded"), ["nested too deeply"]),
    ],
)
def test_unexpected_local_errors_are_one_line(monkeypatch, capsys, tmp_path, error, words):
    monkeypatch.setenv("XDG_STATE_HOME", str(tmp_path))

    def fail(*_args, **_kwargs):
        raise error

    monkeypatch.setattr("cesres_ctl.runs.registry.Registry.list", fail)
    code, _, err = run_main(monkeypatch, capsys, "runs")
    assert code == 1
    line = one_error_line(err)
    assert all(word in line for word in words), line


def test_ctrl_c_is_one_line_and_exit_130(monkeypatch, capsys, tmp_path):
    monkeypatch.setenv("XDG_STATE_HOME", str(tmp_path))

    def interrupt(*_args, **_kwargs):
        raise KeyboardInterrupt

    monkeypatch.setattr("cesres_ctl.runs.registry.Registry.list", interrupt)
    code, _, err = run_main(monkeypatch, capsys, "runs")
    assert code == 130
    assert "interrupted" in one_error_line(err)


def test_a_cesres_error_keeps_its_exit_code(monkeypatch, capsys, tmp_path):
    from cesres_ctl.errors import CesresError

    monkeypatch.setenv("XDG_STATE_HOME", str(tmp_path))

    def unreachable(*_args, **_kwargs):
        raise CesresError("cluster unreachable", exit_code=3)

    monkeypatch.setattr("cesres_ctl.runs.registry.Registry.list", unreachable)
    code, _, err = run_main(monkeypatch, capsys, "runs")
    assert code == 3
    assert one_error_line(err) == "cesres-ctl: error: cluster unreachable"


@pytest.fixture
def recorded_run(monkeypatch, tmp_path):
    """A run in a private registry; contacting the cluster fails the test."""
    from cesres_ctl.runs import remote
    from cesres_ctl.runs.registry import Registry, Run, now

    monkeypatch.setenv("XDG_STATE_HOME", str(tmp_path / "state"))
    Registry().record_submission(
        Run("sandbox", "dest-0123456789", "dest", "7", "/runs/dest-0123456789", now(), "COMPLETED")
    )

    def no_ssh(*_args, **_kwargs):
        raise AssertionError("the cluster was contacted")

    for name in ("fetch", "execute"):
        monkeypatch.setattr(remote, name, no_ssh)
    a_file = tmp_path / "a-file"
    a_file.write_text("")
    return a_file


@pytest.mark.parametrize(
    ("argv", "words"),
    [
        (("fetch", "dest", "--dest", "{file}"), ["a-file is a file, not a directory", "--dest"]),
        (("fetch", "dest", "--dest", "{file}/sub"), ["a-file is a file, not a directory"]),
        (("fetch", "dest", "--dest", "/proc/cesres-x"), ["cannot write in /proc", "--dest"]),
        (("fetch", "dest", "--dest", "/sys/cesres-x"), ["cannot write in /sys"]),
        (("plot", "dest", "--output", "/proc/cesres-x.png"), ["cannot write in /proc", "--output"]),
        (("plot", "dest", "--output", "{file}/x.png"), ["a-file is a file, not a directory"]),
        (("plot", "dest", "--output", "/tmp"), ["/tmp is a directory"]),
    ],
)
def test_a_bad_destination_is_one_line_before_any_ssh(monkeypatch, capsys, recorded_run, argv, words):
    argv = tuple(arg.replace("{file}", str(recorded_run)) for arg in argv)
    code, _, err = run_main(monkeypatch, capsys, *argv)
    assert code == 1
    line = one_error_line(err)
    assert all(word in line for word in words), line
    assert not any(Path(p).exists() for p in ("/proc/cesres-x", "/sys/cesres-x", "/proc/cesres-x.png"))


# Imported by no quick command: Ansible and its runner (~0.4 s with the inventory), rich (~16 ms), YAML
# (~9 ms: a cluster's values come from the cache), the job templates and plots. Issue 9: status and logs
# take at most 1.3x one `ssh … squeue`, whose time is mostly the two logins.
HEAVY_MODULES = ("ansible", "ansible_runner", "rich", "yaml", "jinja2", "matplotlib", "pydantic")


@pytest.mark.parametrize(
    "argv",
    [("status", "nothing"), ("logs", "nothing", "-n", "5"), ("cancel", "nothing"), ("runs", "--no-refresh")],
)
def test_the_quick_commands_import_nothing_heavy(tmp_path, argv):
    import subprocess

    env = {"PATH": "/usr/bin:/bin", "XDG_STATE_HOME": str(tmp_path / "state"), "HOME": str(tmp_path)}
    done = subprocess.run(
        [sys.executable, "-X", "importtime", "-m", "cesres_ctl", *argv],
        capture_output=True,
        text=True,
        env=env,
        cwd=Path(cli.__file__).parent.parent,
        check=False,
        timeout=60,
    )
    imported = {line.split("|")[-1].strip() for line in done.stderr.splitlines() if line.startswith("import time:")}
    assert "cesres_ctl.cli" in imported  # the command ran (no run "nothing": one error line, exit 1)
    assert done.returncode == (0 if argv[0] == "runs" else 1), done.stderr[-500:]
    heavy = sorted(name for name in imported if name.split(".")[0] in HEAVY_MODULES)
    assert heavy == [], f"{' '.join(argv)} imported {heavy[:8]}"


def test_every_command_is_listed_and_found():
    names = list(cli.COMMANDS)
    group = cli.typer.main.get_group(cli.app)
    assert group.list_commands(None) == names
    for name in names:
        command = group.get_command(None, name)
        assert command is not None and command.name == name


@pytest.mark.parametrize(("stream", "redirect"), [("stdout", ">&-"), ("stderr", "2>&-"), ("stdin", "<&-")])
def test_a_closed_standard_stream_stops_the_command_before_any_file_is_opened(tmp_path, stream, redirect):
    """Issue 18: `runs >&-` was a traceback; the registry could have taken the free descriptor."""
    import subprocess

    script = f'"$@" {redirect}; echo "exit $?" >&3'
    done = subprocess.run(
        ["sh", "-c", f"exec 3>&1; {{ {script}; }} 2>&1", "sh", sys.executable, "-m", "cesres_ctl", "runs"],
        capture_output=True,
        text=True,
        env={"PATH": "/usr/bin:/bin", "XDG_STATE_HOME": str(tmp_path / "state"), "HOME": str(tmp_path)},
        cwd=Path(cli.__file__).parent.parent,
        check=False,
        timeout=60,
    )
    lines = done.stdout.splitlines()
    assert lines[-1] == "exit 1", done.stdout
    if stream != "stderr":
        assert lines[:-1] == [f"cesres-ctl: error: started with {stream} closed: give it a file or /dev/null"]
    assert not (tmp_path / "state").exists()


def test_json_answers_are_strict_json(capsys):
    """Issue 18: a NaN (a diverged loss in a run's metrics) was printed as NaN, which no JSON reader takes."""
    import json

    from cesres_ctl.console import print_json

    print_json({"best_validation_loss": float("nan"), "losses": [0.5, float("inf")]})
    out = capsys.readouterr().out
    assert json.loads(out, parse_constant=lambda name: pytest.fail(f"{name} in {out}")) == {
        "best_validation_loss": None,
        "losses": [0.5, None],
    }


def test_plot_without_matplotlib_says_how_to_add_the_extra_before_any_ssh(monkeypatch, capsys, recorded_run):
    """matplotlib is the `plot` extra (issue 20): its absence is one line with the command that adds it."""
    monkeypatch.setitem(sys.modules, "matplotlib", None)  # as if not installed: its import fails
    code, out, err = run_main(monkeypatch, capsys, "plot", "dest")
    assert (code, out) == (1, "")
    assert one_error_line(err) == (
        "cesres-ctl: error: plot needs matplotlib, an extra: pip install 'cesres-ctl[plot]' "
        "(with pipx: pipx inject cesres-ctl matplotlib)"
    )
