"""``cesres-ctl doctor``: is this cluster ready for ``setup``? One playbook (playbooks/doctor.yml), a table of checks.

Its tasks reach the cluster by Ansible's ``raw`` module only: it needs no Python on the cluster, so the doctor also
works where the login node's Python is too old for ansible-core 2.19 (and says so).
"""

import shlex
from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass, field
from typing import TYPE_CHECKING, Any

from cesres_ctl import rules
from cesres_ctl.console import note
from cesres_ctl.errors import CesresError, ExitCode
from cesres_ctl.inventory import Inventory
from cesres_ctl.provision import facts
from cesres_ctl.provision.facts import PartitionFacts

if TYPE_CHECKING:
    from cesres_ctl.runner import PlaybookResult

MIN_FREE_GIB = 2.0
# Its checks, by the raw module only: playbooks/files/doctor.sh's lines (the fact cesres_doctor_output) and
# roles/cesres_python's probe, the script of setup's first step, in its mode check (the fact cesres_python_check).
PLAYBOOK = "playbooks/doctor.yml"

HINTS = {
    "reach": "check `SSH` by hand: the CÉCI ssh config (gateway, ProxyJump, IdentityFile) in ~/.ssh/config",
    "python": (
        "cesres-ctl's modules need Python >= 3.10: name a Python module that gives it in cesres_cluster_modules "
        "(group_vars)"
    ),
    "lmod": "this does not look like a CÉCI login node: is ansible_host right?",
    "module": "fix the name in group_vars (cesres_cluster_modules); find it with `module spider NAME` on the cluster",
    "partitions": "Slurm's sinfo is missing from a login shell: is this a login node?",
    "space": "free some space, or move cesres_venv / cesres_root (group_vars/ceci.yml) to $GLOBALSCRATCH",
    "quota": "you are over quota: free space before running setup",
}


@dataclass(frozen=True)
class Check:
    id: str
    status: str  # pass / fail / warn / skip
    detail: str
    hint: str = ""

    @property
    def failed(self) -> bool:
        return self.status == "fail"


def exit_code(checks: Sequence[Check]) -> ExitCode:
    """doctor's exit status: unreachable when ssh did not reach the cluster, failed when a check failed."""
    if any(check.id == "reach" and check.failed for check in checks):
        return ExitCode.UNREACHABLE
    return ExitCode.FAILED if any(check.failed for check in checks) else ExitCode.OK


def parse_checks(stdout: str, probe: Mapping[str, Any], cluster: str) -> list[Check]:
    """The checks of playbooks/files/doctor.sh's lines and of the probe's answer (the fact cesres_python_check)."""
    checks = probe_checks(probe, cluster)
    for line in stdout.splitlines():
        parts = line.rstrip("\r").split("\t", 3)
        if len(parts) != 4 or parts[0] != "CHECK":
            continue
        _, check_id, status, detail = parts
        checks.append(_check(check_id, status, detail, cluster))
    order = {"python": 0, "lmod": 1, "module": 2}
    return sorted(checks, key=lambda check: order.get(check.id.split(":", 1)[0], 3))


def _check(check_id: str, status: str, detail: str, cluster: str) -> Check:
    hint = HINTS.get(check_id.split(":", 1)[0], "") if status == "fail" else ""
    return Check(check_id, status, detail, hint.replace("CLUSTER", cluster))


def probe_checks(probe: Mapping[str, Any], cluster: str) -> list[Check]:
    """The python, lmod and module checks from roles/cesres_python's probe (entry point check: files/probe.sh)."""
    checks = []
    if probe.get("failed"):
        message = str(probe.get("msg", ""))
        checks.append(_check("python", "fail", message, cluster))
        if "module command is not defined" in message:
            return [*checks, _check("lmod", "fail", "module is not defined in a login shell", cluster)]
    else:
        checks.append(
            _check(
                "python",
                "pass",
                f"Ansible runs with python3 {probe.get('version')} of module {probe.get('module') or '(none)'}"
                f" ({probe.get('interpreter')}); the login node's python3 is {probe.get('system')}",
                cluster,
            )
        )
    release, missing = str(probe.get("checked_release", "")), set(probe.get("missing") or [])
    names = [str(name) for name in probe.get("checked") or []]
    if release in missing:
        checks.append(_check(f"module:{release}", "fail", "cannot be loaded", cluster))
        checks += [_check(f"module:{m}", "fail", f"not checked: {release} does not load", cluster) for m in names]
    else:
        checks.append(_check(f"module:{release}", "pass", "loads", cluster))
        checks += [
            _check(f"module:{m}", "fail", f"not available in {release}", cluster)
            if m in missing
            else _check(f"module:{m}", "pass", "available", cluster)
            for m in names
        ]
    return checks


def run_checks(cluster: str, *, sources: Sequence[str]) -> "PlaybookResult":
    """playbooks/doctor.yml on `cluster`; its facts carry the checks' answers, its failure why there are none."""
    from cesres_ctl.runner import run_playbook  # ansible-runner: only when doctor runs

    extravars = {"cesres_doctor_min_free_gib": str(MIN_FREE_GIB), "cesres_doctor_sinfo_format": facts.SINFO_FORMAT}
    result = run_playbook(PLAYBOOK, limit=cluster, extravars=extravars, inventory=list(sources), quiet=True)
    if result.exit_code == ExitCode.INTERRUPTED:
        raise CesresError(f"doctor interrupted while waiting for {cluster}", exit_code=ExitCode.INTERRUPTED)
    return result


@dataclass(frozen=True)
class Diagnosis:
    checks: list[Check]
    # The partitions as Slurm states them (None: not read) and those cesres-ctl enforces for the cluster.
    facts: dict[str, PartitionFacts] | None = None
    enforced: dict[str, rules.Partition] = field(default_factory=dict)


def diagnose(cluster: str, *, inventory: Inventory | None = None) -> Diagnosis:
    inventory = inventory or Inventory()
    resolved, _ = inventory.resolve(cluster, {}, [*rules.SSH_VARIABLES, "cesres_cluster_partitions"])
    # The ssh settings as Ansible uses them (templated: the sandbox's config file comes from the environment).
    target = rules.ssh_target(resolved, cluster)
    where = target.host
    ssh = shlex.join([*target.argv(), where])
    # A hung gateway keeps ssh waiting until its connection timeout: say what the wait is for.
    note(f"doctor {cluster}: waiting for `{ssh}` and the checks in its login shell (Lmod, sinfo, df, quota)…")
    result = run_checks(cluster, sources=inventory.sources)
    if result.exit_code == ExitCode.UNREACHABLE:
        # The runner explained ssh's failure already (asking ssh directly when Ansible's message does not say).
        detail = result.failure or f"{where}: unreachable"
        return Diagnosis([Check("reach", "fail", detail, HINTS["reach"].replace("SSH", ssh))])
    reach = Check("reach", "pass", f"ssh {where} answers")
    found_facts = result.facts.get(cluster, {})
    if "cesres_doctor_output" not in found_facts:
        detail = result.failure or f"no output (log: {result.log_path})"
        failed = Check("script", "fail", f"the checks did not run: {detail}", "is bash the login shell?")
        return Diagnosis([reach, failed])
    stdout = str(found_facts["cesres_doctor_output"])
    probe = found_facts.get("cesres_python_check")
    if not isinstance(probe, Mapping):
        probe = {"failed": True, "msg": f"the probe did not run: {result.failure or 'no answer'}"}
    enforced = rules.parse_partitions(resolved.get("cesres_cluster_partitions"))
    checks = [reach, *parse_checks(stdout, probe, cluster)]
    try:
        found = facts.read(stdout)
    except rules.RuleError as exc:  # sinfo printed an error, or another format
        found = None
        checks.append(Check("partitions", "fail", str(exc)))
    if found is not None:
        checks += partition_checks(found, enforced, cluster)
    return Diagnosis([*checks, space_of_runs(cluster)], found, enforced)


def partition_checks(
    found: Mapping[str, PartitionFacts], enforced: Mapping[str, rules.Partition], cluster: str
) -> list[Check]:
    """One check per partition: cesres-ctl's that Slurm lacks or has down fail (train would submit there), a
    difference in limits, GPUs or the default one is a warning (train refuses or allows by cesres-ctl's facts)."""
    save = f"cesres-ctl doctor -C {cluster} --save-facts"
    checks = []
    for name, part in enforced.items():
        facts_of = found.get(name)
        if facts_of is None:
            checks.append(Check(f"partition:{name}", "fail", "not in sinfo", f"{save} (the cluster's partitions)"))
        elif facts_of.state != "up":
            checks.append(Check(f"partition:{name}", "fail", f"state {facts_of.state}", ""))
        elif differs := facts.differences(facts_of, part):
            detail = f"{facts_of.describe()}; differs: {'; '.join(differs)}"
            checks.append(Check(f"partition:{name}", "warn", detail, f"{save} (train then follows the cluster)"))
        else:
            checks.append(Check(f"partition:{name}", "pass", facts_of.describe()))
    for name, facts_of in found.items():
        if name not in enforced:
            detail = f"{facts_of.describe()}; not among cesres-ctl's partitions of {cluster}"
            checks.append(Check(f"partition:{name}", "warn", detail, f"{save} (train may use it then)"))
    return checks


def space_of_runs(cluster: str) -> Check:
    """How much the runs and the data store take on the cluster (`cesres-ctl prune` frees it)."""
    from cesres_ctl.runs import prune  # a playbook run: only here, after the raw checks

    note(f"doctor {cluster}: measuring what the runs and the data store take (the prune playbook, in check mode)…")
    try:
        found = prune.usage(cluster)
    except CesresError as exc:
        return Check("runs", "warn", f"not measured: {exc}", "cesres-ctl setup first, then cesres-ctl prune --dry-run")
    return Check("runs", "pass", "; ".join(prune.usage_lines(found)) or "no runs yet")


def checks_as_dicts(checks: Sequence[Check]) -> list[dict[str, Any]]:
    return [asdict(check) for check in checks]
