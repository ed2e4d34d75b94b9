"""The conventions of the command line (docs/cli.md): results on stdout and the rest on stderr, usage lines that
name the arguments, options before `--` and the model's after it, JSON errors under --json, dry runs."""

import json
import re

import pytest

from cesres_ctl import cli
from cesres_ctl.errors import ExitCode
from tests.conftest import MINI, PROJECT, run_main
from tests.fake_cluster import FakeCluster
from tests.unit.test_cli import one_error_line

ON_CPU = ("--", "-d", "cpu", "-l", "1")


# --- stdout: the result only ---------------------------------------------------------------------------------


def test_train_prints_only_its_run_id_on_stdout_and_its_progress_on_stderr(tmp_path):
    """`RUN=$(cesres-ctl train ...)`: the progress of the playbook, the notes and the submission's lines are on
    stderr, the run id alone on stdout."""
    cluster = FakeCluster(tmp_path)
    done = cluster.run("train", "configs/demo.yaml", "--cluster", "fake", *ON_CPU)
    assert done.returncode == 0, done.stderr
    [run_id] = [line.split()[1].rstrip(":") for line in done.stderr.splitlines() if line.startswith("submitted")]
    assert done.stdout == f"{run_id}\n"
    assert "TASK" in done.stderr and f"run directory: fake:{cluster.cluster}/cesres/runs/{run_id}" in done.stderr
    again = cluster.run("train", "configs/demo.yaml", "--cluster", "fake", *ON_CPU)
    assert (again.returncode, again.stdout) == (0, f"{run_id}\n"), again.stderr
    assert f"existing run {run_id}" in again.stderr


def test_sweep_prints_only_its_sweep_id_on_stdout(tmp_path):
    cluster = FakeCluster(tmp_path)
    vary = ("--vary", "TRAINER.learning_rate=0.1,0.2")
    done = cluster.run("sweep", "configs/demo.yaml", *vary, "--cluster", "fake", *ON_CPU)
    assert done.returncode == 0, done.stderr
    [sweep_id] = done.stdout.split()
    assert done.stdout == f"{sweep_id}\n" and sweep_id.startswith("sweep-demo-")
    assert f"sweep {sweep_id} on fake: submitted 2 point(s)" in done.stderr


# --- the command line ------------------------------------------------------------------------------------------


def _all_commands() -> list[list[str]]:
    group = cli.typer.main.get_group(cli.app)
    found = []
    for name in cli.COMMANDS:
        command = group.get_command(None, name)
        found.append([name])
        found += [[name, sub] for sub in getattr(command, "commands", {})]
    return found


@pytest.mark.parametrize("words", _all_commands(), ids=" ".join)
def test_help_names_arguments_and_values_as_usage_lines_do(monkeypatch, capsys, words):
    """No Python names (`{run_ref}`, `<str>`): RUN, CONFIG, CLUSTER, N..."""
    code, out, _ = run_main(monkeypatch, capsys, *words, "--help")
    assert code == 0
    usage = out.splitlines()[0]
    arguments = r"( \[?[A-Z|]+(\.\.\.)?\]?)*( \[-- MODEL OPTIONS\.\.\.\])?( COMMAND \[ARGS\]\.\.\.)?"
    assert re.fullmatch(r"Usage: cesres-ctl [a-z ]+ \[OPTIONS\]" + arguments, usage), usage
    assert not re.search(r"<[a-z]+>|\{[a-z_]+\}|\b[a-z]+_[a-z_]+  ", out), out


def test_verbose_is_one_option_wherever_it_is_offered():
    """--verbose/-v is declared once (cesres_ctl/options.py): each command that runs a playbook offers it with the
    same flags and the same help."""
    group = cli.typer.main.get_group(cli.app)
    offered = {}
    for words in _all_commands():
        command = group
        for word in words:
            command = command.get_command(None, word)
        for param in command.params:
            if "--verbose" in param.opts:
                offered[" ".join(words)] = (tuple(param.opts), param.help)
    assert {"setup", "train", "predict", "sandbox up", "sandbox down"} <= set(offered)
    assert set(offered.values()) == {(("--verbose", "-v"), "Show Ansible's own output.")}
    package = PROJECT / "cesres_ctl"
    sources = {str(path.relative_to(package)): path.read_text().count('"--verbose"') for path in package.rglob("*.py")}
    assert {name: count for name, count in sources.items() if count} == {"options.py": 1}


def test_the_root_help_shows_the_exit_codes(monkeypatch, capsys):
    code, out, _ = run_main(monkeypatch, capsys, "--help")
    assert code == 0
    assert "Exit codes: 0 done; 1 failed; 2 usage; 3 unreachable; 130 interrupted" in " ".join(out.split())


@pytest.mark.parametrize(
    ("argv", "words"),
    [
        # sweep had no --wait: it became a model option, refused as one.
        (("sweep", "c.yaml", "--vary", "A.b=1,2", "--wiat"), ["No such option: --wiat", "did you mean --wait?"]),
        (("train", "c.yaml", "--jsn"), ["No such option: --jsn", "did you mean --json?"]),
        (("train", "c.yaml", "-l", "3"), ["No such option: -l"]),  # a model option before `--`
        (("train", "c.yaml", "extra"), ["unexpected extra argument", "extra"]),
    ],
)
def test_an_unknown_option_before_the_model_options_is_a_usage_error(monkeypatch, capsys, argv, words):
    code, out, err = run_main(monkeypatch, capsys, *argv)
    assert (code, out) == (ExitCode.USAGE, "")
    line = one_error_line(err)
    assert all(word in line for word in words), line


def test_model_options_go_after_the_double_dash(monkeypatch, capsys):
    monkeypatch.chdir(MINI)
    batch = ("-C", "sandbox", "-p", "batch")
    code, out, err = run_main(monkeypatch, capsys, "train", "configs/demo.yaml", *batch, "--dry-run", *ON_CPU)
    assert code == 0, err
    assert "device: cpu" in out
    code, _, err = run_main(monkeypatch, capsys, "train", "configs/demo.yaml", *batch, "--", "--wait")
    assert code == ExitCode.FAILED
    assert "model option '--wait' is not allowed" in one_error_line(err)


# --- --json: errors as JSON too --------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("argv", "code", "outcome"),
    [
        (("status", "no-such-run", "--json"), ExitCode.FAILED, "failed"),
        (("runs", "--json", "--bogus"), ExitCode.USAGE, "usage"),
        (("train", "missing.yaml", "--json", "--", "-d", "cpu"), ExitCode.FAILED, "failed"),
    ],
)
def test_a_failure_under_json_is_a_json_object_on_stdout(monkeypatch, capsys, tmp_path, argv, code, outcome):
    monkeypatch.setenv("XDG_STATE_HOME", str(tmp_path))
    exit_code, out, err = run_main(monkeypatch, capsys, *argv)
    assert exit_code == code
    line = one_error_line(err)
    assert json.loads(out) == {"error": line.removeprefix("cesres-ctl: error: "), "exit_code": code, "outcome": outcome}


def test_json_after_the_double_dash_is_the_models(monkeypatch, capsys, tmp_path):
    monkeypatch.setenv("XDG_STATE_HOME", str(tmp_path))
    code, out, _ = run_main(monkeypatch, capsys, "train", "missing.yaml", "--", "--json")
    assert (code, out) == (ExitCode.FAILED, "")


# --- dry runs --------------------------------------------------------------------------------------------------


def test_sweep_dry_run_prints_the_job_array_and_every_points_config(monkeypatch, capsys, tmp_path):
    monkeypatch.setenv("XDG_STATE_HOME", str(tmp_path))
    monkeypatch.chdir(MINI)

    def no_ssh(*_args, **_kwargs):
        raise AssertionError("a dry run reached the cluster")

    monkeypatch.setattr("cesres_ctl.runner.run_playbook", no_ssh)
    monkeypatch.setattr("cesres_ctl.runs.remote.execute", no_ssh)
    vary = ("--vary", "TRAINER.learning_rate=0.1,0.2", "--max-parallel", "1")
    code, out, err = run_main(monkeypatch, capsys, "sweep", "configs/demo.yaml", *vary, "-C", "sandbox", "--dry-run")
    assert code == 0, err
    lines = out.splitlines()
    assert lines[:2] == [
        "# dry run: nothing is sent to sandbox",
        "# sweep sweep-demo-<10 hex digits from every point's inputs>: 2 points, one job array, at most 1 at once",
    ]
    assert "# point 0 (TRAINER.learning_rate=0.1): config.yaml:" in lines
    assert "# point 1 (TRAINER.learning_rate=0.2): config.yaml:" in lines
    assert [line.strip() for line in lines if "learning_rate:" in line] == [
        "#     learning_rate: 0.1",
        "#     learning_rate: 0.2",
    ]
    assert "#SBATCH --output=slurm-%A_%a.out" in lines  # one job array
    assert not (tmp_path / "cesres-ctl" / "runs.sqlite").exists()  # nothing recorded
    code, out, _ = run_main(
        monkeypatch, capsys, "sweep", "configs/demo.yaml", *vary, "-C", "sandbox", "--dry-run", "--json"
    )
    assert code == 0 and json.loads(out)["dry_run"] is True
