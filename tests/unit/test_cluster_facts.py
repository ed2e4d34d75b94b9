"""Cluster facts read from Slurm (issue 20): sinfo's and scontrol's output parsed on plain text, compared with
the facts cesres-ctl enforces, saved as the user's; clusters of the user's own; `config set` checked by the
rules train uses."""

import json

import pytest
import yaml

from cesres_ctl import userconfig
from cesres_ctl.errors import CesresError
from cesres_ctl.provision import doctor, facts
from cesres_ctl.rules import Partition, RuleError, parse_partitions
from tests.conftest import PROJECT, run_main

# Real output of the sandbox's Slurm 22.05 (`sinfo -h -o '%P|%a|%l|%G|%D|%c|%m'`, `scontrol -o show partition`
# shortened to the keys read, `scontrol show config`), and lines of the forms other sites print.
SINFO = """\
batch*|up|5-00:00:00|(null)|40|48|190000
gpu|up|5-00:00:00|gpu:2|4|24|128000
gpu|up|5-00:00:00|gpu:tesla:4(S:0,1)|2|32+|256000+
debug|drain|30:00|(null)|1|8|16000
long|up|infinite|(null)|2|48|190000
"""
SCONTROL_PARTITIONS = """\
PartitionName=batch AllowGroups=ALL Default=YES MaxTime=5-00:00:00 DefMemPerNode=UNLIMITED MaxMemPerNode=UNLIMITED
PartitionName=gpu AllowGroups=ALL Default=NO MaxTime=5-00:00:00 DefMemPerCPU=4000 MaxMemPerNode=UNLIMITED
PartitionName=debug Default=NO MaxTime=00:30:00 DefMemPerNode=UNLIMITED
PartitionName=long Default=NO MaxTime=UNLIMITED DefMemPerNode=8000
"""
CONFIG = "DefMemPerCPU            = 1000\n"


def doctor_output() -> str:
    """The lines as doctor's script prints them: each command's, with its prefix, among the checks."""
    lines = ["CHECK\tlmod\tpass\tVersion 8.6.19"]
    lines += [f"SINFO\t{line}" for line in SINFO.splitlines()]
    lines += [f"PARTITION\t{line}" for line in SCONTROL_PARTITIONS.splitlines()]
    lines += [f"CONFIG\t{line}" for line in CONFIG.splitlines()]
    return "\n".join(lines) + "\n"


@pytest.mark.parametrize(
    ("gres", "gpus"),
    [
        ("(null)", 0),
        ("gpu:2", 2),
        ("gpu:tesla:4(S:0,1)", 4),  # typed, bound to sockets 0 and 1: the comma is not a list's
        ("gpu:a100:2,gpu:v100:2", 4),
        ("shard:8,gpu:1", 1),
        ("mps:100", 0),
    ],
)
def test_gpus_per_node_from_sinfos_gres(gres, gpus):
    assert facts.gpus_of(gres) == gpus


def test_sinfo_lines_give_each_partitions_limits_with_its_node_groups_merged():
    found = facts.parse_sinfo(SINFO.splitlines())
    assert list(found) == ["batch", "gpu", "debug", "long"]
    assert found["batch"] == facts.PartitionFacts("batch", "up", 5 * 86400, 0, 40, 48, 190000, True)
    # Two groups of nodes: the most GPUs, CPUs and memory of any, every node counted.
    assert (found["gpu"].gpus, found["gpu"].nodes, found["gpu"].cpus, found["gpu"].memory_mb) == (4, 6, 32, 256000)
    assert (found["debug"].state, found["debug"].max_seconds) == ("drain", 30 * 60)  # sinfo's MM:SS
    assert found["long"].max_seconds is None and found["long"].time_limit == "infinite"


@pytest.mark.parametrize(
    "line",
    [
        "sinfo: error: Unable to contact slurm controller (connect failure)",
        "batch*|up|soon|(null)|1|8|16000",
    ],
)
def test_sinfo_output_of_another_form_is_one_error(line):
    with pytest.raises(RuleError, match="sinfo"):
        facts.parse_sinfo([line])


def test_default_memory_is_the_partitions_own_else_the_clusters():
    found = facts.read(doctor_output())
    assert found is not None
    assert {name: part.default_mem for name, part in found.items()} == {
        "batch": "1000M per CPU",  # DefMemPerNode=UNLIMITED: slurm.conf's DefMemPerCPU applies
        "gpu": "4000M per CPU",
        "debug": "1000M per CPU",
        "long": "8000M per node",
    }
    assert facts.read("CHECK\tlmod\tpass\tx\n") is None  # no sinfo: no facts


def test_differences_with_the_enforced_facts_are_named_each_with_both_values():
    found = facts.read(doctor_output())
    assert found is not None
    enforced = parse_partitions(
        {
            "batch": {"max_time": "5-00:00:00", "default": True, "gpus": 0},
            "gpu": {"max_time": "2-00:00:00", "gpus": 2, "max_jobs": 10},
            "debug": {"max_time": "00:30:00"},
            "gone": {"max_time": "01:00:00"},
        }
    )
    assert facts.differences(found["batch"], enforced["batch"]) == []
    assert facts.differences(found["gpu"], enforced["gpu"]) == [
        "time limit 5-00:00:00 (cesres-ctl: 2-00:00:00)",
        "4 GPU(s) per node (cesres-ctl: 2)",
    ]
    checks = {check.id: (check.status, check.hint) for check in doctor.partition_checks(found, enforced, "c1")}
    assert {name: status for name, (status, _) in checks.items()} == {
        "partition:batch": "pass",
        "partition:gpu": "warn",
        "partition:debug": "fail",  # drained: a job there would wait
        "partition:gone": "fail",
        "partition:long": "warn",  # on the cluster, not in cesres-ctl's facts
    }
    assert checks["partition:gpu"][1].startswith("cesres-ctl doctor -C c1 --save-facts")
    setting = facts.as_setting(found, enforced)
    assert setting == {
        "batch": {"gpus": 0, "default": True, "max_time": "5-00:00:00"},
        "gpu": {"gpus": 4, "default": False, "max_time": "5-00:00:00", "max_jobs": 10},  # a QOS limit: kept
        "debug": {"gpus": 0, "default": False, "max_time": "00:30:00"},
        "long": {"gpus": 0, "default": False},  # infinite: the default limit applies
    }
    # What is saved is what the user's configuration accepts, and reads back as the cluster's partitions.
    assert userconfig.check_value("cesres_cluster_partitions", setting, "x") == setting
    assert parse_partitions(setting)["gpu"] == Partition("gpu", 5 * 86400, 4, False, 10)


# --- the user's facts and clusters ------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("value", "error"),
    [
        ({"gpu": {"gpus": -1}}, "gpus must be a whole number, at least 0"),
        ({"gpu": {"max_time": "soon"}}, "invalid time 'soon'"),
        ({"gpu": {"max_time": 60}}, "quote it"),
        ({"gpu": {"gpu": 2}}, "with some of the keys max_time, gpus, default, max_jobs"),
        ({"a": {"default": True}, "b": {"default": True}}, "one default partition at most"),
        ({"bad name": {}}, "not a partition name"),
        ([], "must be a mapping of partition names"),
    ],
)
def test_partitions_in_the_users_configuration_are_checked(value, error):
    with pytest.raises(CesresError, match=error):
        userconfig.check_value("cesres_cluster_partitions", value, "config file x: clusters.c")


@pytest.mark.parametrize("name", ["ceci.yml", "cluster_dragon2.yml", "cluster_sandbox.yml"])
def test_the_shipped_facts_pass_the_checks_of_a_users_own(name):
    """One validation for the shipped clusters and the user's: each setting that group_vars gives."""
    data = yaml.safe_load((PROJECT / "group_vars" / name).read_text(encoding="utf-8"))
    checked = {key: value for key, value in data.items() if key in userconfig.SETTINGS and "{{" not in str(value)}
    assert checked
    for key, value in checked.items():
        assert userconfig.check_value(key, value, name) == value


def test_a_cluster_with_an_ssh_alias_joins_the_clusters_and_a_typo_does_not(tmp_path):
    config = userconfig.parse(
        {
            "clusters": {
                "lemaitre4": {"ansible_host": "lm4", "cesres_cluster_partitions": {"batch": {"default": True}}},
                "dragon2": {"cesres_root": "~/c"},
            }
        },
        tmp_path / "config.yml",
    )
    assert userconfig.overlay(config) == {
        "all": {
            "hosts": {"dragon2": {"cesres_root": "~/c"}},
            "children": {
                "ceci": {
                    "hosts": {
                        "lemaitre4": {"ansible_host": "lm4", "cesres_cluster_partitions": {"batch": {"default": True}}}
                    }
                }
            },
        }
    }


@pytest.fixture
def user_config(monkeypatch, tmp_path):
    path = tmp_path / "config.yml"
    monkeypatch.setenv("CESRES_CTL_CONFIG", str(path))
    monkeypatch.setenv("XDG_STATE_HOME", str(tmp_path / "state"))
    monkeypatch.delenv("CESRES_CLUSTER", raising=False)
    return path


def test_a_users_own_cluster_is_defined_by_its_alias_and_then_known_everywhere(monkeypatch, capsys, user_config):
    code, _, err = run_main(monkeypatch, capsys, "config", "set", "cesres_root", "~/x", "-C", "dragn2")
    assert code == 1
    assert "unknown cluster 'dragn2' (did you mean dragon2?)" in err and "ansible_host ALIAS -C dragn2" in err
    code, _, err = run_main(monkeypatch, capsys, "config", "set", "ansible_host", "lm4", "-C", "lemaitre4")
    assert code == 0, err
    partitions = "{batch: {max_time: '2-00:00:00', default: true}, gpu: {max_time: '2-00:00:00', gpus: 4}}"
    code, _, err = run_main(
        monkeypatch, capsys, "config", "set", "cesres_cluster_partitions", partitions, "-C", "lemaitre4"
    )
    assert code == 0, err
    code, out, err = run_main(monkeypatch, capsys, "config", "show", "-C", "lemaitre4", "--json")
    assert code == 0, err
    settings = json.loads(out)["clusters"]["lemaitre4"]
    assert settings["ansible_host"]["value"] == "lm4"
    # group_vars/ceci.yml applies to it as to the shipped clusters: the CÉCI modules.
    assert settings["cesres_cluster_modules_release"] == {"value": "releases/2022a", "source": "group_vars/ceci.yml"}
    # train's checks follow its partitions: its default one (batch) has no GPU, gpu has 4, both 2 days at most.
    code, _, err = run_main(monkeypatch, capsys, "config", "set", "cesres_job_gpus", "1", "-C", "lemaitre4")
    assert code == 1 and err.strip().endswith(
        "partition batch of lemaitre4 has no GPUs: use --gpus 0 or a GPU partition"
    )
    code, _, err = run_main(monkeypatch, capsys, "config", "set", "cesres_job_partition", "gpu", "-C", "lemaitre4")
    assert code == 0, err
    code, _, err = run_main(monkeypatch, capsys, "config", "set", "cesres_job_gpus", "5", "-C", "lemaitre4")
    assert code == 1
    assert err.strip().endswith("partition gpu of lemaitre4 has at most 4 GPUs per node, asked 5"), err
    code, _, err = run_main(monkeypatch, capsys, "config", "set", "cesres_job_time", "3-00:00:00", "-C", "lemaitre4")
    assert code == 1 and "over the limit of partition gpu on lemaitre4 (2-00:00:00)" in err


@pytest.mark.parametrize(
    ("key", "value", "error"),
    [
        ("cesres_job_partition", "nope", "unknown partition 'nope' on dragon2 (partitions: batch, debug, gpu, long)"),
        ("cesres_job_time", "6-00:00:00", "over the limit of partition gpu on dragon2 (5-00:00:00)"),
        ("cesres_job_gpus", "3", "partition gpu of dragon2 has at most 2 GPUs per node, asked 3"),
        ("cesres_job_mem", "16Q", "memory '16Q' must be a number with an optional unit"),
    ],
)
def test_config_set_refuses_what_train_would_refuse(monkeypatch, capsys, user_config, key, value, error):
    code, out, err = run_main(monkeypatch, capsys, "config", "set", key, value, "-C", "dragon2")
    assert (code, out) == (1, "")
    assert err.startswith(f"cesres-ctl: error: config set {key}: train would refuse it on dragon2: ") and error in err
    assert not user_config.exists()
    code, _, err = run_main(monkeypatch, capsys, "config", "set", "cesres_job_partition", "debug", "-C", "dragon2")
    # debug has no GPU and dragon2's default is one: refused too, by the same rule as `train -p debug --gpus 1`.
    assert code == 1 and "partition debug of dragon2 has no GPUs" in err


def test_config_init_with_a_login_alias_makes_a_cluster_of_ones_own_the_default(monkeypatch, capsys, user_config):
    code, _, err = run_main(monkeypatch, capsys, "config", "init", "-C", "lemaitre4")
    assert code == 1 and "unknown cluster 'lemaitre4'" in err and not user_config.exists()
    code, _, err = run_main(monkeypatch, capsys, "config", "init", "-C", "lemaitre4", "--login-alias", "lm4")
    assert code == 0, err
    assert yaml.safe_load(user_config.read_text()) == {
        "default_cluster": "lemaitre4",
        "clusters": {"lemaitre4": {"ansible_host": "lm4"}},
    }
    code, out, err = run_main(monkeypatch, capsys, "config", "show", "--json")
    assert code == 0, err
    assert json.loads(out)["clusters"]["lemaitre4"]["ansible_host"]["source"] == "user config (config.yml)"


def test_doctor_save_facts_keeps_what_slurm_states_and_says_when_trains_defaults_no_longer_fit(
    monkeypatch, capsys, user_config
):
    found = facts.read(doctor_output())
    assert found is not None
    enforced = parse_partitions({"gpu": {"gpus": 2, "max_jobs": 3}})
    diagnosis = doctor.Diagnosis([doctor.Check("reach", "pass", "ssh x answers")], found, enforced)
    monkeypatch.setattr(doctor, "diagnose", lambda *_args, **_kwargs: diagnosis)
    code, out, err = run_main(monkeypatch, capsys, "doctor", "-C", "dragon2", "--save-facts", "--json")
    assert code == 0, err
    report = json.loads(out)
    assert report["facts_saved"] is True and report["partitions"]["gpu"]["gpus"] == 4
    kept = yaml.safe_load(user_config.read_text())["clusters"]["dragon2"]["cesres_cluster_partitions"]
    assert kept == facts.as_setting(found, enforced) and kept["gpu"]["max_jobs"] == 3
    assert "saved the partitions of dragon2 as yours" in err
    # dragon2's default is one GPU on gpu for 1 day: it fits (5 days, 4 GPUs), no note.
    assert "do not fit" not in err
    drained = {name: part for name, part in found.items() if name != "gpu"}
    diagnosis = doctor.Diagnosis(diagnosis.checks, drained, enforced)
    code, _, err = run_main(monkeypatch, capsys, "doctor", "-C", "dragon2", "--save-facts")
    assert code == 0, err
    assert "note: train's defaults on dragon2 do not fit them: unknown partition 'gpu' on dragon2" in err


def test_doctor_save_facts_without_facts_saves_nothing_and_fails(monkeypatch, capsys, user_config):
    unreachable = doctor.Diagnosis([doctor.Check("reach", "fail", "x: Connection refused", "check ssh")])
    monkeypatch.setattr(doctor, "diagnose", lambda *_args, **_kwargs: unreachable)
    code, out, err = run_main(monkeypatch, capsys, "doctor", "-C", "dragon2", "--save-facts", "--json")
    assert code == 3
    report = json.loads(out)  # one JSON document: the report, which says why
    assert (report["ok"], report["facts_saved"], report["partitions"]) == (False, False, {})
    assert "note: no facts read from dragon2: nothing saved" in err
    assert not user_config.exists()


def test_a_cluster_of_ones_own_without_partitions_says_where_they_come_from(monkeypatch, capsys, user_config):
    user_config.write_text("clusters:\n  lemaitre4:\n    ansible_host: lm4\n")
    monkeypatch.chdir(PROJECT / "sandbox" / "cesres-mini")
    code, _, err = run_main(monkeypatch, capsys, "train", "configs/demo.yaml", "-C", "lemaitre4", "--dry-run")
    assert code == 1
    assert err == (
        "cesres-ctl: error: cluster lemaitre4 has no partitions (cesres_cluster_partitions): "
        "`cesres-ctl doctor -C lemaitre4 --save-facts` reads them from its Slurm\n"
    )
