"""cesres_ctl.runs: time strings, resources, the CESReS config, model arguments, run spec, status parsing."""

import base64
import hashlib
import os
import tempfile
from pathlib import Path

import pytest
import yaml

from cesres_ctl import rules
from cesres_ctl.errors import CesresError
from cesres_ctl.rules import parse_partitions
from cesres_ctl.runner import HostStats, PlaybookResult
from cesres_ctl.runs import config as configs
from cesres_ctl.runs import remote, spec, submit
from cesres_ctl.runs.cluster import load as load_cluster
from cesres_ctl.runs.registry import Registry, Run
from cesres_ctl.runs.resources import Resources, resolve
from tests.conftest import MINI

PROJECT = Path(__file__).resolve().parents[2]
PARTITIONS = parse_partitions(
    {
        "batch": {"max_time": "5-00:00:00", "default": True, "gpus": 0},
        "gpu": {"max_time": "5-00:00:00", "default": False, "gpus": 2},
        "debug": {"max_time": "00:30:00", "default": False, "gpus": 0},
    }
)


def test_resources_take_cluster_defaults_then_overrides():
    defaults = {"partition": "gpu", "gpus": 1, "cpus_per_task": 4, "time": "1-00:00:00"}
    res = resolve(PARTITIONS, defaults, {"time": "02:00:00", "gpus": None}, cluster="c")
    assert (res.partition, res.gpus, res.cpus_per_task, res.time) == ("gpu", 1, 4, "02:00:00")
    assert res.signal_grace == 300


def test_resources_default_partition_and_gpus_follow_a_cpu_partition():
    res = resolve(PARTITIONS, {"gpus": 1}, {"partition": "batch"}, cluster="c")
    assert (res.partition, res.gpus) == ("batch", 0)
    assert resolve(PARTITIONS, {}, {}, cluster="c").partition == "batch"


@pytest.mark.parametrize(
    ("overrides", "message"),
    [
        ({"partition": "debug", "time": "01:00:00"}, "over the limit of partition debug"),
        ({"partition": "nope"}, "unknown partition 'nope'"),
        ({"partition": "batch", "gpus": 1}, "has no GPUs"),
        ({"partition": "gpu", "gpus": 3}, "at most 2 GPUs"),
        ({"mem": "lots"}, "memory"),
        ({"account": "a b"}, "account"),
        ({"qos": 'x";id'}, "qos"),
        ({"extra_sbatch": ["--exclusive\n#SBATCH --x"]}, "extra sbatch option"),
        ({"extra_sbatch": ["--time=9-00:00:00"]}, "set by cesres-ctl"),
        ({"cpus_per_task": 0}, "at least 1"),
    ],
)
def test_resources_refuse_what_slurm_would_refuse(overrides, message):
    with pytest.raises(CesresError, match=message):
        resolve(PARTITIONS, {"time": "00:10:00"}, overrides, cluster="c")


def test_signal_grace_is_at_most_half_the_run():
    assert resolve(PARTITIONS, {}, {"time": "00:01:00"}, cluster="c").signal_grace == 30
    assert resolve(PARTITIONS, {"signal_grace": 10}, {"time": "01:00:00"}, cluster="c").signal_grace == 10


def test_demo_config_is_rewritten_for_the_run():
    run_config = configs.load(MINI / "configs" / "demo.yaml", cwd=MINI)
    data = yaml.safe_load(run_config.rewritten_text)
    assert data["CONFIG"]["training"] == "cesres_run/inputs/training.txt"
    assert data["CONFIG"]["evaluation"] == "cesres_run/inputs/evaluation.txt"
    assert data["CONFIG"]["serialization_dir"] == "cesres_run/results"
    assert data["READER"]["snippet_splitter"] == "\n$$$\n"
    assert data["TRAINER"]["learning_rate"] == pytest.approx(0.002)
    assert [i.local_path for i in run_config.inputs] == [
        MINI / "data" / "train.txt",
        MINI / "data" / "validation.txt",
        MINI / "data" / "test.txt",
    ]


def test_data_paths_resolve_against_the_config_dir_and_the_cluster(tmp_path):
    (tmp_path / "train.txt").write_text("x\n $x$ correct\n$$$\n")
    text = (MINI / "configs" / "demo.yaml").read_text()
    text = text.replace("data/train.txt", "train.txt").replace("data/validation.txt", "cluster:data/validation.txt")
    text = text.replace('evaluation: "data/test.txt"', 'evaluation: "cluster:/shared/test set.txt"')
    cfg = tmp_path / "c.yaml"
    cfg.write_text(text)
    run_config = configs.load(cfg, cwd=Path("/"))
    training, validation, evaluation = run_config.inputs
    assert training.local_path == tmp_path / "train.txt"
    assert (validation.cluster_path, validation.staged_name) == ("data/validation.txt", "validation.txt")
    assert evaluation.cluster_path == "/shared/test set.txt"


@pytest.mark.parametrize(
    ("edit", "message"),
    [
        (lambda t: t.replace("TRAINER:", "TRAINERS:"), "lacks the section"),
        (lambda t: t.replace('training: "data/train.txt"', 'training: "data/nope.txt"'), "not found"),
        (lambda t: t.replace("no_loop: False", "no_loop: True"), "no_loop"),
        (lambda t: t + "\n  bad: [\n", "not valid YAML"),
        (lambda t: t.replace('training: "data/train.txt"', 'training: "cluster:{{ lookup(1) }}"'), "template"),
        (lambda t: "- a list\n", "mapping"),
        (lambda t: "a: " + "[" * 20000 + "]" * 20000 + "\n", "nested too deeply"),
        (lambda t: t.replace("CONFIG:\n", "CONFIG:\n  deep: " + "{a: " * 2000 + "1" + "}" * 2000 + "\n"), "too deeply"),
        (lambda t: t.replace('training: "data/train.txt"', 'training: "data\\n/train.txt"'), "newlines"),
        (lambda t: t.replace('training: "data/train.txt"', 'training: "data\\0/train.txt"'), "NUL"),
        (lambda t: t.replace('training: "data/train.txt"', 'training: "data"'), "not a regular file"),
        (lambda t: t.replace('training: "data/train.txt"', 'training: "~cesres-nobody/x"'), "unknown user"),
        (lambda t: t.replace("loops: 10", "loops: ten"), "CONFIG.loops must be a whole number >= 1"),
        (lambda t: t.replace("batch_size: 8", "batch_size: 0"), "CONFIG.batch_size must be a whole number"),
        (lambda t: t.replace("batch_size: 8", "batch_size: true"), "CONFIG.batch_size must be a whole number"),
        (lambda t: t.replace("random_seed: 42", "random_seed: -1"), "CONFIG.random_seed must be a whole number >= 0"),
    ],
)
def test_bad_configs_are_one_line_errors(tmp_path, edit, message):
    cfg = tmp_path / "c.yaml"
    cfg.write_text(edit((MINI / "configs" / "demo.yaml").read_text()))
    with pytest.raises(CesresError, match=message) as info:
        configs.load(cfg, cwd=MINI)
    assert "\n" not in str(info.value)


def test_a_config_that_is_not_a_readable_file_is_one_line(tmp_path, monkeypatch):
    with pytest.raises(CesresError, match="is a directory"):
        configs.load(tmp_path, cwd=MINI)
    fifo = tmp_path / "fifo.yaml"
    os.mkfifo(fifo)
    with pytest.raises(CesresError, match="not a regular file"):
        configs.load(fifo, cwd=MINI)
    with pytest.raises(CesresError, match="newline or NUL"):
        configs.load(tmp_path / "a\nb.yaml", cwd=MINI)
    cfg = tmp_path / "c.yaml"
    cfg.write_text((MINI / "configs" / "demo.yaml").read_text())

    def denied(*_args, **_kwargs):
        raise PermissionError(13, "Permission denied", str(cfg))

    monkeypatch.setattr(os, "open", denied)  # as root, permission bits deny nothing
    with pytest.raises(CesresError, match=r"cannot read config file .*Permission denied") as info:
        configs.load(cfg, cwd=MINI)
    assert "\n" not in str(info.value)


def test_an_unreadable_data_file_is_one_line(monkeypatch):
    def denied(path):
        raise PermissionError(13, "Permission denied", str(path))

    monkeypatch.setattr(rules, "file_sha256", denied)
    with pytest.raises(CesresError, match=r"cannot read data file CONFIG.training = 'data/train.txt' .*Permission"):
        configs.load(MINI / "configs" / "demo.yaml", cwd=MINI)


def test_a_config_over_10_mb_is_refused_in_one_line(tmp_path):
    demo = (MINI / "configs" / "demo.yaml").read_text()
    cfg = tmp_path / "big.yaml"
    cfg.write_text(demo + "# " + "x" * (configs.MAX_CONFIG_BYTES - len(demo.encode())) + "\n")
    with pytest.raises(CesresError) as info:
        configs.load(cfg, cwd=MINI)
    assert str(info.value) == f"config file {cfg} is 10.1 MB; the limit is 10 MB"
    cfg.write_text(demo + "# " + "x" * (configs.MAX_CONFIG_BYTES - len(demo.encode()) - 3) + "\n")
    assert configs.load(cfg, cwd=MINI).original_text.startswith(demo)


@pytest.mark.parametrize(
    ("args", "options"),
    [
        (["-l", "3"], {"loops": 3}),
        (["-r"], {"random_seed": 42}),
        (["-r", "7", "-l", "2"], {"random_seed": 7, "loops": 2}),
        (["--loops=4", "-ne"], {"loops": 4, "no_eval": True}),
        (["-b", "16", "-vb", "4", "-eb=2"], {"batch_size": 16, "validation_batch_size": 4, "evaluation_batch_size": 2}),
        (["-d", "cpu; rm -rf ~"], {"device": "cpu; rm -rf ~"}),
    ],
)
def test_model_options_become_config_keys(args, options):
    assert configs.options_from_args(args) == options


@pytest.mark.parametrize(
    "args",
    [
        ["-n"],
        ["--no_loop"],
        ["--no_l"],
        ["-c", "x"],
        ["-s", "out"],
        ["-g"],
        ["-p"],
        ["3"],
        ["-l"],
        ["-t=x"],
        ["-b", "-1"],
        ["-l", "x"],
        ["-m", "other/model"],
        ["-lm", "w.th"],
        ["-l", "0"],
    ],
)
def test_refused_model_arguments(args):
    with pytest.raises(CesresError) as info:
        configs.options_from_args(args)
    assert "\n" not in str(info.value)


def _rewritten(path, **kwargs):
    return yaml.safe_load(configs.load(path, cwd=MINI, **kwargs).rewritten_text)


def test_options_are_written_into_config_over_the_files_values():
    # The real program lets the file win over its command line: options must land in the config.
    data = _rewritten(MINI / "configs" / "demo.yaml", options={"loops": 2, "batch_size": 4, "random_seed": 3}, gpus=1)
    assert (data["CONFIG"]["loops"], data["CONFIG"]["batch_size"], data["CONFIG"]["random_seed"]) == (2, 4, 3)
    plain = _rewritten(MINI / "configs" / "demo.yaml", gpus=1)
    assert (plain["CONFIG"]["loops"], plain["CONFIG"]["batch_size"]) == (10, 8)


def _demo_with(tmp_path, old, new):
    text = (MINI / "configs" / "demo.yaml").read_text()
    assert old in text
    cfg = tmp_path / "c.yaml"
    cfg.write_text(text.replace(old, new))
    return cfg


def test_device_follows_the_resources(tmp_path):
    no_device = _demo_with(tmp_path, '    device: "cuda"\n', "")
    assert _rewritten(no_device, gpus=1)["CONFIG"]["device"] == "cuda"
    assert _rewritten(no_device, gpus=0)["CONFIG"]["device"] == "cpu"
    assert _rewritten(no_device, options={"device": "cpu"}, gpus=0)["CONFIG"]["device"] == "cpu"
    with pytest.raises(CesresError, match="no GPU"):
        configs.load(MINI / "configs" / "demo.yaml", cwd=MINI, gpus=0)
    with pytest.raises(CesresError, match="asks 1 GPU"):
        configs.load(no_device, cwd=MINI, options={"device": "cpu"}, gpus=1)
    with pytest.raises(CesresError, match="'cuda:0'"):
        configs.load(_demo_with(tmp_path, 'device: "cuda"', 'device: "cuda:0"'), cwd=MINI, gpus=1)


def test_head_size_must_be_labels_plus_two(tmp_path):
    cfg = _demo_with(tmp_path, "arg: [ 1, 64, 9 ]", "arg: [ 1, 64, 7 ]")
    with pytest.raises(CesresError, match=r"arg\[2\] is 7 but must be 9: 7 labels \+ 2") as info:
        configs.load(cfg, cwd=MINI, gpus=1)
    assert "\n" not in str(info.value)
    data = yaml.safe_load((MINI / "configs" / "demo.yaml").read_text())
    data["MODEL"]["classification_head"] = {"name": "simple", "arg": [64, 8]}  # torch.nn.Linear(*arg)
    simple = tmp_path / "simple.yaml"
    simple.write_text(yaml.safe_dump(data))
    with pytest.raises(CesresError, match=r"arg\[1\] is 8 but must be 9"):
        configs.load(simple, cwd=MINI, gpus=1)


def test_real_template_config_passes_the_checks(tmp_path):
    # The real repository's template_config.yaml (16 labels, head [1, 768, 18], device cuda), data files beside it.
    template = (Path(__file__).parents[1] / "data" / "template_config.yaml").read_text()
    (tmp_path / "dataset").mkdir()
    for name in ("train", "validation", "test"):
        (tmp_path / "dataset" / f"{name}.txt").write_text("x = 1\n $x$ correct\n$$$\n")
    (tmp_path / "template_config.yaml").write_text(template)
    data = yaml.safe_load(configs.load(tmp_path / "template_config.yaml", cwd=tmp_path, gpus=1).rewritten_text)
    assert data["CONFIG"]["device"] == "cuda"
    assert data["MODEL"]["classification_head"]["arg"] == [1, 768, 18]
    with pytest.raises(CesresError, match="no GPU"):
        configs.load(tmp_path / "template_config.yaml", cwd=tmp_path, gpus=0)


def _spec(tmp_path=None, **changes):
    run_config = configs.load(MINI / "configs" / "demo.yaml", cwd=MINI)
    res = Resources(partition="gpu", gpus=1, cpus_per_task=1, time="00:30:00")
    fields = {"cluster": "sandbox", "name": "demo", "config": run_config, "resources": res}
    fields.update(changes)
    return spec.RunSpec(**fields)


def test_spec_hash_is_stable_and_follows_every_input():
    base = _spec().spec_hash()
    assert base == _spec().spec_hash()
    res = Resources(partition="gpu", gpus=2, cpus_per_task=1, time="00:30:00")
    assert _spec(resources=res).spec_hash() != base
    other = configs.load(MINI / "configs" / "demo.yaml", cwd=MINI, options={"loops": 4})
    assert _spec(config=other).spec_hash() != base
    assert _spec(nonce="abc").spec_hash() != base
    assert _spec(settings=(("root", "~/other"),)).spec_hash() != base


def test_extravars_carry_the_config_as_base64_and_refuse_template_text():
    variables = _spec().extravars()
    text = base64.b64decode(variables["cesres_job_config_b64"]).decode()
    assert "serialization_dir: cesres_run/results" in text
    train = MINI / "data" / "train.txt"
    assert variables["cesres_job_inputs"][0] == {
        "name": "training.txt",
        "src": str(train),
        "sha256": hashlib.sha256(train.read_bytes()).hexdigest(),
    }
    assert variables["cesres_job_partition"] == "gpu" and variables["cesres_job_gpus"] == 1
    with pytest.raises(CesresError, match="template"):
        _spec(name="{{ lookup('pipe', 'id') }}").extravars()


def test_train_reads_its_outcome_from_the_playbooks_facts_and_keeps_its_links_private(tmp_path, monkeypatch):
    monkeypatch.setenv("XDG_STATE_HOME", str(tmp_path / "state"))
    monkeypatch.setattr(tempfile, "tempdir", str(tmp_path))
    seen = []

    def fake_run_playbook(playbook, *, extravars, **kwargs):
        staged = Path(extravars["cesres_job_inputs"][0]["src"]).parent
        seen.append((staged.parent, staged.parent.stat().st_mode & 0o777))
        outcome = {"run_id": "demo-1", "job_id": "42", "run_dir": "~/r", "submitted": True}
        hosts = {"sandbox": HostStats(1, 0, 0, 0, 0, 0, 0)}
        facts = {"sandbox": {"cesres_job_outcome": outcome}}
        return PlaybookResult("successful", 0, hosts, tmp_path / "x.log", None, facts=facts)

    monkeypatch.setattr(submit, "run_playbook", fake_run_playbook)
    prepared = submit.Prepared(cluster=load_cluster("sandbox"), spec=_spec())
    outcome = submit.submit(prepared, quiet=True, registry=Registry(tmp_path / "runs.sqlite"))
    assert (outcome.run.job_id, outcome.submitted) == ("42", True)
    [(private_dir, mode)] = seen
    assert private_dir.parent == tmp_path / "state" / "cesres-ctl" / "runner"
    assert mode == 0o700
    assert not private_dir.exists()


def test_train_without_an_outcome_fact_is_one_line_and_records_nothing(tmp_path, monkeypatch):
    monkeypatch.setenv("XDG_STATE_HOME", str(tmp_path / "state"))

    def fake_run_playbook(playbook, *, extravars, **kwargs):
        hosts = {"sandbox": HostStats(3, 0, 0, 0, 0, 0, 0)}
        return PlaybookResult("successful", 0, hosts, tmp_path / "x.log", None)

    monkeypatch.setattr(submit, "run_playbook", fake_run_playbook)
    prepared = submit.Prepared(cluster=load_cluster("sandbox"), spec=_spec())
    registry = Registry(tmp_path / "runs.sqlite")
    with pytest.raises(CesresError, match="reported no job"):
        submit.submit(prepared, quiet=True, registry=registry)
    assert registry.list() == []


def test_settings_only_for_cluster_paths():
    assert spec.parse_settings(["root=~/x", "cesres_job_venv=$GLOBALSCRATCH/env"]) == (
        ("root", "~/x"),
        ("venv", "$GLOBALSCRATCH/env"),
    )
    for bad in ("partition=gpu", "root", "root="):
        with pytest.raises(CesresError):
            spec.parse_settings([bad])


SEP = "@@cesres@@\n"
NOACCT = "@@no-accounting@@\n"


@pytest.mark.parametrize(
    ("output", "expected"),
    [
        ("RUNNING|None|1:02|30:00\n" + SEP + "RUNNING|0:0|00:01:02|00:30:00|None\n" + SEP, ("RUNNING", "", "")),
        ("PENDING|Resources|0:00|30:00\n" + SEP + SEP, ("PENDING", "Resources", "")),
        (SEP + "FAILED|2:0|00:00:03|00:30:00|None\n" + SEP + "2\n", ("FAILED", "", "2")),
        (SEP + "CANCELLED by 1001|0:15|00:00:09|01:00:00|None\n" + SEP, ("CANCELLED", "", "0:15")),
        # A stopped job: the model's code as the job script recorded it, never a bare 0 from sacct.
        (SEP + "TIMEOUT|0:0|00:01:14|00:01:00|None\n" + SEP, ("TIMEOUT", "", "")),
        (SEP + "TIMEOUT|0:0|00:01:14|00:01:00|None\n" + SEP + "1\n", ("TIMEOUT", "", "1")),
        (SEP + "CANCELLED by 0|0:0|00:00:09|01:00:00|None\n" + SEP + "143\n", ("CANCELLED", "", "143")),
        ("TIMEOUT|None|1:14|1:00\n" + SEP + "TIMEOUT|0:0|00:01:14|00:01:00|None\n" + SEP + "1\n", ("TIMEOUT", "", "1")),
        ("COMPLETED|None|0:03|30:00\n" + SEP + "COMPLETED|0:0|00:00:03|00:30:00|None\n" + SEP, ("COMPLETED", "", "0")),
        # No accounting on the cluster (sacct fails): the exit_code file is all there is.
        (SEP + NOACCT + SEP + "0\n", ("COMPLETED", "", "0")),
        (SEP + NOACCT + SEP + "2\n", ("FAILED", "", "2")),
        # Stopped by a signal (scancel, the time limit): only accounting can say which, never final.
        (SEP + NOACCT + SEP + "143\n", ("UNKNOWN", "", "143")),
        # Accounting, no record yet (slurmdbd lags behind the job's end): a model stopped by scancel may
        # exit 1, so only a success is final.
        (SEP + SEP + "1\n", ("UNKNOWN", "", "1")),
        (SEP + SEP + "0\n", ("COMPLETED", "", "0")),
        (SEP + SEP, ("UNKNOWN", "", "")),
    ],
)
def test_status_combines_squeue_sacct_and_the_exit_code_file(output, expected):
    job = remote.parse_status(output)
    assert (job.state, job.reason, job.exit_code) == expected
    assert job.final == (expected[0] in {"FAILED", "CANCELLED", "TIMEOUT", "COMPLETED"})


def test_status_carries_the_log_tail():
    job = remote.parse_status("RUNNING|None|0:05|30:00\n" + SEP + SEP + SEP + "epoch 1/3 loss=0.5\n")
    assert job.log_tail == ("epoch 1/3 loss=0.5",)


def test_sandbox_cluster_from_the_inventory():
    cluster = load_cluster("sandbox")
    assert cluster.partitions["gpu"].gpus == 2
    assert cluster.partitions["debug"].max_seconds == 1800
    assert cluster.job_vars["cesres_job_partition"] == "gpu"
    assert cluster.job_vars["cesres_job_gpus"] == 1
    assert cluster.ssh.host == "cesres-sandbox"
    assert cluster.ssh.options[0] == "-F" and cluster.ssh.options[1].endswith("/ssh/ssh_config")
    with pytest.raises(CesresError, match="unknown cluster"):
        load_cluster("nowhere")


def test_ssh_commands_quote_every_remote_word():
    cluster = load_cluster("sandbox")
    argv = remote.ssh_argv(cluster.ssh, ["cat", "/tmp/a b;$(id)"])
    assert argv[-1] == "cat '/tmp/a b;$(id)'"
    assert "BatchMode=yes" in argv
    assert not any("StrictHostKeyChecking" in word for word in argv)


def test_every_model_the_config_names_is_collected(tmp_path):
    assert configs.load(MINI / "configs" / "demo.yaml", cwd=MINI, gpus=1).models == ("Enoch/graphcodebert-py",)
    text = (MINI / "configs" / "demo.yaml").read_text()
    assert 'arg: [ "Enoch/graphcodebert-py" ]' in text and '"Enoch/graphcodebert-py"       # loaded' in text
    other = text.replace('arg: [ "Enoch/graphcodebert-py" ]', 'arg: [ "org/pooler-model" ]')
    other = other.replace('"Enoch/graphcodebert-py"       # loaded', '"org/vocab-model"  # loaded', 1)
    other = other.replace("CONFIG:\n", 'CONFIG:\n    model: "org/config-model"\n', 1)
    cfg = tmp_path / "c.yaml"
    cfg.write_text(other.replace('"data/', f'"{MINI}/data/'))
    models = configs.load(cfg, cwd=MINI, gpus=1).models
    assert set(models) == {"Enoch/graphcodebert-py", "org/pooler-model", "org/vocab-model", "org/config-model"}
    cfg.write_text(other.replace("org/pooler-model", "bad id; rm -rf ~").replace('"data/', f'"{MINI}/data/'))
    with pytest.raises(CesresError, match=r"MODEL.encoder.arg\[0\] must be a Hugging Face model id"):
        configs.load(cfg, cwd=MINI, gpus=1)


def test_statuses_of_several_runs_come_from_one_squeue_and_one_sacct():
    runs = [Run("c", f"{n}-1", n, job, f"/x/{n}", "t", "PENDING") for n, job in (("a", "4"), ("b", "5"), ("c", "77"))]
    command = remote.statuses_command(runs)
    assert command.count("squeue ") == 1 and command.count("sacct ") == 1 and "-j 4,5,77" in command
    output = (
        "4|RUNNING|None|1:00|5:00\n" + SEP + "4|RUNNING|0:0|00:01:00|00:05:00|None\n"
        "5|CANCELLED by 1001|0:15|00:00:20|00:05:00|None\n"
        + SEP
        + "/x/a/exit_code|\n/x/b/exit_code|143\n/x/c/exit_code|\n"
    )
    found = {
        run_id: (job.state, job.exit_code, job.source) for run_id, job in remote.parse_statuses(output, runs).items()
    }
    assert found == {"a-1": ("RUNNING", "", "squeue"), "b-1": ("CANCELLED", "143", "sacct"), "c-1": ("UNKNOWN", "", "")}


def test_train_wait_backs_off_while_nothing_changes_and_starts_again_on_a_change():
    from cesres_ctl.runs.train_commands import MAX_POLL, next_poll

    delays, delay = [], 0.0
    for _ in range(12):
        delay = next_poll(delay, state_changed=False)
        delays.append(delay)
    assert delays[:4] == [1.0, 1.5, 2.25, 3.375]
    assert delays == sorted(delays) and delays[-1] == MAX_POLL == 30.0
    assert next_poll(MAX_POLL, state_changed=True) == 1.0


def test_a_cluster_is_kept_until_its_sources_change(tmp_path, monkeypatch):
    from cesres_ctl.runs import cluster as clusters

    monkeypatch.setenv("XDG_STATE_HOME", str(tmp_path / "state"))
    monkeypatch.setenv("CESRES_CTL_CONFIG", str(tmp_path / "config.yml"))
    loads = []
    real_load = clusters.load_from_inventory

    def counting_load(name):
        loads.append(name)
        return real_load(name)

    def load(name):
        clusters.load.cache_clear()  # each cesres-ctl command is a process of its own
        return clusters.load(name)

    monkeypatch.setattr(clusters, "load_from_inventory", counting_load)
    first = load("sandbox")
    again = load("sandbox")
    assert again == first == real_load("sandbox") and loads == ["sandbox"]
    # The user's settings change (another host): the inventory is read again.
    (tmp_path / "config.yml").write_text("clusters:\n  sandbox:\n    ansible_host: elsewhere\n")
    load("sandbox")
    assert len(loads) == 2
    # So does the environment the inventory reads (the sandbox's root).
    monkeypatch.setenv("CESRES_SANDBOX_ROOT", str(tmp_path / "other-sandbox"))
    load("sandbox")
    load("sandbox")
    assert len(loads) == 3
    clusters.load.cache_clear()


@pytest.mark.parametrize(
    "damage",
    [
        lambda entry: entry["ssh"].update(options="-F x"),
        lambda entry: entry["ssh"].update(port="22"),
        lambda entry: entry["ssh"].update(host=None),
        lambda entry: entry.update(ssh=[]),
        lambda entry: entry.update(job_vars=None),
        lambda entry: entry["job_vars"].update(cesres_job_partitions=["gpu"]),
        lambda entry: entry["job_vars"].update(cesres_job_partitions={"gpu": "x"}),
        lambda entry: entry["job_vars"].update(cesres_job_partitions={"gpu": {"max_time": "soon"}}),
        lambda entry: entry["job_vars"].update(cesres_job_partitions={"gpu": {"gpus": "two"}}),
    ],
)
def test_a_cluster_cache_entry_of_another_shape_is_read_again(tmp_path, monkeypatch, damage):
    """Issue 18: a wrong-type entry in clusters.json was a traceback in every command."""
    import json

    from cesres_ctl.runs import cluster as clusters

    monkeypatch.setenv("XDG_STATE_HOME", str(tmp_path / "state"))
    monkeypatch.setenv("CESRES_CTL_CONFIG", str(tmp_path / "config.yml"))
    clusters.load.cache_clear()
    right = clusters.load("sandbox")
    cache = tmp_path / "state" / "cesres-ctl" / clusters.CACHE_NAME
    entries = json.loads(cache.read_text())
    for entry in entries.values():
        damage(entry)
    cache.write_text(json.dumps(entries))
    clusters.load.cache_clear()
    assert clusters.load("sandbox") == right
    clusters.load.cache_clear()
