"""--sbatch (cesres_job_extra_sbatch): one parser, rules.check_extra_sbatch, that reads an option as sbatch's
getopt_long does (an unambiguous prefix is that option), refuses those cesres-ctl sets or that break what it
knows of the job, and checks the rest against the run; the CLI and the role both apply it."""

import pytest

from cesres_ctl import rules
from cesres_ctl.errors import CesresError
from cesres_ctl.runs.cluster import load as load_cluster
from cesres_ctl.runs.resources import resolve
from tests.unit.test_rules import JOB, filters

PARTITIONS = rules.parse_partitions(
    {"batch": {"max_time": "5-00:00:00", "default": True}, "gpu": {"gpus": 2}, "debug": {"max_time": "00:30:00"}}
)


def _resolve(*lines, **overrides):
    return resolve(PARTITIONS, {"time": "01:00:00"}, {**overrides, "extra_sbatch": list(lines)}, cluster="c")


@pytest.mark.parametrize(
    ("line", "message"),
    [
        # Abbreviations of the options cesres-ctl sets are those options, for sbatch as for cesres-ctl.
        ("--parti=debug", r"--parti \(--partition\) is set by cesres-ctl: use --partition"),
        ("--outp=/tmp/x", r"--outp \(--output\) is set by cesres-ctl: use nothing: the job's log"),
        ("--out=/tmp/x", r"--out \(--output\)"),
        ("--part=debug", r"--part \(--partition\)"),
        ("--job=x", r"--job \(--job-name\)"),
        ("--array=0-2", r"--array \(--array\) is set by cesres-ctl: use cesres-ctl sweep"),
        ("--arr=0-2", r"--arr \(--array\)"),
        ("--gpus-per-node=1", r"--gpus-per-node\) is set by cesres-ctl: use --gpus"),
        ("--gpus-per-n=1", r"--gpus-per-node\)"),
        ("--gres=gpu:1", r"--gres \(--gres\)"),
        ("--mem-per-c=1G", r"--mem-per-cpu\) is set by cesres-ctl: use --mem"),
        ("--nodes=2", r"--nodes\) is set by cesres-ctl: use nothing: CESReS runs as one task"),
        ("--ntasks-per-node=2", r"--ntasks-per-node\)"),
        ("--tasks-per-node=2", r"--tasks-per-node\)"),
        ("--clusters=other", r"--clusters\) is set by cesres-ctl"),
        ("--wait", r"--wait\) is set by cesres-ctl: use nothing: cesres-ctl runs sbatch"),
        ("--test-only", r"--test-only\)"),
        ("--wrap=true", r"--wrap\)"),
        ("--sig=USR1@60", r"--signal\)"),
        ("--chd=/", r"--chdir\)"),
        # What sbatch itself would refuse: an unknown or ambiguous option, a value where none goes or missing.
        ("--foo=1", "--foo is not an option of sbatch"),
        ("--mem-per=1G", "--mem-per is ambiguous for sbatch: --mem-per-cpu, --mem-per-gpu"),
        ("--clust=x", "ambiguous"),
        ("--ti=5", "--ti is ambiguous for sbatch: --time, --time-min"),
        ("--wai", "--wai is ambiguous for sbatch: --wait, --wait-all-nodes"),
        ("--hold=1", "--hold takes no value"),
        ("--constraint", "--constraint needs a value"),
        ("--comment=a b", "must look like --option"),
        ("-p gpu", "must look like --option"),
        # The rest, against the run: GPU options without GPUs, a minimum time over the run's.
        ("--gpu-bind=closest", "--gpu-bind is for GPUs, and partition batch of c has no GPUs"),
        ("--gres-f=disable-binding", "--gres-flags is for GPUs"),
        ("--time-min=02:00:00", r"--time-min=02:00:00 is over the run's time 01:00:00"),
    ],
)
def test_an_extra_option_is_read_as_sbatch_reads_it(line, message):
    with pytest.raises(CesresError, match=message) as info:
        _resolve(line)
    assert "\n" not in str(info.value)


def test_the_rest_is_written_under_its_full_name():
    assert _resolve("#SBATCH --constraint=v100", "--exclusi", "--hol", "--time-min=30").extra_sbatch == (
        "--constraint=v100",
        "--exclusive",
        "--hold",
        "--time-min=30",
    )
    assert _resolve("--gpu-b=closest", partition="gpu", gpus=1).extra_sbatch == ("--gpu-bind=closest",)
    # An option that takes a value optionally, with and without it.
    assert _resolve("--nice", "--exclusive=user").extra_sbatch == ("--nice", "--exclusive=user")


def test_the_role_applies_the_same_parser():
    partitions = {"batch": {"max_time": "5-00:00:00", "default": True}, "gpu": {"gpus": 2}}

    def errors(lines: list[str], partition: str) -> list[str]:
        job = {**JOB, "partitions": partitions, "extra_sbatch": lines}
        return filters()["cesres_job_input_errors"](job, partition, "c")

    assert errors(["--constraint=v100", "--exclusi"], "batch") == []
    assert errors(["--parti=debug", "--gpu-bind=closest"], "batch") == [
        "extra sbatch option --parti (--partition) is set by cesres-ctl: use --partition",
        "extra sbatch option --gpu-bind is for GPUs, and partition batch of c has no GPUs",
    ]
    # A wrong partition is said once, by the fit of the job, not again for each option.
    assert errors(["--parti=debug"], "nope") == ["unknown partition 'nope' on c (partitions: batch, gpu)"]


def test_the_sandbox_cluster_refuses_an_abbreviated_partition_before_anything_is_sent():
    cluster = load_cluster("sandbox")
    with pytest.raises(CesresError, match=r"--parti \(--partition\)"):
        resolve(cluster.partitions, {}, {"partition": "batch", "extra_sbatch": ["--parti=debug"]}, cluster="sandbox")
