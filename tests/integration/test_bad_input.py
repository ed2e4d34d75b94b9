"""Bad input to every command (issue 11): one line on stderr and a non-zero exit, never a traceback;
nothing recorded, nothing sent to the cluster, no injected command run.

Each case runs the CLI in a directory of its own, with a registry of its own (XDG_STATE_HOME) that
holds one run, SEEDED, whose job does not exist. ssh, scp and rsync are stubs that log their call and
fail: a case also shows that it failed before contacting the cluster, and none can submit anything to
the shared sandbox. Every run name or config file of a case starts with `badinput-`, and an injected
command would create /tmp/cesres-badinput-<tag>; the last test asks the sandbox, in one ssh call, that
no such run directory, job or file exists there.

The cases run in parallel in a module fixture (each is a CLI start-up, ~0.5-1 s); the tests check
their outcomes. tests/integration/test_bad_files.py holds more cases, run by the same machinery.
"""

import os
import sqlite3
import subprocess
import uuid
from collections.abc import Callable, Iterator, Mapping
from concurrent.futures import ThreadPoolExecutor
from contextlib import closing
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
import yaml

from cesres_ctl.runs.registry import Registry, Run, now
from tests.conftest import PROJECT, run_cli

TEMPLATE = PROJECT / "tests" / "data" / "template_config.yaml"
DATASET = PROJECT / "tests" / "data" / "dataset"
SEEDED = "badinput-0123456789"
MARKERS = "/tmp/cesres-badinput-"
WRAPPED = ("ssh", "scp", "rsync")
CASE_TIMEOUT = 60

Edit = Callable[[dict[str, Any]], None]


@dataclass(frozen=True)
class Case:
    """One bad command line. In args, config and env values: {cfg} the case's config file, {name} a run
    name, {marker} a file that an injected command would create, {tmp} the case's directory, {file} a
    regular file in it, {dataset} the test data directory."""

    id: str
    args: tuple[str, ...]
    config: str | bytes | Edit | None = None  # {cfg}: raw text or bytes, or an edit of a valid config
    env: Mapping[str, str] = field(default_factory=dict)
    fifo: bool = False  # {cfg} is a named pipe (reading it would block)
    # More files, by their path in the case's directory ("state/cesres-ctl/..." replaces the seeded state).
    files: Mapping[str, "str | bytes | Special"] = field(default_factory=dict)
    error: str = ""  # a text the error line holds: the case fails for its own reason, not an earlier one
    # The runs the registry holds afterwards; None: the case replaced it, and it is still no database.
    recorded: tuple[str, ...] | None = (SEEDED,)


@dataclass(frozen=True)
class Special:
    """A file of a case that is not plain content: a named pipe, or a symbolic link to `target`."""

    target: str = ""  # "": a named pipe


FIFO = Special()


def valid_config() -> dict[str, Any]:
    """tests/data/template_config.yaml with absolute data paths: `train` accepts it (see the first test)."""
    data = yaml.safe_load(TEMPLATE.read_text())
    for key, file in (("training", "train.txt"), ("validation", "validation.txt"), ("evaluation", "test.txt")):
        data["CONFIG"][key] = str(DATASET / file)
    return data


def put(section: str, key: str, value: object) -> Edit:
    def edit(data: dict[str, Any]) -> None:
        data[section][key] = value

    return edit


def drop(section: str, key: str | None = None) -> Edit:
    def edit(data: dict[str, Any]) -> None:
        if key is None:
            del data[section]
        else:
            del data[section][key]

    return edit


def rename_section(section: str, new_name: str) -> Edit:
    def edit(data: dict[str, Any]) -> None:
        data[new_name] = data.pop(section)

    return edit


def set_section(section: str, value: object) -> Edit:
    def edit(data: dict[str, Any]) -> None:
        data[section] = value

    return edit


TRAIN = ("train", "{cfg}", "-C", "sandbox", "--name", "{name}")


def train(case_id: str, *args: str, config: str | bytes | Edit | None = None, **kwargs: Any) -> Case:
    return Case(f"train-{case_id}", (*TRAIN, *args), config=config, **kwargs)


def config_cases() -> Iterator[Case]:
    yield Case("config-missing", ("train", "{tmp}/badinput-missing.yaml", "-C", "sandbox"))
    yield Case("config-directory", ("train", "{tmp}", "-C", "sandbox"))
    yield train("config-fifo", fifo=True)
    yield Case("config-dev-null", ("train", "/dev/null", "-C", "sandbox", "--name", "{name}"))
    raw = {
        "empty": "",
        "comments-only": "# nothing here\n",
        "not-yaml": "VOCABULARY: {}\nREADER: [unclosed\n",
        "tab-indented": "VOCABULARY:\n\thuggingface_model: x\n",
        "undefined-alias": "VOCABULARY: *nowhere\n",
        "list": "- VOCABULARY\n- READER\n",
        "scalar": "just some text\n",
        "number": "42\n",
        "nested-20000": "CONFIG: " + "[" * 20000 + "]" * 20000 + "\n",
        "nested-mappings-5000": "CONFIG: " + "{a: " * 5000 + "1" + "}" * 5000 + "\n",
    }
    for case_id, text in raw.items():
        yield train(f"config-{case_id}", config=text)
    yield train("config-not-utf8", config=b"VOCABULARY:\n  huggingface_model: \xff\xfe\n")
    yield train("config-binary", config=bytes(range(256)))
    deep = yaml.safe_dump(valid_config(), sort_keys=False).replace(
        "CONFIG:\n", "CONFIG:\n  deep: " + "[" * 3000 + "]" * 3000 + "\n", 1
    )
    yield train("config-nested-inside-config", config=deep)
    for section in ("VOCABULARY", "READER", "MODEL", "TRAINER", "INTERPRETER", "CONFIG"):
        yield train(f"config-without-{section}", config=drop(section))
    yield train("config-unknown-section-for-TRAINER", config=rename_section("TRAINER", "TRAINERS"))
    yield train("config-lowercase-model-section", config=rename_section("MODEL", "model"))
    yield train("config-section-as-list", config=set_section("READER", [1, 2]))
    yield train("config-section-as-text", config=set_section("MODEL", "graphcodebert"))
    wrong = {
        "labels-text": put("MODEL", "labels", "correct"),
        "labels-empty": put("MODEL", "labels", []),
        "labels-missing": drop("MODEL", "labels"),
        "head-as-text": put("MODEL", "classification_head", "mult_dense"),
        "head-wrong-size": put("MODEL", "classification_head", {"name": "mult_dense", "arg": [1, 768, 17]}),
        "model-id-number": put("MODEL", "huggingface_model", 42),
        "model-id-spaces": put("MODEL", "huggingface_model", "Enoch graphcodebert"),
        "model-id-injection": put("VOCABULARY", "huggingface_model", "$(touch {marker})"),
        "model-id-template": put("READER", "huggingface_model", "{{ lookup('pipe', 'touch {marker}') }}"),
        "model-id-three-parts": put("CONFIG", "model", "a/b/c"),
        "encoder-arg-injection": put("MODEL", "encoder", {"name": "bert_pooler", "arg": ["x; touch {marker}"]}),
        # What the real program's constructors and allennlp refuse once the job runs.
        "model-key-misspelt": put("MODEL", "embeding_size", 768),
        "reader-key-unknown": put("READER", "hash_size", 4096),
        "trainer-key-given-twice": put("TRAINER", "num_epochs", 3),
        "optimizer-lr": put("TRAINER", "kwargs_optimizer", {"lr": 1e-3}),
        "encoder-without-arg": put("MODEL", "encoder", {"name": "bert_pooler"}),
        "head-hidden-sizes-list": put(
            "MODEL", "classification_head", {"name": "mult_dense", "arg": [2, [768, 64], 18]}
        ),
        "metric-unknown": put("TRAINER", "validation_metric", "+f1"),
        "patience-zero": put("TRAINER", "patience", 0),
        "no-loop": put("CONFIG", "no_loop", True),
        "device-gpu": put("CONFIG", "device", "gpu"),
        "device-cuda-1": put("CONFIG", "device", "cuda:1"),
        "device-injection": put("CONFIG", "device", "cuda; touch {marker}"),
        "device-cpu-with-a-gpu": put("CONFIG", "device", "cpu"),
        "loops-text": put("CONFIG", "loops", "ten"),
        "loops-zero": put("CONFIG", "loops", 0),
        "batch-size-float": put("CONFIG", "batch_size", 8.5),
        "batch-size-bool": put("CONFIG", "batch_size", True),
        "random-seed-negative": put("CONFIG", "random_seed", -1),
        "training-missing": drop("CONFIG", "training"),
        "evaluation-missing": drop("CONFIG", "evaluation"),
        "training-empty": put("CONFIG", "training", ""),
        "training-null": put("CONFIG", "training", None),
        "training-list": put("CONFIG", "training", ["{dataset}/train.txt"]),
    }
    for case_id, edit in wrong.items():
        yield train(f"config-{case_id}", config=edit)


# Data paths that must fail locally: missing, not a regular file, unreadable, or an injection attempt
# that names no existing file (a file whose name holds `$VAR` is staged literally: not bad input).
DATA_PATHS = {
    "missing": "{tmp}/badinput-absent.txt",
    "directory": "{dataset}",
    "dev-null": "/dev/null",
    "unreadable": "/proc/self/mem",
    "newline": "{dataset}/train.txt\nx",
    "nul": "{dataset}/train.txt\0x",
    "unknown-user": "~cesres-no-such-user/train.txt",
    "dollar-var": "$HOME/badinput-absent.txt",
    "braced-var": "${HOME}/badinput-absent.txt",
    "command-substitution": "$(touch {marker})",
    "backticks": "`touch {marker}`",
    "semicolon": "x; touch {marker}",
    "template": "{{ lookup('pipe', 'touch {marker}') }}",
    "cluster-empty": "cluster:",
    "cluster-blank": "cluster:   ",
    "cluster-template": "cluster:{{ lookup('pipe', 'touch {marker}') }}",
    "cluster-newline": "cluster:data/train.txt\ntouch {marker}",
}
DATA_KEYS_SAMPLE = ("missing", "directory", "newline", "command-substitution", "template", "cluster-template")


def data_cases() -> Iterator[Case]:
    for key in ("training", "validation", "evaluation"):
        for case_id, value in DATA_PATHS.items():
            if key == "training" or case_id in DATA_KEYS_SAMPLE:
                yield train(f"data-{key}-{case_id}", config=put("CONFIG", key, value))


def model_option_cases() -> Iterator[Case]:
    options = {
        "no-loop": ("-n",),
        "config": ("-c", "x.yaml"),
        "training-file": ("-t", "x"),
        "serialization": ("-s", "/tmp"),
        "predict": ("-p",),
        "gui": ("-g",),
        "model": ("-m", "x/y"),
        "load-model": ("-lm", "best.th"),
        "abbreviation": ("--no_l",),
        "batch-zero": ("-b", "0"),
        "batch-text": ("-b", "abc"),
        "batch-equals-text": ("--batch_size=abc",),
        "batch-missing-value": ("-b",),
        "loops-negative": ("-l", "-1"),
        "seed-text": ("-r", "abc"),
        "eval-batch-float": ("-eb", "1.5"),
        "device-gpu": ("-d", "gpu"),
        "device-injection": ("-d", "cpu; touch {marker}"),
        "device-template": ("-d", "{{ lookup('pipe', 'touch {marker}') }}"),
        "device-newline": ("-d", "cuda\ntouch {marker}"),
        "flag-with-value": ("-ne=1",),
        "unknown": ("-x",),
        "positional": ("extra",),
        "command-substitution": ("$(touch {marker})",),
        "number-alone": ("3",),
    }
    for case_id, args in options.items():
        yield train(f"model-option-{case_id}", "--", *args)
    yield train("unknown-option-before-dashes", "--bogus")


def resource_cases() -> Iterator[Case]:
    options = {
        "gpus-text": ("--gpus", "abc"),
        "gpus-negative": ("--gpus=-1",),
        "gpus-huge": ("--gpus", "99999999999999999999"),
        "gpus-over-partition": ("--gpus", "3"),
        "gpus-float": ("--gpus", "1.5"),
        "gpus-empty": ("--gpus", ""),
        "gpus-on-cpu-partition": ("--partition", "batch", "--gpus", "1"),
        "time-garbage": ("--time", "soon"),
        "time-zero": ("--time", "0"),
        "time-zero-clock": ("--time", "00:00:00"),
        "time-negative": ("--time=-1",),
        "time-four-fields": ("--time", "1:2:3:4"),
        "time-over-partition": ("--time", "6-00:00:00"),
        "time-over-debug": ("--partition", "debug", "--time", "01:00:00"),
        "time-unlimited": ("--time", "UNLIMITED"),
        "time-injection": ("--time", "01:00:00; touch {marker}"),
        "partition-unknown": ("--partition", "nope"),
        "partition-case": ("--partition", "GPU"),
        "partition-injection": ("--partition", "gpu;touch {marker}"),
        "partition-command": ("--partition", "$(touch {marker})"),
        "mem-garbage": ("--mem", "lots"),
        "mem-two-letters": ("--mem", "16GB"),
        "mem-negative": ("--mem=-1",),
        "mem-float": ("--mem", "1.5G"),
        "mem-injection": ("--mem", "16G; touch {marker}"),
        "cpus-zero": ("--cpus", "0"),
        "cpus-negative": ("--cpus=-1",),
        "cpus-text": ("--cpus", "abc"),
        "account-space": ("--account", "my account"),
        "qos-command": ("--qos", "$(touch {marker})"),
        "mail-semicolon": ("--mail", "a@b.c;touch {marker}"),
        "mail-newline": ("--mail", "a@b.c\n#SBATCH --wrap=touch"),
    }
    for case_id, args in options.items():
        yield train(case_id, *args)


def sbatch_cases() -> Iterator[Case]:
    lines = {
        "job-name": "--job-name=x",
        "gres": "--gres=gpu:4",
        "output": "--output=/tmp/x",
        "chdir": "--chdir=/",
        "not-an-option": "foo",
        "space": "--comment=a b",
        "single-dash": "-p gpu",
        "wrap-command": "--wrap=$(touch {marker})",
        "semicolon": "--comment=a;touch",
        "newline": "--begin=now\n#SBATCH --wrap=touch",
        "directive-with-space": "#SBATCH --comment x",
        "empty": "",
        "quote": "--comment='x'",
    }
    for case_id, line in lines.items():
        yield train(f"sbatch-{case_id}", f"--sbatch={line}")


def setting_cases() -> Iterator[Case]:
    settings = {
        "unknown-key": "bad=1",
        "no-value": "root",
        "empty-value": "root=",
        "no-key": "=x",
        "newline": "venv=~/env\ntouch",
        "template": "root={{ lookup('pipe', 'touch {marker}') }}",
        "resource-key": "partition=gpu",
        "upper-case": "ROOT=~/x",
        "prefixed-resource": "cesres_job_gpus=2",
    }
    for case_id, setting in settings.items():
        yield train(f"set-{case_id}", "--set", setting)


def name_cases() -> Iterator[Case]:
    names = {
        "space": "badinput x",
        "semicolon": "badinput;touch",
        "41-characters": "badinput-" + "x" * 32,
        "leading-dash": "-badinput",
        "parent-dir": "../badinput",
        "slash": "badinput/x",
        "empty": "",
        "leading-dot": ".badinput",
        "command-substitution": "badinput$(touch {marker})",
        "backticks": "badinput`touch {marker}`",
        "non-ascii": "bädinput",
        "newline": "badinput\n",
        "template": "{{ badinput }}",
    }
    for case_id, name in names.items():
        yield Case(f"train-name-{case_id}", ("train", "{cfg}", "-C", "sandbox", f"--name={name}"))


def cluster_cases() -> Iterator[Case]:
    base = ("train", "{cfg}", "--name", "{name}")
    for case_id, cluster in {
        "unknown": "nope",
        "injection": "sandbox;touch {marker}",
        "path": "../sandbox",
        "upper-case": "SANDBOX",
        "near-miss": "dragon",
    }.items():
        yield Case(f"train-cluster-{case_id}", (*base, "--cluster", cluster))
    yield Case("train-env-cluster-unknown", base, env={"CESRES_CLUSTER": "nope"})
    yield Case("train-env-cluster-injection", base, env={"CESRES_CLUSTER": "$(touch {marker})"})
    for case_id, dest in {
        "file": "{file}",
        "under-a-file": "{file}/sub",
        "proc": "/proc/badinput-x",
        "sys": "/sys/badinput-x",
    }.items():
        yield train(f"wait-dest-{case_id}", "--wait", "--dest", dest)


# Run references that name no run: `find` refuses them before any ssh.
BAD_REFS = {
    "empty": "",
    "blank": "  ",
    "tab": "\t",
    "one-char": "b",
    "short-prefix": "bad",
    "unknown": "badinput-nope",
    "command-substitution": "$(touch {marker})",
    "semicolon": "x; touch {marker}",
    "backticks": "`touch {marker}`",
    "glob": "*",
    "sql-wildcard": "%",
    "parent-dirs": "../../etc/passwd",
    "newline": "badinput\nx",
}


def run_ref_cases() -> Iterator[Case]:
    for command in ("status", "logs", "fetch", "cancel", "plot"):
        for case_id, ref in BAD_REFS.items():
            yield Case(f"{command}-ref-{case_id}", (command, ref))
        yield Case(f"{command}-other-cluster", (command, SEEDED, "--cluster", "nope"))
        yield Case(f"{command}-unknown-option", (command, SEEDED, "--bogus"))
        yield Case(f"{command}-missing-ref", (command,))
    for case_id, dest in {
        "file": "{file}",
        "under-a-file": "{file}/sub",
        "proc": "/proc/badinput-x",
        "sys": "/sys/badinput-x",
    }.items():
        yield Case(f"fetch-dest-{case_id}", ("fetch", SEEDED, "--dest", dest))
    for case_id, output in {
        "proc": "/proc/badinput-x.png",
        "sys": "/sys/badinput-x.png",
        "under-a-file": "{file}/x.png",
        "directory": "{tmp}",
    }.items():
        yield Case(f"plot-output-{case_id}", ("plot", SEEDED, "--output", output))
    yield Case("logs-lines-text", ("logs", SEEDED, "--lines", "many"))


def predict_cases() -> Iterator[Case]:
    # Everything refused before the run's state is asked (SEEDED's job is not final: that would need ssh).
    for case_id, ref in BAD_REFS.items():
        yield Case(f"predict-ref-{case_id}", ("predict", ref, "{cfg}"), config="def f():\n    pass\n")
        yield Case(f"predictions-ref-{case_id}", ("predictions", ref))
    snippets = {
        "missing": ("{tmp}/badinput-missing.txt", None),
        "directory": ("{tmp}", None),
        "empty": ("{file}", None),
        "blank": ("{cfg}", "  \n\n"),
        "not-utf8": ("{cfg}", b"\xff\xfe\x00def f(): pass\n"),
        "newline-in-path": ("{tmp}/bad\nname.txt", None),
        "proc": ("/proc/badinput-x", None),
    }
    for case_id, (path, content) in snippets.items():
        yield Case(f"predict-snippets-{case_id}", ("predict", SEEDED, path), config=content)
    snippet = "def f():\n    pass\n"
    yield Case("predict-other-cluster", ("predict", SEEDED, "{cfg}", "--cluster", "nope"), config=snippet)
    yield Case(
        "predict-cluster-injection", ("predict", SEEDED, "{cfg}", "-C", "sandbox;touch {marker}"), config=snippet
    )
    yield Case("predict-dest-a-file", ("predict", SEEDED, "{cfg}", "--wait", "--dest", "{file}"), config=snippet)
    yield Case("predict-gpus-text", ("predict", SEEDED, "{cfg}", "--gpus", "many"), config=snippet)
    yield Case("predict-unknown-option", ("predict", SEEDED, "{cfg}", "--bogus"), config=snippet)
    yield Case("predict-missing-snippets", ("predict", SEEDED))
    yield Case("predict-missing-ref", ("predict",))
    yield Case("predictions-other-cluster", ("predictions", SEEDED, "--cluster", "nope"))
    yield Case("predictions-unknown-option", ("predictions", SEEDED, "--bogus"))
    yield Case("predictions-missing-ref", ("predictions",))


def sweep_compare_prune_cases() -> Iterator[Case]:
    # A sweep of the valid config: refused before any ssh (the grid, the values, the limits).
    sweep = ("sweep", "{cfg}", "-C", "sandbox", "--name", "{name}", "--partition", "batch")
    grids = {
        "none": (),
        "unknown-key": ("--vary", "TRAINER.lerning_rate=1,2"),
        "unknown-section": ("--vary", "TRAIN.learning_rate=1,2"),
        "no-values": ("--vary", "CONFIG.batch_size="),
        "no-equals": ("--vary", "CONFIG.batch_size"),
        "wrong-kind": ("--vary", "CONFIG.batch_size=8.5,16"),
        "text-for-a-number": ("--vary", "CONFIG.batch_size=$(touch {marker})"),
        "data-key": ("--vary", "CONFIG.training=a.txt,b.txt"),
        "twice": ("--vary", "CONFIG.batch_size=8", "--vary", "CONFIG.batch_size=16"),
        "too-large": ("--vary", "CONFIG.batch_size=" + ",".join(str(n) for n in range(1, 66))),
        "max-points-zero": ("--vary", "CONFIG.batch_size=8", "--max-points", "0"),
        "max-parallel-zero": ("--vary", "CONFIG.batch_size=8,16", "--max-parallel", "0"),
        "max-parallel-text": ("--vary", "CONFIG.batch_size=8,16", "--max-parallel", "many"),
        "vary-file-missing": ("--vary-file", "{tmp}/badinput-missing.yaml"),
        "vary-file-directory": ("--vary-file", "{tmp}"),
        "vary-file-empty": ("--vary-file", "{file}"),
        "batch-size-zero": ("--vary", "CONFIG.batch_size=0,8"),
    }
    for case_id, args in grids.items():
        yield Case(f"sweep-{case_id}", (*sweep, *args), config=lambda data: None)
    yield Case(
        "sweep-cluster-injection",
        ("sweep", "{cfg}", "-C", "sandbox;touch {marker}", "--vary", "CONFIG.batch_size=8"),
        config=lambda data: None,
    )
    for case_id, ref in BAD_REFS.items():
        yield Case(f"compare-ref-{case_id}", ("compare", ref))
    yield Case("compare-sort-unknown", ("compare", SEEDED, "--sort", "speed", "--no-fetch"))
    yield Case("compare-nothing", ("compare",))
    yield Case("runs-sweep-unknown", ("runs", "--sweep", "sweep-badinput-nope", "--no-refresh"))
    for case_id, args in {
        "older-than-negative": ("--older-than", "-1"),
        "older-than-text": ("--older-than", "soon"),
        "cluster-unknown": ("--cluster", "nope"),
        "cluster-injection": ("--cluster", "sandbox;touch {marker}"),
        "ref-unknown": ("badinput-nope",),
        "ref-injection": ("$(touch {marker})",),
        "unknown-option": ("--bogus",),
    }.items():
        yield Case(
            f"prune-{case_id}", ("prune", "-C", "sandbox", *args) if "cluster" not in case_id else ("prune", *args)
        )


def provision_cases() -> Iterator[Case]:
    deep = "{a: " + "[" * 5000 + "]" * 5000 + "}"
    extra_vars = {
        "garbage": "garbage",
        "unclosed": "{unclosed",
        "list": "[1, 2]",
        "missing-file": "@{tmp}/badinput-missing.yml",
        "directory-file": "@{tmp}",
        "unknown-user-file": "@~cesres-no-such-user/vars.yml",
        "bad-name": "1x=2",
        "unknown-variable": "cesres_repo_bogus=1",
        "wrong-type": '{"cesres_hf_cache_models": "x"}',
        "nested-20000": deep,
    }
    for case_id, value in extra_vars.items():
        yield Case(f"setup-extra-vars-{case_id}", ("setup", "--cluster", "sandbox", "-e", value))
    for command in ("setup", "doctor"):
        yield Case(f"{command}-cluster-unknown", (command, "--cluster", "nope"))
        yield Case(f"{command}-cluster-empty", (command, "--cluster", ""))
        yield Case(f"{command}-cluster-injection", (command, "--cluster", "sandbox;touch {marker}"))
        yield Case(f"{command}-unknown-option", (command, "--bogus"))
        yield Case(f"{command}-extra-argument", (command, "sandbox"))
        yield Case(f"{command}-no-project", (command, "--cluster", "sandbox"), env={"CESRES_CTL_PROJECT": "{tmp}"})


def sandbox_cases() -> Iterator[Case]:
    # Only what the command line parser refuses: `sandbox up` / `down` must never run here.
    for command in ("up", "down", "status"):
        yield Case(f"sandbox-{command}-unknown-option", ("sandbox", command, "--bogus"))
        yield Case(f"sandbox-{command}-extra-argument", ("sandbox", command, "extra"))
        yield Case(f"sandbox-{command}-root-without-value", ("sandbox", command, "--root"))
    yield Case("sandbox-unknown-command", ("sandbox", "explode"))
    yield Case("sandbox-down-purge-value", ("sandbox", "down", "--purge=yes"))


def runs_and_environment_cases() -> Iterator[Case]:
    yield Case("runs-unknown-option", ("runs", "--bogus"))
    yield Case("runs-extra-argument", ("runs", "extra"))
    yield Case("unknown-command", ("explode",))
    yield Case("unknown-global-option", ("--bogus", "runs"))
    for case_id, state in {"proc": "/proc/badinput-x", "sys": "/sys/badinput-x", "file": "{file}"}.items():
        yield Case(f"runs-state-dir-{case_id}", ("runs",), env={"XDG_STATE_HOME": state})
    for command in (("status", SEEDED), ("cancel", SEEDED), ("fetch", SEEDED), ("runs", "--json")):
        yield Case(f"{command[0]}-state-dir-unwritable", command, env={"XDG_STATE_HOME": "/proc/badinput-x"})
    yield train("state-dir-unwritable", env={"XDG_STATE_HOME": "/proc/badinput-x"})
    yield train("state-dir-a-file", env={"XDG_STATE_HOME": "{file}"})
    yield train("no-project", env={"CESRES_CTL_PROJECT": "{tmp}"})


CASES = [
    *predict_cases(),
    *sweep_compare_prune_cases(),
    *config_cases(),
    *data_cases(),
    *model_option_cases(),
    *resource_cases(),
    *sbatch_cases(),
    *setting_cases(),
    *name_cases(),
    *cluster_cases(),
    *run_ref_cases(),
    *provision_cases(),
    *sandbox_cases(),
    *runs_and_environment_cases(),
]


def fill(text: str, values: Mapping[str, str]) -> str:
    for key, value in values.items():
        text = text.replace("{" + key + "}", value)
    return text


@dataclass
class Outcome:
    done: Any  # subprocess.CompletedProcess[str]
    marker: Path
    ssh_log: Path
    recorded: tuple[str, ...] | None


def recorded_runs(state: Path) -> tuple[str, ...] | None:
    """The runs of the case's registry; None when it is not a database with runs (a case replaced it)."""
    database = state / "cesres-ctl" / "runs.sqlite"
    if not database.is_file() or database.stat().st_size == 0:  # an empty file stays empty: not opened
        return None
    try:
        with closing(sqlite3.connect(database)) as conn:
            return tuple(sorted(row[0] for row in conn.execute("SELECT run_id FROM runs")))
    except sqlite3.DatabaseError:
        return None


def seed(state: Path) -> None:
    run = Run("sandbox", SEEDED, "badinput", "999999999", f"/nonexistent/{SEEDED}", now(), "PENDING")
    Registry(state / "cesres-ctl" / "runs.sqlite").record_submission(run)


def write_config(case: Case, path: Path, values: Mapping[str, str]) -> None:
    if case.fifo:
        os.mkfifo(path)
    elif isinstance(case.config, bytes):
        path.write_bytes(case.config)
    elif isinstance(case.config, str):
        path.write_text(fill(case.config, values))
    else:
        data = valid_config()
        if case.config is not None:
            case.config(data)
        path.write_text(fill(yaml.safe_dump(data, sort_keys=False, allow_unicode=True, width=1000), values))


def write_files(case: Case, directory: Path, values: Mapping[str, str]) -> None:
    for name, content in case.files.items():
        path = directory / fill(name, values)
        path.parent.mkdir(parents=True, exist_ok=True)
        path.unlink(missing_ok=True)
        if isinstance(content, Special):
            if content.target:
                path.symlink_to(fill(content.target, values))
            else:
                os.mkfifo(path)
        else:
            path.write_bytes(content if isinstance(content, bytes) else fill(content, values).encode())


def run_case(case: Case, directory: Path, wrappers: Path) -> Outcome:
    directory.mkdir(parents=True)
    tag = uuid.uuid4().hex[:10]
    values = {
        "cfg": str(directory / f"badinput-{tag}.yaml"),
        "name": f"badinput-{tag}",
        "marker": f"{MARKERS}{tag}",
        "tmp": str(directory),
        "file": str(directory / "a-file"),
        "dataset": str(DATASET),
    }
    (directory / "a-file").write_text("")
    write_config(case, Path(values["cfg"]), values)
    state = directory / "state"
    seed(state)
    write_files(case, directory, values)
    ssh_log = directory / "ssh.log"
    env = {
        **os.environ,
        # The subprocess imports the code under test, wherever the CLI is installed from.
        "PYTHONPATH": str(PROJECT),
        "PATH": f"{wrappers}{os.pathsep}{os.environ['PATH']}",
        "BADINPUT_SSH_LOG": str(ssh_log),
        "XDG_STATE_HOME": str(state),
        "CESRES_CLUSTER": "sandbox",
        **{key: fill(value, values) for key, value in case.env.items()},
    }
    args = [fill(arg, values) for arg in case.args]
    try:
        done = run_cli(*args, cwd=directory, env=env, timeout=CASE_TIMEOUT)
    except subprocess.TimeoutExpired:  # a hang fails its case, not the whole module
        done = subprocess.CompletedProcess(args, -9, "", f"(killed: still running after {CASE_TIMEOUT} s)")
    return Outcome(done, Path(values["marker"]), ssh_log, recorded_runs(state))


@pytest.fixture(scope="module")
def wrappers(tmp_path_factory) -> Path:
    """ssh, scp and rsync that only log their call and fail as an unreachable host does: a case that
    would reach the cluster shows in its log, and cannot submit anything to the shared sandbox."""
    directory = tmp_path_factory.mktemp("wrappers")
    for tool in WRAPPED:
        script = directory / tool
        script.write_text('#!/bin/sh\necho "$0 $*" >> "$BADINPUT_SSH_LOG"\nexit 255\n')
        script.chmod(0o755)
    return directory


@pytest.fixture(scope="module")
def outcomes(request, tmp_path_factory, wrappers) -> dict[str, Outcome]:
    """The selected cases, run in parallel: {case id: outcome}."""
    selected = {
        item.callspec.params["case"].id: item.callspec.params["case"]
        for item in request.session.items
        if item.module is request.module and "case" in getattr(getattr(item, "callspec", None), "params", {})
    }
    root = tmp_path_factory.mktemp("cases")
    with ThreadPoolExecutor(max_workers=max(2, os.cpu_count() or 2)) as pool:
        futures = {key: pool.submit(run_case, case, root / key, wrappers) for key, case in selected.items()}
        return {key: future.result() for key, future in futures.items()}


def test_the_valid_config_is_accepted(tmp_path, wrappers):
    """The cases' base: with nothing wrong, the dry run succeeds (so each case fails on its own input)."""
    case = Case("valid", (*TRAIN, "--dry-run"))
    outcome = run_case(case, tmp_path / "valid", wrappers)
    assert outcome.done.returncode == 0, outcome.done.stderr
    assert not outcome.ssh_log.exists()


def check_outcome(case: Case, outcome: Outcome) -> None:
    """One line on stderr, a non-zero exit, no traceback; nothing recorded, run or sent."""
    done = outcome.done
    shown = f"{case.args}\nstdout: {done.stdout[-2000:]}\nstderr: {done.stderr[-2000:]}"
    assert "Traceback" not in done.stdout + done.stderr, shown
    assert done.returncode != 0, shown
    lines = [line for line in done.stderr.splitlines() if line.strip()]
    assert len(lines) == 1, shown
    assert lines[0].startswith("cesres-ctl: error: "), shown
    assert case.error in lines[0], shown
    assert outcome.recorded == case.recorded, f"the registry holds {outcome.recorded}, not {case.recorded}"
    assert not outcome.marker.exists(), "an injected command ran"
    assert not outcome.ssh_log.exists(), f"the cluster was contacted: {outcome.ssh_log.read_text()}"


@pytest.mark.parametrize("case", [pytest.param(case, id=case.id) for case in CASES])
def test_bad_input_is_one_line_and_changes_nothing(case, outcomes):
    check_outcome(case, outcomes[case.id])


def test_there_are_enough_cases():
    assert len({case.id for case in CASES}) == len(CASES), "case ids must be unique"
    print(f"bad-input cases: {len(CASES)}")
    assert len(CASES) >= 150


@pytest.mark.sandbox
def test_nothing_reached_the_cluster(sandbox):
    """One ssh call: no badinput run directory, job or marker file on the cluster (nor a marker here)."""
    assert not list(Path(MARKERS).parent.glob(Path(MARKERS).name + "*"))
    script = (
        f"ls -d ~/cesres*/runs/badinput-* {MARKERS}* ~/cesres-badinput-* 2>/dev/null; "
        "squeue -h -o %j | grep badinput; "
        "sacct -a -X -n -P -o JobName -S now-7days | grep badinput; echo checked"
    )
    done = sandbox.ssh(script)
    assert done.returncode == 0, done.stderr
    assert done.stdout.split() == ["checked"], done.stdout
