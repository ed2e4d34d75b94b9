"""A cluster's facts as Slurm states them (read by `cesres-ctl doctor`), and where they differ from the facts
cesres-ctl enforces (cesres_cluster_partitions: group_vars, or the user's saved facts).

Pure functions on the text of three commands, which doctor's script prints line by line with a prefix:

- ``SINFO``: ``sinfo -h -o '%P|%a|%l|%G|%D|%c|%m'``: partition (``*`` marks the default one), availability,
  time limit (``infinite`` when none), GRES per node (``gpu:2``, ``gpu:a100:4(S:0-1)``, ``(null)``), nodes, CPUs
  and memory (MB) per node; one line per group of alike nodes, so a partition may have several.
- ``PARTITION``: ``scontrol -o show partition``: one line of KEY=VALUE per partition (DefMemPerCPU, DefMemPerNode).
- ``CONFIG``: ``scontrol show config``'s DefMemPerCPU/DefMemPerNode lines (``DefMemPerCPU = 1000``), the
  cluster-wide default memory that a partition without its own inherits.
"""

import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, replace
from typing import Any

from cesres_ctl.rules import Partition, RuleError, format_seconds, slurm_seconds

SINFO_FORMAT = "%P|%a|%l|%G|%D|%c|%m"
# Parenthesised socket bindings of a GRES ("gpu:2(S:0,1)"): their commas are not a list's.
_BINDING = re.compile(r"\([^)]*\)")
_UNSET = ("", "UNLIMITED", "0", "NONE", "N/A")


@dataclass(frozen=True)
class PartitionFacts:
    name: str
    state: str  # up, down, drain, inact
    max_seconds: int | None  # None: infinite
    gpus: int  # per node, the most of any node
    nodes: int
    cpus: int  # per node, the most of any node
    memory_mb: int  # per node, the most of any node
    default: bool
    default_mem: str = ""  # "1000M per CPU", "16000M per node", "" when Slurm sets none

    @property
    def time_limit(self) -> str:
        return "infinite" if self.max_seconds is None else format_seconds(self.max_seconds)

    def describe(self) -> str:
        memory = f"default memory {self.default_mem}" if self.default_mem else "no default memory"
        return (
            f"{self.state}, time limit {self.time_limit}, {self.gpus} GPU(s) per node, {self.nodes} node(s) of "
            f"{self.cpus} CPUs and {self.memory_mb} MB, {memory}"
        )


def gpus_of(gres: str) -> int:
    """GPUs per node in sinfo's %G: the counts of every gpu entry (typed or not) summed; 0 for (null)."""
    total = 0
    for item in _BINDING.sub("", gres).split(","):
        parts = item.strip().split(":")
        if parts[0] != "gpu":
            continue
        count = parts[-1] if len(parts) > 1 else "1"
        total += int(count) if count.isdigit() else 1  # "gpu:a100": one of that type
    return total


def _number(text: str) -> int:
    """sinfo's counts: "8", "8+" (nodes of that line differ: the least of them and more)."""
    digits = text.strip().rstrip("+")
    return int(digits) if digits.isdigit() else 0


def parse_sinfo(lines: Iterable[str]) -> dict[str, PartitionFacts]:
    """Partitions from the lines of `sinfo -h -o SINFO_FORMAT`, in sinfo's order; RuleError on another format."""
    found: dict[str, PartitionFacts] = {}
    for line in lines:
        if not line.strip():
            continue
        fields = line.strip().split("|")
        if len(fields) != 7:
            raise RuleError(f"sinfo printed {line.strip()[:80]!r}, not the fields of -o '{SINFO_FORMAT}'")
        raw_name, state, limit, gres, nodes, cpus, memory = fields
        name = raw_name.rstrip("*")
        try:
            seconds = None if limit in ("infinite", "UNLIMITED", "n/a") else slurm_seconds(limit)
        except RuleError:
            raise RuleError(f"sinfo's time limit {limit!r} of partition {name} is not a Slurm time") from None
        facts = PartitionFacts(
            name, state, seconds, gpus_of(gres), _number(nodes), _number(cpus), _number(memory), raw_name.endswith("*")
        )
        known = found.get(name)
        if known is not None:  # another group of nodes of the same partition
            facts = replace(
                known,
                gpus=max(known.gpus, facts.gpus),
                nodes=known.nodes + facts.nodes,
                cpus=max(known.cpus, facts.cpus),
                memory_mb=max(known.memory_mb, facts.memory_mb),
            )
        found[name] = facts
    return found


def _default_mem(values: Mapping[str, str]) -> str:
    for key, unit in (("DefMemPerCPU", "per CPU"), ("DefMemPerNode", "per node")):
        value = values.get(key, "").strip()
        if value not in _UNSET:
            return f"{value}M {unit}" if value.isdigit() else f"{value} {unit}"
    return ""


def parse_scontrol_partitions(lines: Iterable[str]) -> dict[str, str]:
    """Each partition's own default memory from `scontrol -o show partition` ("" where it sets none)."""
    found: dict[str, str] = {}
    for line in lines:
        values = dict(word.split("=", 1) for word in line.split() if "=" in word)
        if "PartitionName" in values:
            found[values["PartitionName"]] = _default_mem(values)
    return found


def parse_scontrol_config(lines: Iterable[str]) -> str:
    """The cluster-wide default memory from `scontrol show config`'s lines ("KEY = VALUE")."""
    values = {}
    for line in lines:
        key, equals, value = line.partition("=")
        if equals:
            values[key.strip()] = value.strip()
    return _default_mem(values)


def read(stdout: str) -> dict[str, PartitionFacts] | None:
    """The partitions from doctor's output (its SINFO, PARTITION and CONFIG lines); None without sinfo's."""
    sections: dict[str, list[str]] = {"SINFO": [], "PARTITION": [], "CONFIG": []}
    for line in stdout.splitlines():
        prefix, tab, rest = line.rstrip("\r").partition("\t")
        if tab and prefix in sections:
            sections[prefix].append(rest)
    if not sections["SINFO"]:
        return None
    partitions = parse_sinfo(sections["SINFO"])
    own = parse_scontrol_partitions(sections["PARTITION"])
    cluster_wide = parse_scontrol_config(sections["CONFIG"])
    return {name: replace(facts, default_mem=own.get(name) or cluster_wide) for name, facts in partitions.items()}


def differences(facts: PartitionFacts, enforced: Partition) -> list[str]:
    """What Slurm says of a partition that cesres-ctl's facts do not (each: the cluster's, then cesres-ctl's)."""
    found = []
    if facts.max_seconds is not None and facts.max_seconds != enforced.max_seconds:
        found.append(f"time limit {facts.time_limit} (cesres-ctl: {format_seconds(enforced.max_seconds)})")
    if facts.gpus != enforced.gpus:
        found.append(f"{facts.gpus} GPU(s) per node (cesres-ctl: {enforced.gpus})")
    if facts.default != enforced.default:
        found.append(
            f"{'the' if facts.default else 'not the'} default partition "
            f"(cesres-ctl: {'the default' if enforced.default else 'not the default'})"
        )
    return found


def as_setting(found: Mapping[str, PartitionFacts], enforced: Mapping[str, Partition]) -> dict[str, Any]:
    """cesres_cluster_partitions from the cluster's facts, as the user's configuration keeps them: an infinite
    limit is left out (rules.DEFAULT_MAX_TIME applies), max_jobs (a QOS limit, not in sinfo) kept from before."""
    setting: dict[str, Any] = {}
    for name, facts in found.items():
        entry: dict[str, Any] = {"gpus": facts.gpus, "default": facts.default}
        if facts.max_seconds is not None:
            entry["max_time"] = format_seconds(facts.max_seconds)
        if name in enforced and enforced[name].max_jobs:
            entry["max_jobs"] = enforced[name].max_jobs
        setting[name] = entry
    return setting
