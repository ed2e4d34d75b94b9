"""cesres_ctl.rules, and the role's filter plugin that applies the same rules (one implementation)."""

import json
import re
import shlex

import jinja2
import jinja2.nodes
import pytest
import yaml

from cesres_ctl import paths, rules
from tests.conftest import PROJECT, collection_module
from tests.unit.test_prefork import expressions

PARTITIONS = rules.parse_partitions(
    {
        "batch": {"max_time": "5-00:00:00", "default": True, "gpus": 0},
        "gpu": {"max_time": "5-00:00:00", "gpus": 2},
        "debug": {"max_time": "00:30:00", "gpus": 0},
    }
)


def filters() -> dict:
    return collection_module("plugins.filter.cesres").FilterModule().filters()


@pytest.mark.parametrize(
    ("text", "seconds"),
    [
        ("30", 1800),
        ("5:30", 330),
        ("01:00:00", 3600),
        ("1-0", 86400),
        ("2-12", 216000),
        ("1-02:03", 93780),
        ("5-00:00:00", 432000),
        ("00:01:00", 60),
    ],
)
def test_slurm_time_parses_like_sbatch_in_the_cli_and_the_role(text, seconds):
    assert rules.slurm_seconds(text) == seconds
    # The role reads the time through the copy-back grace: at most half of it.
    assert filters()["cesres_signal_grace"](10**9, text) == seconds // 2


@pytest.mark.parametrize("text", ["", "soon", "1:2:3:4", "-1", "1-", "0", "00:00:00", "1h", "UNLIMITED"])
def test_slurm_time_rejects_garbage(text):
    with pytest.raises(rules.RuleError, match="invalid time"):
        rules.slurm_seconds(text)


def test_slurm_time_formats_canonically():
    assert rules.format_seconds(60) == "00:01:00"
    assert rules.format_seconds(432000) == "5-00:00:00"
    assert rules.format_seconds(93780) == "1-02:03:00"


@pytest.mark.parametrize(
    ("partition", "gpus", "time", "error"),
    [
        ("gpu", 2, "5-00:00:00", None),
        ("batch", 0, "01:00:00", None),
        ("nope", 0, "01:00:00", "unknown partition 'nope' on c (partitions: batch, debug, gpu)"),
        ("batch", 1, "01:00:00", "partition batch of c has no GPUs: use --gpus 0 or a GPU partition"),
        ("gpu", 3, "01:00:00", "partition gpu of c has at most 2 GPUs per node, asked 3"),
        ("debug", 0, "01:00:00", "time 01:00:00 is over the limit of partition debug on c (00:30:00)"),
        ("gpu", -1, "01:00:00", "gpus must be at least 0, got -1"),
    ],
)
def test_the_fit_of_a_job_is_one_rule_for_the_cli_and_the_role(partition, gpus, time, error):
    raw = {
        "batch": {"max_time": "5-00:00:00", "default": True, "gpus": 0},
        "gpu": {"max_time": "5-00:00:00", "gpus": 2},
    }
    raw["debug"] = {"max_time": "00:30:00", "gpus": 0}
    if error is None:
        rules.check_fit(PARTITIONS, partition, gpus, rules.slurm_seconds(time), cluster="c")
    else:
        with pytest.raises(rules.RuleError) as failed:
            rules.check_fit(PARTITIONS, partition, gpus, rules.slurm_seconds(time), cluster="c")
        assert str(failed.value) == error
    job = {**JOB, "partitions": raw, "gpus": gpus, "time": time}
    assert filters()["cesres_job_input_errors"](job, partition, "c") == ([] if error is None else [error])


def test_the_default_partition_is_chosen_in_one_place():
    assert rules.choose_partition(PARTITIONS, "") == "batch"
    assert rules.choose_partition(PARTITIONS, " gpu ") == "gpu"
    assert filters()["cesres_choose_partition"]({"a": {}, "b": {"default": True}}, "") == "b"


@pytest.mark.parametrize("name", ["demo", "run_1.b-2", "A", "a" * 40])
def test_run_names(name):
    assert rules.check_run_name(name) == name
    assert filters()["cesres_job_input_errors"]({**JOB, "name": name}, "batch", "c") == []


@pytest.mark.parametrize("name", ['x"; touch ~/pwned; "', "-x", "a b", "", "a" * 41, "a\nb", "$(id)", "../x"])
def test_bad_run_names(name):
    with pytest.raises(rules.RuleError, match="run name"):
        rules.check_run_name(name)
    assert filters()["cesres_job_input_errors"]({**JOB, "name": name}, "batch", "c") == [
        f"run name {name!r} must be 1-40 letters, digits, '.', '_' or '-' and start with a letter or digit"
    ]


def test_the_run_directory_layout():
    assert rules.run_dir("/home/u/cesres/", "demo-0123456789") == "/home/u/cesres/runs/demo-0123456789"
    assert rules.log_name("42") == "slurm-42.out"
    template = (PROJECT / "roles" / "cesres_job" / "templates" / "job.sbatch.j2").read_text()
    assert "#SBATCH --output=" + rules.log_name("%j") in template


def test_terminal_states_and_the_ones_a_run_is_submitted_again_for():
    assert "COMPLETED" in rules.TERMINAL_STATES and "COMPLETED" not in rules.RESUBMIT_STATES
    assert {"FAILED", "CANCELLED", "TIMEOUT"} <= rules.RESUBMIT_STATES < rules.TERMINAL_STATES


ENV = {"HOME": "/home/u", "GLOBALSCRATCH": "/scratch/u", "SELF": "$SELF", "EMPTY": ""}


@pytest.mark.parametrize(
    ("path", "expanded"),
    [
        ("~", "/home/u"),
        ("~/cesres", "/home/u/cesres"),
        ("$GLOBALSCRATCH/env", "/scratch/u/env"),
        ("${GLOBALSCRATCH}/env", "/scratch/u/env"),
        ("${HOME}x/$GLOBALSCRATCH", "/home/ux//scratch/u"),
        ("cesres", "/home/u/cesres"),
        ("/abs/a}b", "/abs/a}b"),  # a } alone is a character
        ("/abs/$", "/abs/$"),  # so is a lone $
        ("/x/$SELF", "/x/$SELF"),  # one pass: a value is never expanded again
        ("/x/${EMPTY}y", "/x/y"),
        ("~user/x", "/home/u/~user/x"),  # only ~ and ~/ mean the home directory
    ],
)
def test_cluster_paths_expand_like_a_login_shell_without_running_anything(path, expanded):
    assert rules.expand_path(path, ENV) == expanded


@pytest.mark.parametrize(
    ("path", "message"),
    [
        ("$UNSET/env", "the variable $UNSET is not set in a login shell on the cluster"),
        ("${UNSET}", "the variable $UNSET is not set"),
        ("/x/${a b}", "${a b} is not a variable name"),
        ("/x/${}", "${} is not a variable name"),
        ("", "is empty"),
    ],
)
def test_an_unset_variable_in_a_cluster_path_is_an_error_naming_it(path, message):
    with pytest.raises(rules.RuleError, match=re.escape(message)):
        rules.expand_path(path, ENV, what="cesres_root")


def test_the_variables_a_path_needs_are_listed_once():
    assert rules.path_variables("$A/${B}/$A/x}y/$") == ["A", "B"]


def test_the_roles_expand_cluster_paths_with_the_shared_filter():
    env = {"HOME": "/home/u", "GLOBALSCRATCH": "/scratch/u"}
    expand = filters()["cesres_expand_path"]
    assert expand("$GLOBALSCRATCH/env", env, "cesres_venv") == "/scratch/u/env"
    assert expand("data/x.txt", env, "a cluster data file", "/home/u/cesres") == "/home/u/cesres/data/x.txt"
    from ansible.errors import AnsibleFilterError

    with pytest.raises(AnsibleFilterError, match=r"cesres_venv '\$NOPE/env': the variable \$NOPE is not set"):
        expand("$NOPE/env", env, "cesres_venv")
    with pytest.raises(AnsibleFilterError, match="run the cesres_login role first"):
        expand("~/x", {}, "cesres_root")


def test_the_login_environment_is_read_as_env_prints_it():
    import base64

    raw = base64.b64encode(b"HOME=/home/u\0MULTI=a\nb=c\0EMPTY=\0").decode()
    report = filters()["cesres_probe_report"](f'{{"login_env": "{raw}", "module_envs": {{"r g/1": "{raw}"}}}}')
    assert report["login_env"] == report["module_envs"]["r g/1"] == {"HOME": "/home/u", "MULTI": "a\nb=c", "EMPTY": ""}


def test_no_role_or_scenario_expands_a_path_by_itself():
    """One implementation: rules.expand_path, through the filter; grep for a second copy finds none."""
    copies = []
    for path in [*(PROJECT / "roles").rglob("*"), *(PROJECT / "molecule").rglob("*")]:
        if path.is_file() and path.suffix in {".sh", ".yml", ".yaml", ".j2", ".py"}:
            text = path.read_text(errors="replace")
            if "BASH_REMATCH" in text or re.search(r"\bexpand\(\)|cesres_expand\b|expandvars", text):
                copies.append(str(path.relative_to(PROJECT)))
    assert copies == []


def test_ssh_to_a_cluster_is_one_rule_for_the_cli_and_the_roles_and_keeps_the_key():
    values = {
        "ansible_host": "dragon2",
        "ansible_user": "jdoe",
        "ansible_port": 2222,
        "ansible_ssh_common_args": "-F '/my cfg' -o ProxyJump=gw",
        "ansible_ssh_private_key_file": "/keys/id_ceci",
    }
    target = rules.ssh_target(values, "dragon2")
    expected = ["ssh", "-F", "/my cfg", "-o", "ProxyJump=gw", "-i", "/keys/id_ceci", "-p", "2222", "-l", "jdoe"]
    assert target.argv() == expected
    # rsync -e in the roles: the same words, quoted for rsync's own splitting.
    assert (
        filters()["cesres_rsync_ssh"](values, "dragon2")
        == "ssh -F '/my cfg' -o ProxyJump=gw -i /keys/id_ceci -p 2222 -l jdoe"
    )
    assert filters()["cesres_ssh_host"]({}, "nic5") == "nic5"
    from cesres_ctl.runs import remote

    # cesres-ctl's own ssh and the roles' rsync go through the same master connection as Ansible's runs.
    control = str(paths.control_dir())
    shared = [*expected[:7], *rules.multiplex_options(control), *expected[7:]]
    assert remote.ssh_base(target) == [*shared, "-o", "BatchMode=yes"]
    assert shlex.split(filters()["cesres_rsync_ssh"](values, "dragon2", control)) == shared
    assert f"ControlPath={control}/%C" in shared


def test_the_probe_filters():
    """cesres_python's raw step: its JSON line among a login shell's messages; a module group's environment."""
    import base64
    import json

    from ansible.errors import AnsibleFilterError

    last_json = filters()["cesres_probe_report"]
    assert last_json('Welcome to dragon2\r\n{"state": "ok"}\r\nShared connection closed.\r\n') == {"state": "ok"}
    assert last_json("no json here\n{broken") == {}
    module_env = filters()["cesres_module_env"]
    probe = {"module_envs": {"r git/2": {"PATH": "/git/bin"}}, "module_errors": {"r X/1": "cannot load module X/1"}}
    encoded = module_env(probe, ["r", "git/2"], {"HOME": "/h"})
    assert json.loads(base64.b64decode(encoded)) == {"PATH": "/git/bin"}
    assert json.loads(base64.b64decode(module_env(probe, [], {"HOME": "/h"}))) == {"HOME": "/h"}
    with pytest.raises(AnsibleFilterError, match="cannot load module X/1"):
        module_env(probe, ["r", "X/1"], {})
    with pytest.raises(AnsibleFilterError, match="cesres_python_module_sets"):
        module_env(probe, ["r", "Y/1"], {})
    # What the module cesres_probe reads the play's one probe with: all of it, in one opaque value.
    envs = filters()["cesres_probe_envs"]({**probe, "login_env": {"HOME": "/h"}, "state": "ok"})
    assert collection_module("plugins.module_utils.provision").decode_envs(envs) == {
        "login": {"HOME": "/h"},
        "modules": probe["module_envs"],
        "errors": probe["module_errors"],
    }


JOB = {
    "spec_hash": "0123456789abcdef",
    "config_b64": "Q09ORklHOiB7fQ==",
    "name": "demo",
    "partitions": {"batch": {"max_time": "5-00:00:00", "default": True, "gpus": 0}},
    "gpus": 0,
    "time": "01:00:00",
    "mem": "",
    "account": "",
    "qos": "",
    "mail_user": "",
    "mail_type": "END",
    "nodes": 1,
    "ntasks": 1,
    "cpus_per_task": 4,
    "signal_grace": 300,
    "extra_sbatch": [],
    "models": ["Enoch/graphcodebert-py"],
    "inputs": [{"name": "training.txt", "src": "/d/train.txt"}, {"name": "evaluation", "cluster_path": "~/e"}],
}
WORDS = (
    "mem, account, qos and mail must be single words without quotes, spaces or newlines; nodes and ntasks must be 1 "
    "(CESReS is one process)"
)


def test_the_job_roles_inputs_pass_when_they_follow_the_rules():
    assert filters()["cesres_job_input_errors"](JOB, "batch", "c") == []
    assert filters()["cesres_job_input_errors"]({**JOB, "mem": "16G", "account": "a.b@c"}, "batch", "c") == []


@pytest.mark.parametrize(
    ("change", "error"),
    [
        (
            {"spec_hash": "XYZ"},
            "cesres_job_spec_hash (hex digest) and cesres_job_config_b64 (base64 config) are required",
        ),
        (
            {"config_b64": ""},
            "cesres_job_spec_hash (hex digest) and cesres_job_config_b64 (base64 config) are required",
        ),
        (
            {"name": "-bad"},
            "run name '-bad' must be 1-40 letters, digits, '.', '_' or '-' and start with a letter or digit",
        ),
        ({"gpus": 1}, "partition batch of c has no GPUs: use --gpus 0 or a GPU partition"),
        ({"mem": "16g"}, WORDS),
        ({"mem": "lots"}, WORDS),
        ({"account": "a b"}, WORDS),
        ({"mail_user": "x'y"}, WORDS),
        ({"nodes": 2}, WORDS),
        ({"ntasks": "2"}, WORDS),
        ({"cpus_per_task": 0}, WORDS),
        ({"signal_grace": "soon"}, WORDS),
        ({"extra_sbatch": ["--time=1"]}, "extra sbatch option --time (--time) is set by cesres-ctl: use --time"),
        (
            {"models": ["ok/model", "a/b/c"]},
            'cesres_job_models must be Hugging Face model ids (ORG/NAME): ["ok/model", "a/b/c"]',
        ),
        ({"inputs": [{"name": "train", "src": "/x"}]}, "each of cesres_job_inputs needs a name"),
        ({"inputs": [{"name": "training.tar.gz", "src": "/x"}]}, "each of cesres_job_inputs needs a name"),
        (
            {"inputs": [{"name": "training", "src": "/x", "cluster_path": "/y"}]},
            "each of cesres_job_inputs needs a name",
        ),
        ({"inputs": [{"name": "training"}]}, "each of cesres_job_inputs needs a name"),
    ],
)
def test_the_job_roles_inputs_are_refused_in_one_line_each(change, error):
    """roles/cesres_job's one check (tasks/assert.yml): each broken rule is one line of the list."""
    errors = filters()["cesres_job_input_errors"]({**JOB, **change}, "batch", "c")
    assert len(errors) == 1
    assert errors[0].startswith(error)
    if "inputs" in change:
        assert errors[0] == (
            "each of cesres_job_inputs needs a name (training/validation/evaluation/weights[.ext]) and one of src or "
            f"cluster_path: {json.dumps(change['inputs'])}"
        )


def test_the_copy_back_warning_is_one_rule_for_the_cli_and_the_role():
    """At most half the run, at least a second: the CLI's Resources and the role's filter agree."""
    grace = filters()["cesres_signal_grace"]
    assert grace(300, "01:00:00") == rules.signal_grace(300, 3600) == 300
    assert grace("300", "5") == rules.signal_grace(300, 300) == 150
    assert grace(0, "1") == rules.signal_grace(0, 60) == 1
    assert grace("soon", "10") == 1  # as Jinja's int: 0, then at least 1


def test_the_run_layout_reaches_the_role_through_cesres_rule():
    rule = filters()["cesres_rule"]
    assert rule("SCRATCH_RESULTS") == f"{rule('RUN_SUBDIR')}/{rule('RUN_RESULTS_DIR')}" == "cesres_run/results"
    assert [rules.staged_name("training", s) for s in (".txt", ".tar.gz", "")] == [
        "training.txt",
        "training",
        "training",
    ]
    assert all(rules.is_staged_name(rules.staged_name(k, ".csv")) for k in rules.INPUT_NAMES)


def filters_named_by_the_plays() -> set[str]:
    """The filters that the roles, playbooks and molecule's plays name, in their YAML and their templates."""
    env = jinja2.Environment()  # parsed only, never rendered
    templates = []
    for path in [*PROJECT.glob("roles/**/*.yml"), *PROJECT.glob("playbooks/*.yml"), *PROJECT.glob("molecule/**/*.yml")]:
        if "templates" not in path.parts:
            templates += [text for document in yaml.safe_load_all(path.read_text()) for text in expressions(document)]
    templates += [path.read_text() for path in PROJECT.glob("roles/*/templates/**/*.j2")]
    return {node.name for text in templates for node in env.parse(text).find_all(jinja2.nodes.Filter)}


# Jinja's lexer warns about the backslashes of the roles' regular expressions, which it only reads here.
@pytest.mark.filterwarnings("ignore:invalid escape sequence:DeprecationWarning")
def test_every_filter_of_the_collection_is_named_by_a_role_playbook_or_template():
    """A filter nothing names is dead code; the rule it applied stays in rules.py, which the CLI imports."""
    named = filters_named_by_the_plays()
    assert "cesres.ctl.cesres_rule" in named  # a template's
    assert sorted(f"cesres.ctl.{name}" for name in filters() if f"cesres.ctl.{name}" not in named) == []
