"""Filters that the roles share: the rules of the collection's module_utils rules.py, which the CLI applies too.

The roles check a run by themselves when a playbook runs without cesres-ctl, and expand the configured
cluster paths; they must apply the very same rules, so they import them instead of keeping a copy. Ansible
runs them on the controller; the roles name them by their full names (cesres.ctl.cesres_expand_path).
"""

import base64
import hashlib
import json
import shlex
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any

from ansible.errors import AnsibleFilterError
from ansible_collections.cesres.ctl.plugins.module_utils import rules


def _run_name_errors(name: object) -> list[str]:
    """[] for a valid run name; else [the one-line reason]."""
    try:
        rules.check_run_name(str(name))
    except rules.RuleError as exc:
        return [str(exc)]
    return []


def _fit_errors(partitions: Mapping[str, Any], partition: str, gpus: object, time: object, cluster: str) -> list[str]:
    """[] when the partition exists and allows the GPUs and the time; else [the one-line reason]."""
    try:
        parsed = rules.parse_partitions(partitions)
        rules.check_fit(parsed, str(partition), int(str(gpus)), rules.slurm_seconds(time), cluster=cluster)
    except (rules.RuleError, ValueError) as exc:
        return [str(exc)]
    return []


def _sbatch_errors(
    lines: Iterable[object] | None,
    partitions: Mapping[str, Any],
    partition: str,
    gpus: object,
    time: object,
    cluster: str,
) -> list[str]:
    """[] when every extra sbatch option is one sbatch knows, the role does not set, and that fits the run;
    else a one-line reason per refused option (rules.check_extra_sbatch)."""
    try:
        part = rules.parse_partitions(partitions)[str(partition)]
        count, seconds = int(str(gpus)), rules.slurm_seconds(time)
    except (rules.RuleError, ValueError, KeyError):
        return []  # the partition, the GPUs or the time are wrong: _fit_errors says which
    errors = []
    for line in lines or []:
        try:
            rules.check_extra_sbatch(line, partition=part, gpus=count, seconds=seconds, cluster=cluster)
        except rules.RuleError as exc:
            errors.append(str(exc))
    return errors


def cesres_signal_grace(grace: object, time: object) -> int:
    """Seconds before the time limit at which the job copies its results back (rules.signal_grace); a grace
    that is not a number is 0, as Jinja's int makes it, and so at least 1."""
    try:
        seconds = rules.slurm_seconds(time)
    except rules.RuleError as exc:
        raise AnsibleFilterError(str(exc)) from None
    return rules.signal_grace(_int(grace), seconds)


def _int(value: object) -> int:
    """Jinja's int: 0 for what is not a whole number."""
    try:
        return int(str(value).strip())
    except ValueError:
        return 0


WORDS_ERROR = (
    "mem, account, qos and mail must be single words without quotes, spaces or newlines; nodes and ntasks must be 1 "
    "(CESReS is one process)"
)
INPUTS_ERROR = (
    "each of cesres_job_inputs needs a name (training/validation/evaluation/weights[.ext]) and one of src or "
    "cluster_path:"
)


def cesres_job_input_errors(job: Mapping[str, Any], partition: str, cluster: str) -> list[str]:
    """Every reason to refuse roles/cesres_job's inputs, each one line ([] when there is none): the rules that
    cesres-ctl applied already, for a playbook run by hand.

    job: the role's cesres_job_* inputs without the prefix; partition: the chosen one (cesres_choose_partition).
    """
    errors = []
    if not (rules.is_spec_hash(str(job.get("spec_hash", ""))) and str(job.get("config_b64", ""))):
        errors.append("cesres_job_spec_hash (hex digest) and cesres_job_config_b64 (base64 config) are required")
    errors += _run_name_errors(job.get("name"))
    partitions, gpus, time = job.get("partitions") or {}, job.get("gpus"), job.get("time")
    errors += _fit_errors(partitions, partition, gpus, time, cluster)
    mem, words = str(job.get("mem")), [str(job.get(key)) for key in ("account", "qos", "mail_user", "mail_type")]
    if not (
        (mem == "" or rules.is_mem(mem))
        and all(word == "" or rules.is_slurm_word(word) for word in words)
        and _int(job.get("nodes")) == 1
        and _int(job.get("ntasks")) == 1
        and _int(job.get("cpus_per_task")) >= 1
        and _int(job.get("signal_grace")) >= 1
    ):
        errors.append(WORDS_ERROR)
    errors += _sbatch_errors(job.get("extra_sbatch"), partitions, partition, gpus, time, cluster)
    models = list(job.get("models") or [])
    if not all(rules.is_model_id(str(model)) for model in models):
        errors.append(f"cesres_job_models must be Hugging Face model ids (ORG/NAME): {json.dumps(models)}")
    inputs = list(job.get("inputs") or [])
    if not all(
        isinstance(item, Mapping)
        and rules.is_staged_name(item.get("name", ""))
        and (("src" in item) != ("cluster_path" in item))
        for item in inputs
    ):
        errors.append(f"{INPUTS_ERROR} {json.dumps(inputs)}")
    return errors


def cesres_choose_partition(partitions: Mapping[str, Any], asked: str) -> str:
    """The partition asked for, else the cluster's default one (rules.choose_partition)."""
    try:
        return rules.choose_partition(rules.parse_partitions(partitions), str(asked or ""))
    except rules.RuleError as exc:
        raise AnsibleFilterError(str(exc)) from None


def cesres_program_env(_: object = None) -> dict[str, str]:
    """The environment the CESReS program runs with (rules.PROGRAM_ENV), as the job script exports it."""
    return dict(rules.PROGRAM_ENV)


def cesres_repo_source_errors(url: object, version: object) -> list[str]:
    """[] when the repository URL and version may reach git; else [the one-line reason] (rules.check_repo_source)."""
    try:
        rules.check_repo_source(str(url or ""), str(version or ""))
    except rules.RuleError as exc:
        return [str(exc)]
    return []


def cesres_sandbox_root_errors(root: object) -> list[str]:
    """[] when `root` can be the sandbox's root directory; else [the one-line reason] (rules.sandbox_root_error)."""
    error = rules.sandbox_root_error(str(root))
    return [f"sandbox_cluster_root {root!r} {error}"] if error else []


def cesres_expand_path(path: object, env: Mapping[str, str], what: str = "path", relative_to: str = "") -> str:
    """A configured cluster path expanded with the login shell's environment (rules.expand_path).

    env: cesres_login_env, read once per play by the cesres_login role.
    """
    if not env:
        raise AnsibleFilterError(f"{what}: the cluster's login environment is unknown: run the cesres_login role first")
    try:
        return rules.expand_path(str(path), env, what=what, relative_to=relative_to)
    except rules.RuleError as exc:
        raise AnsibleFilterError(str(exc)) from None


def cesres_probe_report(text: object) -> dict[str, Any]:
    """What the play's one login shell (roles/cesres_python, files/probe.sh) read: the JSON object that the
    last line of `text` holding one is ({} when none is), its environments decoded.

    That login shell may print its own messages before the object; with a terminal, lines end in CR LF. Bash
    prints each environment as base64 of `env -0` (any byte is safe so), decoded here into names and values.
    """
    report = _last_json(text)
    if isinstance(report.get("login_env"), str):
        report["login_env"] = _env_from_b64(report["login_env"])
    if isinstance(report.get("module_envs"), dict):
        report["module_envs"] = {key: _env_from_b64(str(value)) for key, value in report["module_envs"].items()}
    return report


def _env_from_b64(text: str) -> dict[str, str]:
    """The environment that `env -0 | base64 -w0` printed, as a mapping."""
    entries = base64.b64decode(text.strip()).decode("utf-8", errors="replace").split("\0")
    return dict(entry.split("=", 1) for entry in entries if "=" in entry)


def _last_json(text: object) -> dict[str, Any]:
    for line in reversed(str(text or "").splitlines()):
        line = line.strip()
        if line.startswith("{"):
            try:
                value = json.loads(line)
            except ValueError:
                continue
            if isinstance(value, dict):
                return value
    return {}


def cesres_sha256_manifest(files: Iterable[object] | None, root: str) -> str:
    """`sha256sum`'s lines for `files` (paths relative to the local directory `root`), in that order.

    roles/cesres_repo records what it pushed with it, and its probe (the module cesres_probe) compares.
    """
    base = Path(str(root)).expanduser()
    lines = []
    for name in files or []:
        if (base / str(name)).is_symlink() or not (base / str(name)).is_file():
            continue  # as rsync --list-only's regular files: links and directories are not recorded
        try:
            digest = hashlib.sha256((base / str(name)).read_bytes()).hexdigest()
        except OSError as exc:
            raise AnsibleFilterError(f"cannot read {base / str(name)}: {exc.strerror}") from None
        lines.append(f"{digest}  {name}\n")
    return "".join(lines)


def cesres_module_env(probe: Mapping[str, Any], modules: Iterable[object] | None, login_env: Mapping[str, str]) -> str:
    """The environment with `modules` loaded (after "module purge"), as the play's one login shell captured it,
    in the form the setup modules take it (their no_log option `env`): base64 of its JSON.

    One opaque value: Ansible masks every value of a no_log option wherever it appears in a result, and an
    environment's short values ("1", a version) would mask the module's messages.
    probe: cesres_python_probe (roles/cesres_python); an empty `modules` is the login shell's own environment.
    """
    names = [str(name) for name in (modules or [])]
    if not names:
        return _encode(login_env or {})
    key = " ".join(names)
    errors = (probe or {}).get("module_errors") or {}
    if key in errors:
        raise AnsibleFilterError(f"{errors[key]} (modules {key})")
    envs = (probe or {}).get("module_envs") or {}
    if key not in envs:
        raise AnsibleFilterError(
            f"the modules {key} were not loaded by the play's login shell: list them in cesres_python_module_sets"
        )
    return _encode(envs[key])


def cesres_probe_envs(probe: Mapping[str, Any]) -> str:
    """What the play's one login shell read, in the form the module cesres_probe takes it (its no_log option
    `envs`, one opaque value as for cesres_module_env): the login environment, which it expands the
    configured paths with, and the environments of the module groups, which each part runs with.

    probe: cesres_python_probe (roles/cesres_python).
    """
    return _encode(
        {
            "login": dict((probe or {}).get("login_env") or {}),
            "modules": dict((probe or {}).get("module_envs") or {}),
            "errors": dict((probe or {}).get("module_errors") or {}),
        }
    )


def cesres_code_digest(root: object) -> str:
    """The digest of the collection's code under `root` (rules.code_digest): a role passes its role_path/../.."""
    try:
        return rules.code_digest(Path(str(root)).resolve())
    except OSError as exc:
        raise AnsibleFilterError(f"cannot read the collection's code under {root}: {exc}") from None


# The login shell's files, which the paths that setup configures are expanded with (~/ is $HOME's).
_LOGIN_FILES = (
    "~/.bash_profile",
    "~/.bash_login",
    "~/.profile",
    "~/.bashrc",
    "/etc/profile",
    "/etc/profile.d",
    "/etc/bashrc",
    "/etc/bash.bashrc",
)


def cesres_unchanged_watch(probe: Mapping[str, Any], repo_set: Iterable[object] | None) -> dict[str, Any]:
    """What roles/cesres_unchanged records of a setup that succeeded, from the play's probe (cesres_python_probe):
    {"paths": the paths whose status changes with what setup provisions, "git": {"path", "ld", "url", "version"}
    or {} (the remote to ask again: a version that is no commit, with the environment of `repo_set`, the modules
    cesres_repo runs git with)}; {} when a part of the probe cannot be watched (a push, the components: rsync
    alone can tell) or was not read, and every setup then runs whole.

    The paths: the Python wrapper, the module files that Lmod loaded (_LMFILES_ of each group), the login
    shell's files, and each part's own ("watch", provision.py).
    """
    probe = probe or {}
    parts = dict(probe.get("probe") or {})
    if not parts or any(not isinstance(part, dict) or "watch" not in part for part in parts.values()):
        return {}
    login_env = probe.get("login_env") or {}
    module_envs = probe.get("module_envs") or {}
    home = str(login_env.get("HOME", ""))
    if not home.startswith("/"):
        return {}
    paths = [str(probe.get("interpreter", ""))]
    for env in module_envs.values():
        paths += [name for name in str(env.get("_LMFILES_", "")).split(":") if name]
    paths += [home + name[1:] if name.startswith("~") else name for name in _LOGIN_FILES]
    for part in parts.values():
        paths += [str(path) for path in part["watch"]]
    git: dict[str, str] = {}
    remote = (parts.get("repo") or {}).get("remote")
    if remote:
        key = " ".join(str(name) for name in (repo_set or []))
        # No modules for git: the login shell's own (as cesres_module_env gives it).
        env = module_envs.get(key) if key else login_env
        if env is None:
            return {}
        git = {
            "path": env.get("PATH", ""),
            "ld": env.get("LD_LIBRARY_PATH", ""),
            "url": str(remote["url"]),
            "version": str(remote["version"]),
        }
    return {"paths": list(dict.fromkeys(path for path in paths if path)), "git": git}


def _encode(value: Mapping[str, Any]) -> str:
    return base64.b64encode(json.dumps(dict(value), sort_keys=True).encode("utf-8")).decode("ascii")


def cesres_rsync_ssh(values: Mapping[str, Any], host: str, control_dir: str = "") -> str:
    """rsync's -e: ssh with the host's connection variables (rules.ssh_target), its key file included.

    values: a mapping of the connection variables (rules.SSH_VARIABLES) as the play sees them.
    control_dir: Ansible's control_path_dir, to go through the play's own master connection.
    """
    return " ".join(shlex.quote(word) for word in rules.ssh_target(values, host).argv(control_dir))


def cesres_ssh_host(values: Mapping[str, Any], host: str) -> str:
    """The host name plain ssh connects to (ansible_host, else the inventory name)."""
    return rules.ssh_target(values, host).host


_CONSTANTS = (
    "RUNS_DIR",
    "STORE_DIR",
    "JOBID_FILE",
    "EXIT_CODE_FILE",
    "RUN_ENV_FILE",
    "RUN_CONFIG_FILE",
    "RUN_INPUTS_DIR",
    "RUN_RESULTS_DIR",
    "RUN_SUBDIR",
    "SCRATCH_RESULTS",
)


def cesres_rule(name: str) -> str:
    """A named constant of the rules (a file or directory name of the run layout): 'RUNS_DIR' | cesres_rule."""
    if name not in _CONSTANTS:
        raise AnsibleFilterError(f"cesres_rule: {name!r} is not one of {', '.join(_CONSTANTS)}")
    return str(getattr(rules, name))


def cesres_with_checksums(inputs: list[dict[str, Any]], stat_results: list[Any]) -> list[dict[str, Any]]:
    """The role's data inputs, each local one ({name, src}) with its sha256: given, or from the results of
    an ansible.builtin.stat loop (checksum_algorithm sha256) over those given without one."""
    sums = {
        result["item"]["name"]: result["stat"]["checksum"]
        for result in stat_results
        if isinstance(result, Mapping) and result.get("stat", {}).get("checksum")
    }
    filled = []
    for item in inputs:
        if "src" in item and "sha256" not in item:
            if item["name"] not in sums:
                raise AnsibleFilterError(f"no checksum of the data file {item['src']}: is it a readable file?")
            item = {**item, "sha256": sums[item["name"]]}
        filled.append(item)
    return filled


class FilterModule:
    def filters(self) -> dict[str, object]:
        return {
            "cesres_choose_partition": cesres_choose_partition,
            "cesres_job_input_errors": cesres_job_input_errors,
            "cesres_signal_grace": cesres_signal_grace,
            "cesres_program_env": cesres_program_env,
            "cesres_repo_source_errors": cesres_repo_source_errors,
            "cesres_sandbox_root_errors": cesres_sandbox_root_errors,
            "cesres_expand_path": cesres_expand_path,
            "cesres_probe_report": cesres_probe_report,
            "cesres_module_env": cesres_module_env,
            "cesres_probe_envs": cesres_probe_envs,
            "cesres_sha256_manifest": cesres_sha256_manifest,
            "cesres_rsync_ssh": cesres_rsync_ssh,
            "cesres_ssh_host": cesres_ssh_host,
            "cesres_with_checksums": cesres_with_checksums,
            "cesres_rule": cesres_rule,
            "cesres_code_digest": cesres_code_digest,
            "cesres_unchanged_watch": cesres_unchanged_watch,
        }
