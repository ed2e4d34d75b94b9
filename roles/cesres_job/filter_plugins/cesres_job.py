"""Filters of the cesres_job role: the rules of cesres_ctl.rules, which the CLI applies too.

The role checks a run by itself when the playbook runs without cesres-ctl; it must apply the very
same rules, so it imports them instead of keeping a copy. Ansible runs on the controller, in the
Python where cesres-ctl is installed; from a checkout without an install, the package is found next to
roles/ (the checkout's root).
"""

import sys
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from ansible.errors import AnsibleFilterError

try:
    from cesres_ctl import rules
except ImportError:  # ansible-playbook from a checkout, with another Python
    sys.path.insert(0, str(Path(__file__).resolve().parents[3]))
    from cesres_ctl import rules


def cesres_slurm_seconds(value: object) -> int:
    """Seconds of a Slurm --time string (rules.slurm_seconds)."""
    try:
        return rules.slurm_seconds(value)
    except rules.RuleError as exc:
        raise AnsibleFilterError(str(exc)) from None


def cesres_fit_errors(partitions: Mapping[str, Any], partition: str, gpus: object, time: object, cluster: str) -> list:
    """[] when the partition exists and allows the GPUs and the time; else [the one-line reason]."""
    try:
        parsed = rules.parse_partitions(partitions)
        rules.check_fit(parsed, str(partition), int(str(gpus)), rules.slurm_seconds(time), cluster=cluster)
    except (rules.RuleError, ValueError) as exc:
        return [str(exc)]
    return []


def cesres_choose_partition(partitions: Mapping[str, Any], asked: str) -> str:
    """The partition asked for, else the cluster's default one (rules.choose_partition)."""
    try:
        return rules.choose_partition(rules.parse_partitions(partitions), str(asked or ""))
    except rules.RuleError as exc:
        raise AnsibleFilterError(str(exc)) from None


def cesres_run_name_errors(name: object) -> list:
    """[] for a valid run name; else [the one-line reason]."""
    try:
        rules.check_run_name(str(name))
    except rules.RuleError as exc:
        return [str(exc)]
    return []


def cesres_run_dir(root: str, run_id: str) -> str:
    return rules.run_dir(root, run_id)


def cesres_resubmit_states(_: object = None) -> list:
    """States whose run `train` submits again (sorted, for a stable job script and argument list)."""
    return sorted(rules.RESUBMIT_STATES)


class FilterModule:
    def filters(self) -> dict[str, object]:
        return {
            "cesres_slurm_seconds": cesres_slurm_seconds,
            "cesres_choose_partition": cesres_choose_partition,
            "cesres_fit_errors": cesres_fit_errors,
            "cesres_run_name_errors": cesres_run_name_errors,
            "cesres_run_dir": cesres_run_dir,
            "cesres_resubmit_states": cesres_resubmit_states,
        }
