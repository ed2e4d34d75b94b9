"""cesres_ctl/inputs.py: the one way files and values from the user are read (issue 18).

One test per class of bad input: special files, sizes, text that is not UTF-8, what JSON cannot hold
(huge integers, NaN and infinities, dates, bytes, tags, keys), duplicate keys, alias bombs and
self-references, depth. Each refusal is one line naming the file and the key.
"""

import os
import socket
import threading
from pathlib import Path

import pytest

from cesres_ctl import inputs
from cesres_ctl.errors import CesresError


def refused(call, *args, **kwargs) -> str:
    with pytest.raises(CesresError) as info:
        call(*args, **kwargs)
    message = str(info.value)
    assert "\n" not in message
    return message


# --- files ---------------------------------------------------------------------------------------


def test_a_regular_file_is_read(tmp_path):
    path = tmp_path / "c.yaml"
    path.write_text("a: é\n")
    assert inputs.read_text(path, "config file") == "a: é\n"


def test_a_fifo_is_refused_without_blocking(tmp_path):
    fifo = tmp_path / "fifo"
    os.mkfifo(fifo)
    # Without O_NONBLOCK the open itself would wait for a writer: run it aside, with a deadline.
    outcome: list[str] = []
    reader = threading.Thread(target=lambda: outcome.append(refused(inputs.read_text, fifo, "-e file")), daemon=True)
    reader.start()
    reader.join(5)
    assert outcome == [f"-e file {fifo} is not a regular file"]


@pytest.mark.parametrize("device", ["/dev/zero", "/dev/urandom", "/dev/null"])
def test_a_device_is_refused_never_read(device, tmp_path):
    assert refused(inputs.read_text, Path(device), "--vary-file") == f"--vary-file {device} is not a regular file"
    link = tmp_path / "grid.yaml"
    link.symlink_to(device)
    assert refused(inputs.read_text, link, "--vary-file") == f"--vary-file {link} is not a regular file"


def test_a_socket_a_directory_a_missing_file_and_a_link_loop_are_refused(tmp_path):
    path = tmp_path / "sock"
    with socket.socket(socket.AF_UNIX) as server:
        server.bind(str(path))
        assert refused(inputs.read_text, path, "config file").endswith("is not a regular file")
    assert refused(inputs.read_text, tmp_path, "config file").endswith("is a directory, not a regular file")
    assert refused(inputs.read_text, tmp_path / "none", "config file").endswith("not found")
    loop = tmp_path / "loop"
    loop.symlink_to(loop)
    assert "Too many levels of symbolic links" in refused(inputs.read_text, loop, "config file")


def test_the_size_limit_counts_what_is_read(tmp_path):
    path = tmp_path / "big.yaml"
    path.write_bytes(b"x" * 1001)
    assert refused(inputs.read_text, path, "config file", limit=1000) == (
        f"config file {path} is 0.1 MB; the limit is 0.001 MB"
    )
    path.write_bytes(b"x" * 1000)
    assert inputs.read_text(path, "config file", limit=1000) == "x" * 1000
    # A file that says it is empty (as /proc's do) is still read only up to the limit.
    assert len(inputs.read_text(Path("/proc/self/status"), "f", limit=10**6)) > 0


@pytest.mark.parametrize("data", [b"a: caf\xe9\n", "a: 1\n".encode("utf-16"), b"a: \xed\xa0\x80\n", b"\xc0\xaf"])
def test_text_that_is_not_utf8_is_refused(tmp_path, data):
    path = tmp_path / "c.yaml"
    path.write_bytes(data)
    assert refused(inputs.read_text, path, "config file").startswith(f"config file {path} is not UTF-8 text (byte ")


@pytest.mark.parametrize("name", ["c\udcff.yaml", "c\n.yaml", "c\r.yaml"])
def test_a_name_that_is_not_utf8_or_holds_a_newline_is_refused(tmp_path, name):
    path = tmp_path / name
    path.write_text("a: 1\n")
    message = refused(inputs.read_text, path, "config file")
    assert "not UTF-8" in message or "newline" in message
    assert "\udcff" not in message  # shown as \xff: the message can be printed


def test_pseudo_files_are_those_of_proc_sys_and_dev():
    for path in ("/proc/self/environ", "/sys/kernel", "/dev/zero", "/tmp/../proc/1/mem", "/proc"):
        assert inputs.pseudo_file(path), path
    for path in ("/procs/x", "/home/u/proc/x", "/device", "/tmp/x"):
        assert not inputs.pseudo_file(path), path


# --- YAML and JSON: what JSON cannot hold ------------------------------------------------------------

YAML_REFUSED = {
    "CONFIG.batch_size (line 2) is an integer of 5000 characters: 64 bits at most": "CONFIG:\n  batch_size: "
    + "1" * 5000,
    "CONFIG.seed (line 2) is an integer beyond 64 bits": f"CONFIG:\n  seed: {2**63}\n",
    "CONFIG.seed (line 2) is an integer beyond 64 bits: give": "CONFIG:\n  seed: 0x1" + "0" * 16 + "\n",
    "TRAINER.learning_rate (line 1) is nan": "TRAINER: {learning_rate: .nan}\n",
    "TRAINER.learning_rate (line 1) is -inf": "TRAINER: {learning_rate: -.inf}\n",
    "TRAINER.learning_rate (line 1) is inf": "TRAINER: {learning_rate: 1.0e+400}\n",
    "MODEL.labels[1] (line 1) is a date or time (JSON cannot hold it): quote it": "MODEL: {labels: [a, 2024-01-01]}",
    "a (line 1) is binary data (!!binary)": "a: !!binary aGVsbG8=\n",
    "a (line 1) is a set (!!set)": "a: !!set {x}\n",
    "a (line 1) is an ordered mapping (!!omap)": "a: !!omap [x: 1]\n",
    "a (line 1) is tagged !include": "a: !include b.yaml\n",
    "a (line 1) is tagged tag:yaml.org,2002:python/object/apply:os.system": "a: !!python/object/apply:os.system [x]\n",
    "a (line 1) is not UTF-8 text": 'a: "\\udcff"\n',
    "a (line 1) is 0x_, no number Python can read: quote it": "a: 0x_\n",
}
YAML_STRUCTURE_REFUSED = {
    "clusters (line 3) is given twice (first on line 1): keep one": "clusters: {}\ndefault_cluster: x\nclusters: {}\n",
    "a.b (line 1) is given twice": "a: {b: 1, 'b': 2}\n",
    "the document (line 1) has the key 1, which is not a string: quote it": "1: x\n",
    "a (line 1) has the key True, which is not a string": "a: {True: x}\n",
    "a (line 1) has the key a list or mapping, which is not a string": "a: {? [x] : 1}\n",
    "its aliases (*name) add 4412961486 values, more than 10000": "a0: &a0 [x, x, x, x, x, x, x, x, x]\n"
    + "".join(f"a{n}: &a{n} [{', '.join([f'*a{n - 1}'] * 9)}]\n" for n in range(1, 10)),
    "a[1] (line 1) is an alias of a value that holds it: it refers to itself": "a: &a [1, *a]\n",
    "a.b (line 1) is an alias of a value that holds it": "a: &a {b: *a}\n",
    "is nested more than 64 levels deep: flatten it": "a: " + "[" * 65 + "]" * 65,
    # The line of the anchor: an alias is its anchor's value, met again.
    "y[0][0][0][0][0][0][0][0][0][0] (line 1) is nested more than 64 levels deep": "x: &x "
    + "[" * 60
    + "]" * 60
    + "\ny: "
    + "[" * 10
    + "*x"
    + "]" * 10,
    "is nested too deeply (more than 64 levels): flatten it": "a: " + "[" * 20000 + "]" * 20000,
    "is not valid YAML (line 2": "a: [\n",
    "is not valid YAML (parse error: unacceptable character #x0000": "a: b\x00\n",
}


@pytest.mark.parametrize(("problem", "text"), [*YAML_REFUSED.items(), *YAML_STRUCTURE_REFUSED.items()])
def test_yaml_that_json_cannot_hold_is_refused_naming_the_key(problem, text):
    message = refused(inputs.load_yaml, text, "config file c.yaml")
    assert message.startswith("config file c.yaml"), message
    assert problem in message, message


def test_yaml_within_the_rules_is_read_as_safe_load_reads_it():
    text = (
        "base: &base {lr: 1.0e-05, n: 3}\n"
        "run:\n  <<: *base\n  n: 4\n"
        "labels: [a, 'b', \"c\"]\nquoted: '2024-01-01'\nnone: ~\nflag: yes\nbig: 9223372036854775807\n"
    )
    assert inputs.load_yaml(text, "f") == {
        "base": {"lr": 1e-05, "n": 3},
        "run": {"lr": 1e-05, "n": 4},
        "labels": ["a", "b", "c"],
        "quoted": "2024-01-01",
        "none": None,
        "flag": True,
        "big": 2**63 - 1,
    }
    assert inputs.load_yaml("", "f") is None
    # Aliases within the budget are read, each a reference to its anchor's value.
    data = inputs.load_yaml("a: &a [" + ", ".join(["x"] * 100) + "]\nb: [" + ", ".join(["*a"] * 99) + "]\n", "f")
    assert len(data["b"]) == 99


JSON_REFUSED = {
    "a is nan": '{"a": NaN}',
    "a[0] is -inf": '{"a": [-Infinity]}',
    "a is inf": '{"a": 1e999}',
    "an integer of 5000 digits: 64 bits at most": '{"a": ' + "1" * 5000 + "}",
    "a is an integer beyond 64 bits": '{"a": ' + str(2**64) + "}",
    "the key a is given twice": '{"a": 1, "a": 2}',
    "a is not UTF-8 text": '{"a": "\\udcff"}',
    "has a key that is not UTF-8 text": '{"\\udcff": 1}',
    "is nested more than 64 levels deep": "[" * 66 + "]" * 66,
    "is nested too deeply": "[" * 100000 + "]" * 100000,
    "is not valid JSON (Expecting": "{",
}


@pytest.mark.parametrize(("problem", "text"), JSON_REFUSED.items())
def test_json_that_cannot_be_written_back_is_refused(problem, text):
    message = refused(inputs.load_json, text, "the cluster cache c.json")
    assert message.startswith("the cluster cache c.json"), message
    assert problem in message, message


def test_json_or_yaml_is_json_first_as_ansible_reads_extra_vars():
    assert inputs.load_json_or_yaml('{"a": [1, 2]}', "-e") == {"a": [1, 2]}
    assert inputs.load_json_or_yaml("{a: 1}", "-e") == {"a": 1}
    assert "a is nan" in refused(inputs.load_json_or_yaml, '{"a": NaN}', "-e")  # a number for Ansible too


# --- the command line ----------------------------------------------------------------------------


def test_arguments_and_environment_must_be_utf8():
    inputs.check_command_line(["train", "é.yaml"], {"CESRES_CLUSTER": "sandbox", "LANG": "x\udcff"})
    assert refused(inputs.check_command_line, ["train", "c\udcff.yaml"], {}) == (
        "argument 2 (c\\xff.yaml) is not UTF-8 text"
    )
    for name in ("CESRES_CTL_CONFIG", "XDG_STATE_HOME", "ANSIBLE_CONFIG", "HOME"):
        message = refused(inputs.check_command_line, [], {name: "/x\udcff"})
        assert message == f"the environment variable {name} (/x\\xff) is not UTF-8 text"
