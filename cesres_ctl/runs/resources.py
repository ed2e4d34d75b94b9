"""Slurm resources of a run: defaults from the cluster's group_vars, overrides from the command line,
and the checks made before anything is sent to the cluster (EnforcePartLimits would refuse the job,
or worse, a site without it would leave it pending forever)."""

from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass, field
from typing import Any

from cesres_ctl.errors import CesresError
from cesres_ctl.rules import (
    Partition,
    check_extra_sbatch,
    check_fit,
    check_mem,
    check_slurm_word,
    choose_partition,
    format_seconds,
    slurm_seconds,
)
from cesres_ctl.rules import signal_grace as copy_back_grace

SIGNAL_GRACE_DEFAULT = 300


@dataclass(frozen=True)
class Resources:
    partition: str
    gpus: int
    cpus_per_task: int
    time: str  # canonical D-HH:MM:SS / HH:MM:SS
    nodes: int = 1
    ntasks: int = 1
    mem: str = ""
    account: str = ""
    qos: str = ""
    mail_user: str = ""
    mail_type: str = ""
    extra_sbatch: tuple[str, ...] = field(default_factory=tuple)
    signal_grace: int = SIGNAL_GRACE_DEFAULT

    def to_dict(self) -> dict[str, Any]:
        data = asdict(self)
        data["extra_sbatch"] = list(self.extra_sbatch)
        return data

    def extravars(self) -> dict[str, Any]:
        """The role's inputs for these resources."""
        return {f"cesres_job_{key}": value for key, value in self.to_dict().items()}


def _int(value: object, what: str, minimum: int = 0) -> int:
    try:
        number = int(str(value).strip())
    except ValueError:
        raise CesresError(f"{what} must be a whole number, got {value!r}") from None
    if number < minimum:
        raise CesresError(f"{what} must be at least {minimum}, got {number}")
    return number


def _text(value: object) -> str:
    return "" if value is None else str(value).strip()


def resolve(
    partitions: Mapping[str, Partition],
    defaults: Mapping[str, Any],
    overrides: Mapping[str, Any],
    *,
    cluster: str,
) -> Resources:
    """Merge the cluster's job defaults (`cesres_job_*` without the prefix) with the command line's
    overrides (None = not given) and check the result against the partition's limits."""
    given = {key: value for key, value in overrides.items() if value is not None}
    merged = {**defaults, **given}
    if not partitions:
        raise CesresError(
            f"cluster {cluster} has no partitions (cesres_cluster_partitions): "
            f"`cesres-ctl doctor -C {cluster} --save-facts` reads them from its Slurm"
        )
    partition = choose_partition(partitions, str(merged.get("partition") or ""))
    # --partition batch without --gpus: the cluster's default GPU count was meant for its gpu partition.
    part = partitions.get(partition)
    keep_default_gpus = "gpus" in given or "partition" not in given or (part is not None and part.gpus > 0)
    gpus = _int(merged.get("gpus", 0), "gpus") if keep_default_gpus else 0
    seconds = slurm_seconds(str(merged.get("time") or "01:00:00"))
    check_fit(partitions, partition, gpus, seconds, cluster=cluster)
    mem = check_mem(merged.get("mem"))
    extra = merged.get("extra_sbatch") or ()
    if isinstance(extra, str):
        extra = (extra,)
    # One parser for every extra line (rules.check_extra_sbatch): sbatch's own reading of it, abbreviations too.
    extra_lines = tuple(
        check_extra_sbatch(line, partition=partitions[partition], gpus=gpus, seconds=seconds, cluster=cluster)
        for line in extra
    )
    grace = _int(merged.get("signal_grace", SIGNAL_GRACE_DEFAULT), "signal grace", minimum=1)
    return Resources(
        partition=partition,
        gpus=gpus,
        cpus_per_task=_int(merged.get("cpus_per_task", 1), "cpus per task", minimum=1),
        time=format_seconds(seconds),
        nodes=_one(merged.get("nodes", 1), "nodes"),
        ntasks=_one(merged.get("ntasks", 1), "ntasks"),
        mem=mem,
        account=check_slurm_word(_text(merged.get("account")), "account"),
        qos=check_slurm_word(_text(merged.get("qos")), "qos"),
        mail_user=check_slurm_word(_text(merged.get("mail_user")), "mail address"),
        mail_type=check_slurm_word(_text(merged.get("mail_type")), "mail type") if merged.get("mail_user") else "",
        extra_sbatch=extra_lines,
        signal_grace=copy_back_grace(grace, seconds),
    )


def defaults_from_vars(job_vars: Mapping[str, Any], keys: Sequence[str]) -> dict[str, Any]:
    """`cesres_job_<key>` values of the templated role defaults + group_vars, keyed without the prefix."""
    return {key: job_vars[f"cesres_job_{key}"] for key in keys if f"cesres_job_{key}" in job_vars}


RESOURCE_KEYS = (
    "partition",
    "gpus",
    "cpus_per_task",
    "time",
    "nodes",
    "ntasks",
    "mem",
    "account",
    "qos",
    "mail_user",
    "mail_type",
    "extra_sbatch",
    "signal_grace",
)


def _one(value: object, what: str) -> int:
    """CESReS is one process: N tasks would each train the model and write the same results."""
    if _int(value, what, minimum=1) != 1:
        raise CesresError(f"{what} must be 1: CESReS runs as one process (its threads use --cpus), got {value}")
    return 1
