"""Bad files and values, through every reader (issue 18): cesres_ctl/inputs.py and what calls it.

The classes of input that cesres-ctl reads in one place: special files (a FIFO, /dev/zero, a socket, a
link to one), sizes, text that is not UTF-8 (in a file, its name, an argument, the environment), YAML and
JSON that JSON cannot hold (huge integers, NaN and infinities, dates, bytes, sets, tags, keys that are not
strings or are given twice), alias bombs and self-references, deep nesting; in each file the tool reads:
a CESReS config, `setup -e`, `sweep --vary-file`, the user configuration, the run registry, its kept
records (unrecorded/*.json) and the cluster cache (clusters.json). Also the values that broke a command
(`--time` of 5000 digits, `prune --older-than nan`, `logs -n 0`, `~nosuchuser`, ANSIBLE_CONFIG=/dev/null)
and data files that are views of the kernel (/proc, /sys, /dev), here or on the cluster.

Each case is run and checked by tests/integration/test_bad_input.py's machinery: one line on stderr, a
non-zero exit, no traceback, nothing recorded, nothing sent to the cluster.
"""

from collections.abc import Iterator

import pytest
import yaml

from tests.integration.test_bad_input import (  # noqa: F401 - outcomes and wrappers are the module's fixtures
    CASES,
    FIFO,
    SEEDED,
    TRAIN,
    Case,
    Special,
    check_outcome,
    outcomes,
    valid_config,
    wrappers,
)

VALID = yaml.safe_dump(valid_config(), sort_keys=False, allow_unicode=True, width=1000)
BIG = "1" * 5000  # Python refuses to convert more than 4300 digits
OVER_LIMIT = 10_000_001  # bytes: one more than any file may hold
NOT_UTF8 = "\udcff"  # the byte 0xff, as Python holds it in a name, an argument or the environment
BILLION_LAUGHS = "lol0: &a0 [x, x, x, x, x, x, x, x, x]\n" + "".join(
    f"lol{n}: &a{n} [" + ", ".join([f"*a{n - 1}"] * 9) + "]\n" for n in range(1, 10)
)


def edited(old: str, new: str) -> str:
    """The valid config's YAML with `old` replaced by `new`."""
    assert old in VALID, old
    return VALID.replace(old, new, 1)


def link(target: str) -> Special:
    return Special(target)


def with_top(text: str) -> str:
    """The valid config with `text` first (extra top-level keys: the run keeps them, and checks nothing)."""
    return text + VALID


# Scalars that JSON cannot hold, or that Python cannot even convert, as written in YAML.
BAD_SCALARS = {
    "int-5000-digits": BIG,
    "int-101-digits": "9" * 101,
    "int-2-pow-63": str(2**63),
    "int-minus-2-pow-64": str(-(2**64)),
    "hex-beyond-64-bits": "0x1" + "0" * 16,
    "binary-beyond-64-bits": "0b1" + "0" * 64,
    "sexagesimal-beyond-64-bits": "1" + ":59" * 12,
    "hex-without-digits": "0x_",  # YAML's pattern of a number, Python's ValueError
    "binary-without-digits": "-0b_",
    "nan": ".nan",
    "nan-capitals": ".NaN",
    "inf": ".inf",
    "minus-inf": "-.Inf",
    "float-overflow": "1.0e+400",
    "date": "2024-01-01",
    "datetime": "2024-01-01 12:00:00",
    "datetime-tz": "2001-12-14t21:59:43.10-05:00",
    "binary": "!!binary aGVsbG8=",
    "set": "!!set {a, b}",
    "omap": "!!omap [a: 1]",
    "pairs": "!!pairs [a: 1]",
    "python-name": "!!python/name:os.system ''",
    "custom-tag": "!include other.yaml",
    "surrogate-escape": '"\\udcff"',
}

# Structures that no reader may take: bombs, references to themselves, depth, keys.
BAD_STRUCTURES = {
    "billion-laughs": with_top(BILLION_LAUGHS),
    "wide-bomb": with_top(
        "w0: &w0 ["
        + ", ".join(["x"] * 30)
        + "]\n"
        + "".join(f"w{n}: &w{n} [" + ", ".join([f"*w{n - 1}"] * 30) + "]\n" for n in range(1, 5))
    ),
    "aliases-over-budget": with_top(
        "big: &big [" + ", ".join(["x"] * 200) + "]\n" + "many: [" + ", ".join(["*big"] * 60) + "]\n"
    ),
    "bomb-used-by-a-key": edited("  captum: true\n", "  captum: true\n  extra: *a9\n").replace(
        "VOCABULARY:", BILLION_LAUGHS + "VOCABULARY:", 1
    ),
    "recursive-list": with_top("loop: &loop [1, *loop]\n"),
    "recursive-mapping": with_top("loop: &loop {self: *loop}\n"),
    "recursive-merge": with_top("loop: &loop\n  <<: *loop\n"),
    "depth-65-lists": edited("  loops: 10\n", "  loops: 10\n  deep: " + "[" * 65 + "]" * 65 + "\n"),
    "depth-65-mappings": edited("  loops: 10\n", "  loops: 10\n  deep: " + "{a: " * 65 + "1" + "}" * 65 + "\n"),
    "depth-65-through-an-alias": with_top("x: &x " + "[" * 40 + "]" * 40 + "\ny: " + "[" * 30 + "*x" + "]" * 30 + "\n"),
    "duplicate-section": VALID + "CONFIG:\n  batch_size: 16\n",
    "duplicate-key": edited("  batch_size: 8\n", "  batch_size: 8\n  batch_size: 16\n"),
    "duplicate-quoted-key": edited("  batch_size: 8\n", "  batch_size: 8\n  'batch_size': 16\n"),
    "duplicate-key-in-flow": edited("  loops: 10\n", "  loops: 10\n  flow: {a: 1, a: 2}\n"),
    "duplicate-nested-key": edited("        name: leaky_relu\n", "        name: leaky_relu\n        name: relu\n"),
    "integer-key": edited("  loops: 10\n", "  loops: 10\n  1: one\n"),
    "boolean-key": edited("  loops: 10\n", "  loops: 10\n  yes: one\n"),
    "null-key": edited("  loops: 10\n", "  loops: 10\n  ~: one\n"),
    "float-key": edited("  loops: 10\n", "  loops: 10\n  1.5: one\n"),
    "list-key": edited("  loops: 10\n", "  loops: 10\n  ? [a, b]\n  : one\n"),
    "date-key": edited("  loops: 10\n", "  loops: 10\n  2024-01-01: one\n"),
    "surrogate-key": edited("  loops: 10\n", '  loops: 10\n  "\\udcff": one\n'),
}

NOT_UTF8_TEXT = {
    "latin-1": edited("  - correct\n", "  - corr\xe9ct\n").encode("latin-1"),
    "utf-16": VALID.encode("utf-16"),
    "lone-continuation-byte-in-a-comment": VALID.encode() + b"# \x80\n",
    "encoded-surrogate": VALID.encode() + b"# \xed\xa0\x80\n",
    "overlong-slash": VALID.encode() + b"# \xc0\xaf\n",
}


def config_cases() -> Iterator[Case]:
    places = {
        "learning-rate": ("  learning_rate: 1.0e-05\n", "  learning_rate: {}\n"),
        "interpreter-steps": ("      n_steps: 10\n", "      n_steps: {}\n"),
    }
    for case_id, scalar in BAD_SCALARS.items():
        for place, (old, new) in places.items():
            yield Case(f"file-config-{place}-{case_id}", TRAIN, config=edited(old, new.format(scalar)))
    yield Case("file-config-label-date", TRAIN, config=edited("  - correct\n", "  - 2024-01-01\n"))
    yield Case(
        "file-config-batch-size-5000-digits", TRAIN, config=edited("  batch_size: 8\n", f"  batch_size: {BIG}\n")
    )
    for case_id, text in BAD_STRUCTURES.items():
        yield Case(f"file-config-{case_id}", TRAIN, config=text)
    for case_id, data in NOT_UTF8_TEXT.items():
        yield Case(f"file-config-not-utf8-{case_id}", TRAIN, config=data)
    yield Case("file-config-over-10-mb", TRAIN, config=VALID + "# " + "x" * OVER_LIMIT + "\n")
    special = ("train", "{tmp}/badinput-special.yaml", "-C", "sandbox", "--name", "{name}")
    for case_id, target in {
        "link-to-dev-zero": link("/dev/zero"),
        "link-to-dev-urandom": link("/dev/urandom"),
        "link-to-a-fifo": link("{tmp}/fifo"),
        "link-loop": link("{tmp}/badinput-special.yaml"),
        "link-to-proc-self-mem": link("/proc/self/mem"),
    }.items():
        yield Case(f"file-config-{case_id}", special, files={"fifo": FIFO, "badinput-special.yaml": target})
    yield Case("file-config-dev-zero", ("train", "/dev/zero", "-C", "sandbox", "--name", "{name}"))
    yield Case("file-config-dev-urandom", ("train", "/dev/urandom", "-C", "sandbox", "--name", "{name}"))
    yield Case("file-config-proc-self-environ", ("train", "/proc/self/environ", "-C", "sandbox", "--name", "{name}"))
    named = f"badinput-{NOT_UTF8}.yaml"
    yield Case(
        "file-config-name-not-utf8",
        ("train", f"{{tmp}}/{named}", "-C", "sandbox", "--name", "{name}"),
        files={named: VALID},
    )
    yield Case(
        "file-config-link-to-a-name-not-utf8",
        ("train", "{tmp}/badinput-link.yaml", "-C", "sandbox", "--name", "{name}"),
        files={named: VALID, "badinput-link.yaml": link(named)},
    )


def data_cases() -> Iterator[Case]:
    """Data files that are the kernel's view of a process or a device: their content is not data."""
    for case_id, value in {
        "proc-self-environ": "/proc/self/environ",
        "proc-self-cmdline": "/proc/self/cmdline",
        "proc-cpuinfo": "/proc/cpuinfo",
        "sys-file": "/sys/kernel/mm/transparent_hugepage/enabled",
        "link-to-proc-self-environ": "{tmp}/badinput-environ.txt",
        "cluster-proc-self-environ": "cluster:/proc/self/environ",
        "cluster-sys": "cluster:/sys/kernel/mm/transparent_hugepage/enabled",
        "cluster-dev-zero": "cluster:/dev/zero",
        "cluster-proc-through-dots": "cluster:/tmp/../proc/self/environ",
        "local-fifo": "{tmp}/fifo",
        "link-to-a-name-not-utf8": "{tmp}/badinput-link.txt",
    }.items():
        line = next(line for line in VALID.splitlines() if line.startswith("  training: "))
        yield Case(
            f"file-data-{case_id}",
            TRAIN,
            config=VALID.replace(line, f"  training: {value}"),
            files={
                "badinput-environ.txt": link("/proc/self/environ"),
                "fifo": FIFO,
                f"badinput-{NOT_UTF8}.txt": "def f():\n    pass\n $x$ correct\n$$$\n",
                "badinput-link.txt": link(f"badinput-{NOT_UTF8}.txt"),
            },
        )


def extra_vars_cases() -> Iterator[Case]:
    setup = ("setup", "-C", "sandbox", "-e", "@{tmp}/vars.yml")
    files: dict[str, str | bytes | Special] = {
        "fifo": FIFO,
        "link-to-dev-zero": link("/dev/zero"),
        "link-to-dev-urandom": link("/dev/urandom"),
        "link-to-a-fifo": link("{tmp}/fifo-target"),
        "over-10-mb": "cesres_venv: x\n# " + "x" * OVER_LIMIT + "\n",
        "latin-1": "cesres_venv: caf\xe9\n".encode("latin-1"),
        "utf-16": "cesres_venv: x\n".encode("utf-16"),
        "int-5000-digits": f"cesres_venv: {BIG}\n",
        "int-2-pow-64": f"cesres_venv: {2**64}\n",
        "nan": "cesres_venv: .nan\n",
        "inf": "cesres_venv: .inf\n",
        "date": "cesres_repo_version: 2024-01-01\n",
        "binary": "cesres_venv: !!binary aGVsbG8=\n",
        "set": "cesres_hf_cache_models: !!set {a/b}\n",
        "tag": "cesres_venv: !vault x\n",
        "billion-laughs": BILLION_LAUGHS,
        "recursive": "cesres_data_items: &x [*x]\n",
        "duplicate-key": "cesres_venv: a\ncesres_venv: b\n",
        "integer-key": "extra: {1: x, a: y}\n",
        "boolean-key": "yes: x\n",
        "surrogate": 'cesres_venv: "\\udcff"\n',
        "depth-65": "extra: " + "[" * 65 + "]" * 65 + "\n",
    }
    for case_id, content in files.items():
        yield Case(f"file-extra-vars-{case_id}", setup, files={"fifo-target": FIFO, "vars.yml": content})
    yield Case("file-extra-vars-dev-zero", ("setup", "-C", "sandbox", "-e", "@/dev/zero"))
    yield Case("file-extra-vars-proc-self-mem", ("setup", "-C", "sandbox", "-e", "@/proc/self/mem"))
    yield Case(
        "file-extra-vars-name-not-utf8",
        ("setup", "-C", "sandbox", "-e", f"@{{tmp}}/vars-{NOT_UTF8}.yml"),
        files={f"vars-{NOT_UTF8}.yml": "cesres_venv: x\n"},
    )
    for case_id, text in {
        "nan": "{cesres_venv: .nan}",
        "huge-int": "{cesres_venv: " + BIG + "}",
        "date": "{cesres_repo_version: 2024-01-01}",
        "duplicate-key": "{cesres_venv: a, cesres_venv: b}",
        "binary": "{cesres_venv: !!binary aGVsbG8=}",
        "integer-key-inside": "{extra: {1: x, a: y}}",
        "recursive": "{cesres_data_items: &x [*x]}",
        "json-nan": '{"cesres_venv": NaN}',
        "json-infinity": '{"cesres_venv": -Infinity}',
        "json-overflow": '{"cesres_venv": 1e999}',
        "json-duplicate-key": '{"cesres_venv": "a", "cesres_venv": "b"}',
        "json-huge-int": '{"cesres_venv": ' + BIG + "}",
    }.items():
        yield Case(f"file-extra-vars-inline-{case_id}", ("setup", "-C", "sandbox", "-e", text))


def vary_file_cases() -> Iterator[Case]:
    # On the CPU partition, with a config that runs there: a point is refused for its values only.
    sweep = ("sweep", "{cfg}", "-C", "sandbox", "--name", "{name}", "--partition", "batch")
    cpu = edited("  device: cuda\n", "  device: cpu\n")
    with_file = (*sweep, "--vary-file", "{tmp}/grid.yaml")
    files: dict[str, str | bytes | Special] = {
        "fifo": FIFO,
        "link-to-dev-zero": link("/dev/zero"),
        "link-to-dev-urandom": link("/dev/urandom"),
        "over-10-mb": "CONFIG.loops: [1, 2]\n# " + "x" * OVER_LIMIT + "\n",
        "latin-1": "CONFIG.device: [caf\xe9]\n".encode("latin-1"),
        "int-5000-digits": f"CONFIG.loops: [{BIG}]\n",
        "int-2-pow-63": f"CONFIG.loops: [{2**63}, 1]\n",
        "nan": "TRAINER.learning_rate: [.nan, 0.1]\n",
        "inf": "TRAINER.learning_rate: [.inf]\n",
        "date": "MODEL.debug: [2024-01-01]\n",
        "binary": "INTERPRETER.kwargs.layer: [!!binary aGVsbG8=]\n",
        "set": "CONFIG.loops: !!set {1, 2}\n",
        "billion-laughs": BILLION_LAUGHS,
        "recursive": "CONFIG.loops: &x [1, *x]\n",
        "duplicate-key": "CONFIG.loops: [1, 2]\nCONFIG.loops: [3]\n",
        "integer-key": "1: [1, 2]\n",
        "surrogate": 'INTERPRETER.kwargs.layer: ["\\udcff"]\n',
        "depth-65": "CONFIG.loops: " + "[" * 65 + "]" * 65 + "\n",
    }
    for case_id, content in files.items():
        yield Case(f"file-vary-file-{case_id}", with_file, config=cpu, files={"grid.yaml": content})
    yield Case("file-vary-file-dev-zero", (*sweep, "--vary-file", "/dev/zero"), config=cpu)
    yield Case(
        "file-vary-file-name-not-utf8",
        (*sweep, "--vary-file", f"{{tmp}}/grid-{NOT_UTF8}.yaml"),
        config=cpu,
        files={f"grid-{NOT_UTF8}.yaml": "CONFIG.loops: [1, 2]\n"},
    )


def user_config_cases() -> Iterator[Case]:
    env = {"CESRES_CTL_CONFIG": "{tmp}/user.yml"}
    files: dict[str, str | bytes | Special] = {
        "duplicate-clusters": "clusters:\n  sandbox:\n    cesres_job_gpus: 1\nclusters:\n  dragon2: {}\n",
        "duplicate-setting": "clusters:\n  sandbox:\n    cesres_job_qos: normal\n    cesres_job_qos: high\n",
        "duplicate-default-cluster": "default_cluster: sandbox\ndefault_cluster: dragon2\n",
        "port-5000-digits": f"clusters:\n  sandbox:\n    ansible_port: {BIG}\n",
        "gpus-nan": "clusters:\n  sandbox:\n    cesres_job_gpus: .nan\n",
        "time-date": "clusters:\n  sandbox:\n    cesres_job_time: 2024-01-01\n",
        "root-binary": "clusters:\n  sandbox:\n    cesres_root: !!binary aGVsbG8=\n",
        "root-surrogate": 'clusters:\n  sandbox:\n    cesres_root: "/x\\udcff"\n',
        "billion-laughs": BILLION_LAUGHS,
        "recursive": "clusters: &x {sandbox: *x}\n",
        "integer-cluster-key": "clusters:\n  1: {}\n",
        "depth-65": "clusters: " + "[" * 65 + "]" * 65 + "\n",
        "latin-1": "clusters:\n  sandbox:\n    cesres_root: /caf\xe9\n".encode("latin-1"),
        "utf-16": "default_cluster: sandbox\n".encode("utf-16"),
        "fifo": FIFO,
        "link-to-dev-zero": link("/dev/zero"),
        "over-10-mb": "default_cluster: sandbox\n# " + "x" * OVER_LIMIT + "\n",
        "time-5000-digits": f"clusters:\n  sandbox:\n    cesres_job_time: '{BIG}'\n",
        "key-file-of-an-unknown-user": (
            "clusters:\n  sandbox:\n    ansible_ssh_private_key_file: ~cesres-no-such-user/k\n"
        ),
    }
    for case_id, content in files.items():
        yield Case(f"file-user-config-{case_id}", TRAIN, env=env, files={"user.yml": content})
    yield Case("file-user-config-of-an-unknown-user", TRAIN, env={"CESRES_CTL_CONFIG": "~cesres-no-such-user/c.yml"})
    yield Case("file-user-config-dev-zero", TRAIN, env={"CESRES_CTL_CONFIG": "/dev/zero"})
    config_set = ("config", "set", "-C", "sandbox")
    for key in ("cesres_root", "cesres_venv", "ansible_host", "cesres_job_account"):
        yield Case(f"file-user-config-set-{key}-not-utf8", (*config_set, key, f"/x{NOT_UTF8}"), env=env)
    yield Case(
        "file-user-config-set-into-a-fifo", (*config_set, "cesres_root", "/x"), env=env, files={"user.yml": FIFO}
    )


STATE = "state/cesres-ctl"


def registry_cases() -> Iterator[Case]:
    """A registry that is not one: refused and kept as it is, by every command (train too)."""
    commands = {
        "runs": ("runs",),
        "runs-json": ("runs", "--json"),
        "status": ("status", SEEDED),
        "logs": ("logs", SEEDED),
        "cancel": ("cancel", SEEDED),
        "fetch": ("fetch", SEEDED),
        "compare": ("compare", SEEDED, "--no-fetch"),
        "predict": ("predict", SEEDED, "{cfg}"),
        "prune": ("prune", "-C", "sandbox", "--dry-run"),
        "train": TRAIN,
    }
    for case_id, args in commands.items():
        yield Case(
            f"file-registry-truncated-{case_id}",
            args,
            files={f"{STATE}/runs.sqlite": b""},
            recorded=None,
            error="is empty (0 bytes)",
        )
    for case_id, content in {
        "fifo": FIFO,
        "link-to-dev-zero": link("/dev/zero"),
        "a-directory": link("{tmp}"),
    }.items():
        yield Case(f"file-registry-{case_id}", ("runs",), files={f"{STATE}/runs.sqlite": content}, recorded=None)


def kept_record_cases() -> Iterator[Case]:
    """A record kept in unrecorded/ that is not one is left alone: every command still works."""
    good = {
        "cluster": "sandbox",
        "run_id": "badinput-aaaaaaaaaa",
        "name": "badinput",
        "job_id": "5",
        "remote_dir": "/nonexistent/badinput-aaaaaaaaaa",
        "submitted_at": "2024-01-01T00:00:00Z",
        "state": "PENDING",
    }

    def record(**changes: object) -> str:
        import json

        data = {**good, **changes}
        return json.dumps({key: value for key, value in data.items() if value is not ...})

    records: dict[str, str | bytes | Special] = {
        "null-cluster": record(cluster=None),
        "integer-cluster": record(cluster=7),
        "jobs-text": record(jobs="5"),
        "jobs-numbers": record(jobs=[5]),
        "point-list": record(point=[1]),
        "point-index-text": record(point_index="3"),
        "point-index-true": record(point_index=True),
        "resources-list": record(resources=[]),
        "unknown-field": record(colour="blue"),
        "missing-field": record(state=...),
        "a-list": "[1, 2]",
        "not-json": "{",
        "huge-int": record(point_index=0).replace('"point_index": 0', '"point_index": ' + BIG),
        "nan": record(resources={"gpus": 1}).replace('"gpus": 1', '"gpus": NaN'),
        "duplicate-key": record().replace("{", '{"state": "RUNNING", ', 1),
        "not-utf8": b'{"cluster": "\xff"}',
        "fifo": FIFO,
        "link-to-dev-zero": link("/dev/zero"),
    }
    for case_id, content in records.items():
        yield Case(
            f"file-kept-record-{case_id}",
            ("status", "badinput-nope"),
            files={f"{STATE}/unrecorded/sandbox--badinput-aaaaaaaaaa.json": content},
            error="no run 'badinput-nope'",
        )


def cluster_cache_cases() -> Iterator[Case]:
    """A cluster cache that is not one is read again from the inventory: the command goes on."""
    for case_id, content in {
        "fifo": FIFO,
        "link-to-dev-zero": link("/dev/zero"),
        "not-json": "{",
        "a-list": "[]",
        "nan": '{"x": NaN}',
        "huge-int": '{"x": ' + BIG + "}",
        "not-utf8": b'{"\xff": 1}',
        "duplicate-key": '{"x": 1, "x": 2}',
    }.items():
        yield Case(
            f"file-cluster-cache-{case_id}",
            (*TRAIN, "--partition", "nope"),
            files={f"{STATE}/clusters.json": content},
            error="unknown partition",
        )


def value_cases() -> Iterator[Case]:
    for case_id, args in {
        "name": ("--name", f"badinput{NOT_UTF8}"),
        "partition": ("--partition", f"gpu{NOT_UTF8}"),
        "time": ("--time", f"01:00:00{NOT_UTF8}"),
        "mem": ("--mem", f"1G{NOT_UTF8}"),
        "account": ("--account", f"a{NOT_UTF8}"),
        "set-root": ("--set", f"root=/x{NOT_UTF8}"),
        "sbatch": ("--sbatch", f"--comment=x{NOT_UTF8}"),
        "model-option": ("--", "-d", f"cpu{NOT_UTF8}"),
        "wait-dest": ("--dest", f"{{tmp}}/d{NOT_UTF8}", "--wait"),
    }.items():
        yield Case(f"value-train-{case_id}-not-utf8", (*TRAIN, *args))
    for command in ("status", "logs", "cancel", "fetch", "compare", "prune"):
        yield Case(f"value-{command}-ref-not-utf8", (command, f"badinput{NOT_UTF8}"))
    yield Case(
        "value-sweep-vary-not-utf8", ("sweep", "{cfg}", "-C", "sandbox", "--vary", f"CONFIG.device=cpu{NOT_UTF8}")
    )
    yield Case("value-setup-extra-var-not-utf8", ("setup", "-C", "sandbox", "-e", f"cesres_venv=/x{NOT_UTF8}"))
    yield Case("value-plot-output-not-utf8", ("plot", SEEDED, "--output", f"{{tmp}}/p{NOT_UTF8}.png"))
    for variable in ("CESRES_CLUSTER", "CESRES_CTL_CONFIG", "CESRES_CTL_PROJECT", "XDG_STATE_HOME", "XDG_CONFIG_HOME"):
        yield Case(f"value-environment-{variable.lower()}-not-utf8", TRAIN, env={variable: f"/x{NOT_UTF8}"})
    for case_id, time in {
        "5000-digits": BIG,
        "days-5000-digits": f"{BIG}-00",
        "seconds-5000-digits": f"1:{BIG}",
        "hours-5000-digits": f"{BIG}:00:00",
    }.items():
        yield Case(f"value-time-{case_id}", (*TRAIN, "--time", time))
    for case_id, days in {
        "nan": "nan",
        "NaN": "NaN",
        "inf": "inf",
        "minus-inf": "-inf",
        "1e308": "1e308",
        "over-a-century": "36501",
    }.items():
        yield Case(f"value-prune-older-than-{case_id}", ("prune", "-C", "sandbox", "--older-than", days))
    for case_id, lines in {"zero": ("-n", "0"), "negative": ("-n", "-1"), "zero-long": ("--lines=0",)}.items():
        yield Case(f"value-logs-lines-{case_id}", ("logs", SEEDED, *lines))
    dev_null = {"ANSIBLE_CONFIG": "/dev/null"}
    yield Case(
        "value-ansible-config-dev-null-train", (*TRAIN, "--partition", "nope"), env=dev_null, error="unknown partition"
    )
    yield Case("value-ansible-config-dev-null-setup", ("setup", "-C", "nope"), env=dev_null, error="unknown cluster")
    yield Case("value-ansible-config-dev-null-doctor", ("doctor", "-C", "nope"), env=dev_null, error="unknown cluster")
    yield Case(
        "value-ansible-config-dev-null-config-show",
        ("config", "show", "-C", "nope"),
        env={**dev_null, "CESRES_CTL_CONFIG": "{tmp}/user.yml"},
        error="unknown cluster",
    )
    yield Case(
        "value-ansible-config-a-directory-prune",
        ("prune", "-C", "nope"),
        env={"ANSIBLE_CONFIG": "{tmp}"},
        error="unknown cluster",
    )


NEW_CASES = [
    *config_cases(),
    *data_cases(),
    *extra_vars_cases(),
    *vary_file_cases(),
    *user_config_cases(),
    *registry_cases(),
    *kept_record_cases(),
    *cluster_cache_cases(),
    *value_cases(),
]


@pytest.mark.parametrize("case", [pytest.param(case, id=case.id) for case in NEW_CASES])
def test_bad_files_and_values_are_one_line_and_change_nothing(case, outcomes):  # noqa: F811 - the fixture
    check_outcome(case, outcomes[case.id])


def test_there_are_enough_new_cases():
    ids = [case.id for case in [*CASES, *NEW_CASES]]
    assert len(set(ids)) == len(ids), "case ids must be unique"
    print(f"bad-file cases: {len(NEW_CASES)}")
    assert len(NEW_CASES) >= 150
