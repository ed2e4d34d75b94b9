"""``cesres-ctl doctor``: is this cluster ready for ``setup``? One raw command, a table of checks.

Only Ansible's ``raw`` module is used: it needs no Python on the cluster, so the doctor also works where
the login node's Python is too old for ansible-core 2.19 (and says so).
"""

import json
import os
import shlex
import sys
from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from cesres_ctl import paths, rules, sshdiag, userconfig
from cesres_ctl.console import note
from cesres_ctl.errors import CesresError, ExitCode
from cesres_ctl.inventory import Inventory
from cesres_ctl.provision import facts
from cesres_ctl.provision.facts import PartitionFacts
from cesres_ctl.runs.remote import diagnose_cluster

MIN_FREE_GIB = 2.0
# roles/cesres_python's script, the play's one login shell: which Python runs Ansible's modules on the cluster,
# and whether the release and the modules exist (one check, for setup and doctor).
PROBE = ("roles", "cesres_python", "files", "probe.sh")

# Runs in a login shell (bash -lc), where Lmod's "module" is defined. Prints one line per check:
# CHECK <TAB> id <TAB> pass|fail|warn <TAB> detail, and the probe's JSON as PROBE <TAB> json, which
# parse_checks turns into the python, lmod and module checks; sinfo's and scontrol's lines as SINFO, PARTITION
# and CONFIG <TAB> line, which cesres_ctl.provision.facts reads. Always exits 0: the lines carry the result.
DOCTOR_SCRIPT = r"""
ck() { printf 'CHECK\t%s\t%s\t%s\n' "$1" "$2" "$3"; }
probe=$1 pymodule=$2 release=$3 min_gib=$4 sinfo_format=$5
shift 5
# The Python that Ansible will run with and the modules: roles/cesres_python's probe, by the same script
# (mode check: it writes nothing).
# shellcheck source=/dev/null  # the script is the argument $probe, fed on stdin
out=$(set -- check "$release" "$pymodule" .cesres/python "$release" "$#" "$@"; . /dev/stdin <<<"$probe" 2>&1)
printf 'PROBE\t%s\n' "$(tail -1 <<<"$out")"
if type module >/dev/null 2>&1; then
  ck lmod pass "$(module --version 2>&1 | grep -o 'Version [^ ]*' | head -1)"
fi
# The partitions as Slurm states them, compared in Python (cesres_ctl.provision.facts).
if command -v sinfo >/dev/null 2>&1; then
  sinfo -h -o "$sinfo_format" 2>&1 | awk '{print "SINFO\t" $0}'
  scontrol -o show partition 2>/dev/null | awk '{print "PARTITION\t" $0}'
  scontrol show config 2>/dev/null | awk '/^DefMemPer(CPU|Node) / {print "CONFIG\t" $0}'
else
  ck partitions fail "sinfo not found"
fi
for var in HOME GLOBALSCRATCH; do
  dir=${!var-}
  if [ -z "$dir" ]; then ck "space:\$$var" fail "\$$var is not set in a login shell"; continue; fi
  avail=$(df -Pk "$dir" 2>/dev/null | awk 'NR == 2 {print $4}')
  if [ -z "$avail" ]; then ck "space:\$$var" fail "df $dir failed"; continue; fi
  gib=$(awk -v k="$avail" 'BEGIN {printf "%.1f", k / 1048576}')
  if awk -v g="$gib" -v m="$min_gib" 'BEGIN {exit !(g >= m)}'; then ck "space:\$$var" pass "$gib GiB free in $dir"
  else ck "space:\$$var" fail "$gib GiB free in $dir (less than $min_gib)"; fi
done
if command -v quota >/dev/null 2>&1; then
  q=$(quota -s 2>&1)
  if grep -q '\*' <<<"$q"; then ck quota fail "$(grep '\*' <<<"$q" | head -1 | tr -s ' ')"
  else ck quota pass "$(tail -1 <<<"$q" | tr -s ' ')"; fi
else
  ck quota warn "no quota command on the login node: check the usage with the cluster's own tool"
fi
"""

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


def doctor_command(host_vars: Mapping[str, Any], min_free_gib: float = MIN_FREE_GIB) -> str:
    """The raw command: the script and its arguments, for the cluster's own shell."""
    modules = [*host_vars.get("cesres_cluster_modules", [])]
    git_module = host_vars.get("cesres_cluster_git_module") or ""
    if git_module:
        modules.append(git_module)
    python_module = next(
        (str(m) for m in host_vars.get("cesres_cluster_modules", []) if str(m).startswith("Python/")), ""
    )
    args = [
        paths.collection_dir().joinpath(*PROBE).read_text(encoding="utf-8"),
        python_module,
        str(host_vars.get("cesres_cluster_modules_release", "")),
        str(min_free_gib),
        facts.SINFO_FORMAT,
        *map(str, modules),
    ]
    return shlex.join(["bash", "-lc", DOCTOR_SCRIPT, "cesres-doctor", *args])


def parse_checks(stdout: str, cluster: str) -> list[Check]:
    checks = []
    for line in stdout.splitlines():
        parts = line.rstrip("\r").split("\t", 3)
        if len(parts) == 2 and parts[0] == "PROBE":
            checks.extend(probe_checks(parts[1], cluster))
            continue
        if len(parts) != 4 or parts[0] != "CHECK":
            continue
        _, check_id, status, detail = parts
        checks.append(_check(check_id, status, detail, cluster))
    order = {"python": 0, "lmod": 1, "module": 2}
    return sorted(checks, key=lambda check: order.get(check.id.split(":", 1)[0], 3))


def _check(check_id: str, status: str, detail: str, cluster: str) -> Check:
    hint = HINTS.get(check_id.split(":", 1)[0], "") if status == "fail" else ""
    return Check(check_id, status, detail, hint.replace("CLUSTER", cluster))


def probe_checks(text: str, cluster: str) -> list[Check]:
    """The python, lmod and module checks from roles/cesres_python's probe (files/probe.sh, mode check)."""
    try:
        probe = json.loads(text)
    except ValueError:
        probe = None
    if not isinstance(probe, dict):
        return [_check("python", "fail", f"the probe printed no result: {text.strip()[:200]}", cluster)]
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


def run_raw(
    cluster: str, command: str, *, timeout: int = 120, sources: Sequence[str] | None = None
) -> tuple[str, dict[str, Any]]:
    """Run one raw command on ``cluster`` through ansible-runner; (event name, result) of its outcome.

    sources: the inventory sources (default: the project's, then the user's overlay).
    """
    from cesres_ctl.runner import private_data_dir, python_warnings, run_ansible

    project = paths.project_dir()
    envvars = {
        "ANSIBLE_CONFIG": str(project / "ansible.cfg"),
        "ANSIBLE_HOST_KEY_CHECKING": "True",
        "ANSIBLE_NOCOLOR": "1",
        "PYTHONWARNINGS": python_warnings(),
        "PATH": os.pathsep.join([str(Path(sys.executable).parent), os.environ.get("PATH", os.defpath)]),
    }
    outcome: dict[str, Any] = {}

    def on_event(event: Mapping[str, Any]) -> bool:
        if event.get("event") in ("runner_on_ok", "runner_on_failed", "runner_on_unreachable"):
            outcome["event"] = event["event"]
            outcome["res"] = (event.get("event_data") or {}).get("res") or {}
        return False

    with private_data_dir("doctor") as private_dir:
        runner = run_ansible(
            private_dir,
            envvars=envvars,
            project_dir=str(project),
            inventory=list(sources) if sources is not None else userconfig.inventory_sources(project),
            host_pattern=cluster,
            module="raw",
            module_args=command,
            quiet=True,
            event_handler=on_event,
            timeout=timeout,
        )
    if runner.status == "canceled":  # Ctrl-C: runner's pexpect stopped Ansible
        raise CesresError(f"doctor interrupted while waiting for {cluster}", exit_code=ExitCode.INTERRUPTED)
    if "event" not in outcome:
        raise CesresError(f"doctor: ansible did not run on {cluster} (status {runner.status}, rc {runner.rc})")
    return outcome["event"], outcome["res"]


@dataclass(frozen=True)
class Diagnosis:
    checks: list[Check]
    # The partitions as Slurm states them (None: not read) and those cesres-ctl enforces for the cluster.
    facts: dict[str, PartitionFacts] | None = None
    enforced: dict[str, rules.Partition] = field(default_factory=dict)


def diagnose(cluster: str, *, inventory: Inventory | None = None) -> Diagnosis:
    inventory = inventory or Inventory()
    host_vars = inventory.host_vars(cluster)
    resolved, _ = inventory.resolve(cluster, {}, [*rules.SSH_VARIABLES, "cesres_cluster_partitions"])
    # The ssh settings as Ansible uses them (templated: the sandbox's config file comes from the environment).
    target = rules.ssh_target(resolved, cluster)
    where = target.host
    ssh = shlex.join([*target.argv(), where])
    # A hung gateway keeps ssh waiting until its connection timeout: say what the wait is for.
    note(f"doctor {cluster}: waiting for `{ssh}` and the checks in its login shell (Lmod, sinfo, df, quota)…")
    event, res = run_raw(cluster, doctor_command(host_vars), sources=inventory.sources)
    if event == "runner_on_unreachable":
        message = str(res.get("msg", ""))
        note(f"doctor {cluster}: ssh failed; asking ssh why, with a direct connection…")
        explained = sshdiag.explain(message, where) or diagnose_cluster(cluster)
        detail = explained or f"{where}: {' '.join(message.split())[:200]}"
        return Diagnosis([Check("reach", "fail", detail, HINTS["reach"].replace("SSH", ssh))])
    reach = Check("reach", "pass", f"ssh {where} answers")
    if event == "runner_on_failed":
        detail = " ".join(str(res.get("stderr") or res.get("msg") or "").split())[:200]
        failed = Check("script", "fail", f"the checks did not run: {detail}", "is bash the login shell?")
        return Diagnosis([reach, failed])
    stdout = str(res.get("stdout", ""))
    enforced = rules.parse_partitions(resolved.get("cesres_cluster_partitions"))
    checks = [reach, *parse_checks(stdout, cluster)]
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
