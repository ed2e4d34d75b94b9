"""docs/ceci-guide.md, section 6 ("Your first training run"), run as written against the sandbox (issue 20).

What runs, and how the guide marks it:
- every line starting with `$ ` in a ```console block of the section, in the guide's order, each in
  `bash -o pipefail -c` from the directory the earlier commands left (a `cd` changes it for the next ones);
- a fenced block right after an HTML comment `<!-- guide-test: file NAME -->` is a file the reader creates:
  it is written to NAME, in that directory, before the commands that follow it.
Other blocks (```bash, ```yaml without the comment, ```text without it) and the tables are not run.

The only differences between the guide and what runs are the substitutions of SUBSTITUTIONS (each must
apply at least once: a rule that no command needs is removed, not kept): the fork's code that the sandbox
publishes (sandbox/cesres-fork, its git bundle) for GitHub's repository, and the resources that the sandbox
cannot offer (its node has no real GPU and its PyTorch runs on the CPU): `--partition batch --gpus 0` for
`--partition gpu --gpus 1`, and `-d cpu` for the program of a `train` (the template says `device: cuda`).
A `cd DIR` (DIR relative) changes the directory of the commands that follow.

The reader's laptop: HOME is a fresh directory (the commands start there), `cesres-ctl` on PATH is this
checkout's, and the reader's configuration ($HOME/.config/cesres-ctl/config.yml, section 3 of the guide) has
the sandbox as default cluster with the code and venv of tests/integration/test_real_cesres.py
(~/cesres-real, ~/cesres-real-env: the guide's one setup then changes nothing there but the data if that
test ran before, else it installs the real requirements, a few minutes). The runs the guide makes (`first`,
`predict-first`) are removed from the cluster first, so that its commands train and predict each time.

A command passes when it exits 0, prints no error line (ERROR_LINE) on stdout or stderr, and shows what
the guide says it shows (CHECKS: each command must match exactly one check).
"""

import os
import re
import shlex
import subprocess
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import pytest
import yaml

from tests.conftest import PROJECT

GUIDE = PROJECT / "docs" / "ceci-guide.md"
BUNDLE = PROJECT / "sandbox" / "cesres-fork" / "INGInious-CESReS.bundle"  # cloned as INGInious-CESReS
SECTION = "## 6. Your first training run"
FILE_MARKER = re.compile(r"^<!-- guide-test: file (\S+) -->$")
ROOT = "~/cesres-real"  # test_real_cesres.py's code and venv
VENV = "~/cesres-real-env"
STATES = ("PENDING", "RUNNING", "COMPLETING", "COMPLETED")
ERROR_LINE = re.compile(
    r"^\s*((cesres-ctl|cesres-job): )?error\b|^Traceback \(most recent call last\)|^fatal:|FAILED!|failed=[1-9]",
    re.IGNORECASE | re.MULTILINE,
)


@dataclass(frozen=True)
class Step:
    kind: str  # "command" or "file"
    text: str  # the command as the guide writes it, or the file's content
    name: str = ""  # the file's name


def section_text() -> str:
    text = GUIDE.read_text(encoding="utf-8")
    assert SECTION in text, f"{GUIDE} has no section {SECTION!r}"
    body = text.split(SECTION, 1)[1]
    return body.split("\n## ", 1)[0]


def steps(text: str) -> list[Step]:
    """The section's runnable commands and files, in order."""
    found: list[Step] = []
    lines = text.splitlines()
    index = 0
    pending_file = ""
    while index < len(lines):
        line = lines[index]
        marker = FILE_MARKER.match(line.strip())
        if marker:
            pending_file = marker.group(1)
        elif line.startswith("```") and line.strip() != "```":
            language = line[3:].strip()
            end = lines.index("```", index + 1)
            block = lines[index + 1 : end]
            if pending_file:
                found.append(Step("file", "\n".join(block) + "\n", pending_file))
            elif language == "console":
                found += [Step("command", entry[2:]) for entry in block if entry.startswith("$ ")]
            pending_file = ""
            index = end
        elif line.strip():
            pending_file = "" if not line.startswith("<!--") else pending_file
        index += 1
    return found


# --- The substitution table: guide (dragon2) -> sandbox ----------------------------------------------------
@dataclass(frozen=True)
class Substitution:
    why: str
    apply: Callable[[str, "Laptop"], str]


def _program_on_the_cpu(command: str, laptop: "Laptop") -> str:
    if not command.startswith("cesres-ctl train "):
        return command
    return f"{command} -d cpu" if " -- " in command else f"{command} -- -d cpu"


SUBSTITUTIONS = (
    Substitution(
        "the CESReS repository: the fork's code that the sandbox publishes (sandbox/cesres-fork, a git bundle)",
        lambda command, laptop: command.replace(
            "https://github.com/jorgetomaylla21/INGInious-CESReS.git", str(laptop.repository)
        ),
    ),
    Substitution(
        "dragon2's GPU partition: the sandbox's batch partition, no GPU (its PyTorch runs on the CPU)",
        lambda command, laptop: command.replace("--partition gpu --gpus 1", "--partition batch --gpus 0"),
    ),
    Substitution("the program of a training run on the CPU: -d cpu (the template says cuda)", _program_on_the_cpu),
)


def substituted(command: str, laptop: "Laptop", used: set[int]) -> str:
    for number, rule in enumerate(SUBSTITUTIONS):
        changed = rule.apply(command, laptop)
        if changed != command:
            used.add(number)
        command = changed
    return command


# --- The reader's laptop -----------------------------------------------------------------------------------
@dataclass
class Laptop:
    home: Path
    repository: Path
    env: dict[str, str]
    cwd: Path
    run_id: str = ""

    def run(self, command: str, timeout: float) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            ["bash", "-o", "pipefail", "-c", command],
            cwd=self.cwd,
            env=self.env,
            capture_output=True,
            text=True,
            timeout=timeout,
            check=False,
        )


def make_laptop(base: Path) -> Laptop:
    home = base / "home"
    bin_dir = base / "bin"
    (home / ".config" / "cesres-ctl").mkdir(parents=True)
    bin_dir.mkdir()
    shim = bin_dir / "cesres-ctl"
    shim.write_text(f'#!/bin/sh\nexec {shlex.quote(sys.executable)} -m cesres_ctl "$@"\n')
    shim.chmod(0o755)
    config = {"default_cluster": "sandbox", "clusters": {"sandbox": {"cesres_root": ROOT, "cesres_venv": VENV}}}
    (home / ".config" / "cesres-ctl" / "config.yml").write_text(yaml.safe_dump(config))
    dropped = ("CESRES_CTL_CONFIG", "CESRES_CLUSTER", "CESRES_CTL_PROJECT", "PYTHONPATH")
    env = {key: value for key, value in os.environ.items() if not key.startswith("XDG_") and key not in dropped}
    env.update(HOME=str(home), PATH=f"{bin_dir}:{env.get('PATH', '/usr/bin:/bin')}", PYTHONPATH=str(PROJECT))
    return Laptop(home=home, repository=BUNDLE, env=env, cwd=home)


# --- What the guide says each command shows ----------------------------------------------------------------
def _template_labels(laptop: Laptop) -> set[str]:
    config = yaml.safe_load((laptop.home / "INGInious-CESReS" / "template_config.yaml").read_text())
    return set(config["MODEL"]["labels"])


def check_clone(laptop: Laptop, out: str, sandbox) -> None:
    checkout = laptop.cwd / "INGInious-CESReS"
    assert (checkout / "template_config.yaml").is_file() and (checkout / "demo" / "train.txt").is_file()


def check_dataset_dir(laptop: Laptop, out: str, sandbox) -> None:
    assert (laptop.cwd / "dataset").is_dir()


def check_dataset_files(laptop: Laptop, out: str, sandbox) -> None:
    for name in ("train.txt", "validation.txt", "test.txt"):
        assert (laptop.cwd / "dataset" / name).read_text() == (laptop.cwd / "demo" / name).read_text()


def check_components(laptop: Laptop, out: str, sandbox) -> None:
    # The guide: the components land in data/cesres-demo/ of the CESReS checkout on the cluster.
    done = sandbox.ssh(f"cd {ROOT}/data/cesres-demo && sha256sum train.txt validation.txt test.txt")
    assert done.returncode == 0, done.stderr
    assert re.search(r"ok=\d+ changed=\d+ .*failed=0", out), out[-2000:]


def check_cluster_config(laptop: Laptop, out: str, sandbox) -> None:
    data = yaml.safe_load((laptop.cwd / "cluster_config.yaml").read_text())["CONFIG"]
    paths = [data[key] for key in ("training", "validation", "evaluation")]
    assert paths == [f"cluster:data/cesres-demo/{name}" for name in ("train.txt", "validation.txt", "test.txt")]
    # What the config names is what setup copied (relative to the CESReS checkout on the cluster).
    names = " ".join(shlex.quote(path.removeprefix("cluster:")) for path in paths)
    done = sandbox.ssh(f"cd {ROOT} && ls {names}")
    assert done.returncode == 0, done.stderr


def check_dry_run(laptop: Laptop, out: str, sandbox) -> None:
    # The copies, the cluster's files among them, and the job script.
    assert "data/cesres-demo/train.txt (on the cluster) -> inputs/training.txt" in out, out[:3000]
    assert "#SBATCH --partition=batch" in out, out[-3000:]


def check_submitted(laptop: Laptop, out: str, sandbox) -> None:
    found = re.findall(r"\bfirst-[0-9a-f]{10}\b", out)
    assert found, out
    laptop.run_id = found[0]


def check_status(laptop: Laptop, out: str, sandbox) -> None:
    assert any(state in out for state in STATES), out


def check_logs_follow(laptop: Laptop, out: str, sandbox) -> None:
    # Followed until the job left the queue: the job's last words are in it.
    assert "Building the trainer" in out and "cesres-job: exit code 0" in out, out[-3000:]


def check_runs(laptop: Laptop, out: str, sandbox) -> None:
    assert laptop.run_id in out and "COMPLETED" in out, out


def check_wait(laptop: Laptop, out: str, sandbox) -> None:
    # The same inputs are the same run: attached to it, fetched into ./cesres-runs/<run id>/.
    assert set(re.findall(r"\bfirst-[0-9a-f]{10}\b", out)) == {laptop.run_id}, out[-2000:]
    assert (laptop.cwd / "cesres-runs" / laptop.run_id / "results" / "best.th").is_file()
    jobs = sandbox.ssh(f"cat {ROOT}/runs/{laptop.run_id}/jobs")
    assert jobs.returncode == 0 and len(jobs.stdout.split()) == 1, jobs.stdout + jobs.stderr  # no second job


def check_fetch(laptop: Laptop, out: str, sandbox) -> None:
    fetched = laptop.cwd / "results" / "first"
    results = fetched / "results"
    # The table of section 6.5, and the short run's 2 epochs (-- -l 2: metrics_epoch_0 and _1).
    for name in ("best.th", "metrics_epoch_0.json", "metrics_epoch_1.json", "test_results.txt", "predictions.txt"):
        assert (results / name).is_file(), sorted(path.name for path in results.iterdir())
    assert not (results / "metrics_epoch_2.json").exists()
    for name in ("exit_code", "config.yaml", "config.submitted.yaml", "job.sbatch"):
        assert (fetched / name).is_file(), name
    assert list(fetched.glob("slurm-*.out"))
    # The memory peaks the guide tells the reader to look at.
    assert '"peak_worker_0_memory_MB"' in (results / "metrics_epoch_1.json").read_text()


def check_ls(laptop: Laptop, out: str, sandbox) -> None:
    assert {"best.th", "metrics_epoch_1.json", "test_results.txt"} <= set(out.split()), out


def check_plot(laptop: Laptop, out: str, sandbox) -> None:
    png = laptop.cwd / "results" / "first" / "training_curves.png"
    assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def check_predict(laptop: Laptop, out: str, sandbox) -> None:
    # A row per snippet of snippets.txt, in order (its first line), with labels of the run's config and their
    # probabilities (the template is multi-label: every label over 0.5).
    labels = "|".join(map(re.escape, _template_labels(laptop)))
    for number, first_line in ((1, "def function(arg):"), (2, "def function(a, b):")):
        row = re.search(rf"^{number}\s+{re.escape(first_line)}\s+(.*)$", out, re.MULTILINE)
        assert row, out[-3000:]
        assert re.search(rf"\b({labels}) \(0\.\d+\)", row.group(1)), row.group(0)


CHECKS: tuple[tuple[str, Callable[..., None], float], ...] = (
    (r"^git clone ", check_clone, 300),
    (r"^mkdir -p dataset$", check_dataset_dir, 30),
    (r"^cp demo/", check_dataset_files, 30),
    (r"^cesres-ctl setup -e @my-components\.yml$", check_components, 2400),
    (r"^sed ", check_cluster_config, 30),
    (r"^cesres-ctl train cluster_config\.yaml .*--dry-run", check_dry_run, 120),
    (r"^cesres-ctl train template_config\.yaml (?!.*--wait)", check_submitted, 600),
    (r"^cesres-ctl status first$", check_status, 120),
    (r"^cesres-ctl logs first -f$", check_logs_follow, 1800),
    (r"^cesres-ctl runs$", check_runs, 120),
    (r"^cesres-ctl train template_config\.yaml .*--wait", check_wait, 1200),
    (r"^cesres-ctl fetch first --dest results/first$", check_fetch, 300),
    (r"^ls results/first/results$", check_ls, 30),
    (r"^cesres-ctl plot first$", check_plot, 300),
    (r"^cesres-ctl predict first snippets\.txt ", check_predict, 1800),
)


def check_for(command: str) -> tuple[Callable[..., None], float]:
    matches = [(check, timeout) for pattern, check, timeout in CHECKS if re.search(pattern, command)]
    assert len(matches) == 1, f"guide command {command!r} matches {len(matches)} checks of test_guide.py: give it one"
    return matches[0]


# --- Tests -------------------------------------------------------------------------------------------------
def test_the_sections_commands_and_files_are_found_and_each_has_its_check():
    found = steps(section_text())
    commands = [step.text for step in found if step.kind == "command"]
    assert len(commands) >= 12, commands
    for command in commands:
        if not command.startswith("cd "):
            check_for(command)
    assert {step.name for step in found if step.kind == "file"} == {"my-components.yml", "snippets.txt"}
    # Every substitution is needed by some command.
    used: set[int] = set()
    laptop = Laptop(home=Path("/nonexistent"), repository=BUNDLE, env={}, cwd=Path("/"))
    for command in commands:
        substituted(command, laptop, used)
    assert used == set(range(len(SUBSTITUTIONS))), [
        SUBSTITUTIONS[n].why for n in range(len(SUBSTITUTIONS)) if n not in used
    ]


def test_the_resources_the_guide_states_are_dragon2s_defaults():
    facts = yaml.safe_load((PROJECT / "group_vars" / "cluster_dragon2.yml").read_text())
    text = section_text()
    assert facts["cesres_job_mem"] == "16G" and "| memory | `16G` (`--mem`) |" in text
    assert facts["cesres_job_cpus_per_task"] == 4 and "| CPUs | 4 |" in text
    assert facts["cesres_job_time"] == "1-00:00:00" and "| time | 1 day" in text
    assert (facts["cesres_job_partition"], facts["cesres_job_gpus"]) == ("gpu", 1)


@pytest.mark.sandbox
def test_every_command_of_the_first_training_run_runs_as_written(sandbox, tmp_path):
    done = sandbox.ssh(f"rm -rf {ROOT}/runs/first-* {ROOT}/runs/predict-first-*")
    assert done.returncode == 0, done.stderr
    laptop = make_laptop(tmp_path)
    used: set[int] = set()
    timings = []
    for step in steps(section_text()):
        if step.kind == "file":
            (laptop.cwd / step.name).write_text(step.text)
            continue
        command = substituted(step.text, laptop, used)
        if step.text.startswith("cd "):
            target = (laptop.cwd / step.text[3:].strip()).resolve()
            assert target.is_dir(), f"{step.text}: no such directory"
            laptop.cwd = target
            continue
        check, timeout = check_for(step.text)
        started = time.monotonic()
        done = laptop.run(command, timeout)
        timings.append(f"{time.monotonic() - started:6.1f} s  {command}")
        print(timings[-1], flush=True)
        out = done.stdout + done.stderr
        where = f"guide command: {step.text}\nrun as: {command}\nexit {done.returncode}\n"
        assert done.returncode == 0, where + out[-4000:]
        error = ERROR_LINE.search(out)
        assert error is None, where + f"error line: {error.group(0)!r}\n" + out[-4000:]
        check(laptop, out, sandbox)
    assert used == set(range(len(SUBSTITUTIONS)))
