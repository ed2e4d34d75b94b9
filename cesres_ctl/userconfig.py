"""The user's own settings: ``$XDG_CONFIG_HOME/cesres-ctl/config.yml``, never a file of the checkout.

The file is small YAML that ``cesres-ctl config init | set | unset`` writes (hand edits are fine)::

    default_cluster: dragon2          # the cluster of setup, doctor and train without --cluster
    clusters:
      dragon2:                        # a host of the project's inventory
        cesres_repo_url: https://github.com/you/CESReS.git
        cesres_repo_version: master
        ansible_host: ceci-dragon2    # your ssh alias of the login node
        cesres_venv: $GLOBALSCRATCH/cesres_env

Only the settings of ``SETTINGS`` are accepted (what a user names: their fork and its version, the login
alias and account, the paths and models on the cluster, the site's mirrors (a model hub, a pip cache and
package index), train's default resources, and the cluster's facts: its modules and partitions, which
`cesres-ctl doctor --save-facts` reads from Slurm). A cluster the project
does not ship is the user's own once it has an ``ansible_host`` (OWN_CLUSTER_KEY): it joins the ``ceci`` group,
so group_vars/ceci.yml gives it the CÉCI defaults as to the shipped ones. cesres-ctl turns the file into an
Ansible inventory overlay, ``$XDG_STATE_HOME/cesres-ctl/inventory/user.yml``, in which each cluster's settings
are host vars.
Every playbook run and every local check (cesres_ctl.inventory) reads the project's inventory then this
overlay, so Ansible's own precedence applies: role defaults < the project's group_vars < the user's
settings (host vars) < extra vars (``setup -e``, ``train --set`` and train's options).
"""

import difflib
import os
import re
import tempfile
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from cesres_ctl import inputs, paths, rules
from cesres_ctl.errors import CesresError

CLUSTER_ENV = "CESRES_CLUSTER"
CONFIG_ENV = "CESRES_CTL_CONFIG"
BUILTIN_CLUSTER = "dragon2"
CONFIG_NAME = "config.yml"
OVERLAY_NAME = "user.yml"
TOP_KEYS = ("default_cluster", "clusters")
# What makes a cluster the project does not ship the user's own: how ssh reaches its login node.
OWN_CLUSTER_KEY = "ansible_host"
# The inventory group whose hosts are clusters (group_vars/ceci.yml holds their shared facts).
CLUSTER_GROUP = "ceci"
# Inventory host names (and so cluster names): what the YAML inventory accepts without quoting tricks.
_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,62}$")
_TEMPLATE = ("{{", "}}", "{%", "%}", "{#", "#}")
# An HTTP(S) URL with a host: what HF_ENDPOINT names (a site's mirror of the Hugging Face hub). No user:password@:
# the URL is written in the play's logs and each job's script.
_HTTP_URL = re.compile(r"^https?://[^\s/?#@]+(/\S*)?$")
HEADER = (
    "# cesres-ctl user configuration: `cesres-ctl config show` lists the settings, their effective values\n"
    "# and where each comes from; `cesres-ctl config set KEY VALUE [-C CLUSTER]` changes one.\n"
)


@dataclass(frozen=True)
class Setting:
    # text | path | host | word | words | arg | args | time | int | models | partitions | repo_url | git_ref | url
    kind: str
    help: str
    minimum: int = 0
    maximum: int | None = None


SETTINGS: dict[str, Setting] = {
    "cesres_repo_url": Setting("repo_url", "the CESReS repository to deploy (your fork)"),
    "cesres_repo_version": Setting("git_ref", "its branch (followed), tag or commit (pinned)"),
    "cesres_root": Setting("path", "the CESReS checkout and your components, on the cluster"),
    "cesres_venv": Setting("path", "the virtualenv, on the cluster"),
    "cesres_hf_home": Setting("path", "the Hugging Face cache that jobs read offline, on the cluster"),
    "cesres_hf_models": Setting("models", "models cached by setup: ids, ID@REVISION, comma-separated"),
    "cesres_hf_cache_endpoint": Setting(
        "url", "the site's mirror of the Hugging Face hub that setup caches the models from (default: huggingface.co)"
    ),
    "cesres_venv_pip_cache_dir": Setting("path", "pip's cache directory, on the cluster (default: pip's own)"),
    "cesres_venv_pip_extra_args": Setting(
        "args", "options of every pip install, comma-separated: a site's package index is --index-url,URL"
    ),
    "ansible_host": Setting("host", "ssh host or alias of the login node (e.g. from the CÉCI ssh config)"),
    "ansible_user": Setting("host", "your login on the cluster (default: ssh's)"),
    "ansible_port": Setting("int", "ssh port (default: ssh's)", minimum=1, maximum=65535),
    "ansible_ssh_private_key_file": Setting("text", "ssh key on this machine (default: ssh's)"),
    "ansible_ssh_common_args": Setting("text", "ssh options of every connection to it (e.g. -F FILE)"),
    "cesres_cluster_partitions": Setting(
        "partitions", "its partitions: {NAME: {max_time, gpus, default, max_jobs}} (doctor --save-facts reads them)"
    ),
    "cesres_cluster_modules_release": Setting("word", "the Lmod release loaded before the modules"),
    "cesres_cluster_modules": Setting("words", "the Lmod modules of the CESReS procedure, in load order"),
    "cesres_cluster_git_module": Setting("word", "the module that puts git on PATH"),
    "cesres_job_partition": Setting("word", "train's default partition"),
    "cesres_job_gpus": Setting("int", "train's default GPUs", minimum=0),
    "cesres_job_cpus_per_task": Setting("int", "train's default CPUs per task", minimum=1),
    "cesres_job_time": Setting("time", "train's default time limit (HH:MM:SS, D-HH:MM:SS)"),
    "cesres_job_mem": Setting("word", "train's default memory per node (e.g. 16G)"),
    "cesres_job_account": Setting("word", "train's Slurm account"),
    "cesres_job_qos": Setting("word", "train's Slurm QoS"),
    "cesres_job_mail_user": Setting("word", "train's mail address for job notifications"),
}


@dataclass(frozen=True)
class UserConfig:
    path: Path
    exists: bool = False
    default_cluster: str | None = None
    clusters: dict[str, dict[str, Any]] = field(default_factory=dict)

    def to_data(self) -> dict[str, Any]:
        data: dict[str, Any] = {}
        if self.default_cluster is not None:
            data["default_cluster"] = self.default_cluster
        clusters = {name: dict(values) for name, values in self.clusters.items() if values}
        if clusters:
            data["clusters"] = clusters
        return data


# --- where ---------------------------------------------------------------------------------------


def config_path() -> Path:
    """``$CESRES_CTL_CONFIG``, else ``$XDG_CONFIG_HOME/cesres-ctl/config.yml`` (``~/.config/cesres-ctl/…``)."""
    override = os.environ.get(CONFIG_ENV)
    if override:
        return rules.expand_user(override, f"${CONFIG_ENV}")
    base = os.environ.get("XDG_CONFIG_HOME") or str(Path.home() / ".config")
    return Path(base) / "cesres-ctl" / CONFIG_NAME


def overlay_path() -> Path:
    """``$XDG_STATE_HOME/cesres-ctl/inventory/user.yml``: generated, never edited (not created here)."""
    return paths.state_path() / "inventory" / OVERLAY_NAME


# --- reading and checking ------------------------------------------------------------------------


def load(path: Path | None = None) -> UserConfig:
    """The user's configuration, checked; an absent file is an empty configuration."""
    path = path or config_path()
    if not os.path.lexists(path):
        return UserConfig(path=path)
    data = inputs.read_yaml(path, "config file")
    return parse(data, path)


def parse(data: object, path: Path) -> UserConfig:
    """Check the file's data: known keys, cluster names, each setting's type. One line per error."""
    where = f"config file {path}"
    if data is None:
        data = {}
    if not isinstance(data, dict):
        raise CesresError(f"{where} must be a YAML mapping with the keys {', '.join(TOP_KEYS)}")
    for key in data:
        if key not in TOP_KEYS:
            hint = _did_you_mean(key, TOP_KEYS)
            raise CesresError(f"{where}: unknown key {key!r}{hint}; allowed: {', '.join(TOP_KEYS)}")
    default = data.get("default_cluster")
    if default is not None:
        default = check_cluster_name(default, f"{where}: default_cluster")
    raw_clusters = data.get("clusters") or {}
    if not isinstance(raw_clusters, dict):
        raise CesresError(f"{where}: clusters must be a mapping of cluster names to their settings")
    clusters: dict[str, dict[str, Any]] = {}
    for name, values in raw_clusters.items():
        name = check_cluster_name(name, f"{where}: clusters")
        if values is None:
            values = {}
        if not isinstance(values, dict):
            raise CesresError(f"{where}: clusters.{name} must be a mapping of settings")
        clusters[name] = {key: check_value(key, value, f"{where}: clusters.{name}") for key, value in values.items()}
    return UserConfig(path=path, exists=True, default_cluster=default, clusters=clusters)


def check_cluster_name(name: object, where: str) -> str:
    if not isinstance(name, str) or not _NAME.match(name):
        raise CesresError(f"{where}: {name!r} is not a cluster name (letters, digits, '.', '_', '-')")
    return name


def check_key(key: object, where: str) -> str:
    if not isinstance(key, str) or key not in SETTINGS:
        allowed = ", ".join(SETTINGS)
        raise CesresError(f"{where}: unknown setting {key!r}{_did_you_mean(key, SETTINGS)}; allowed: {allowed}")
    return key


def check_value(key: object, value: object, where: str) -> Any:
    """The value of a setting as read from the file, checked; CesresError names the setting."""
    key = check_key(key, where)
    return _checked(SETTINGS[key], value, f"{where}.{key}")


def parse_value(key: str, text: str, where: str = "config set") -> Any:
    """A setting's value from the command line (`config set KEY VALUE`), checked."""
    key = check_key(key, where)
    setting = SETTINGS[key]
    what = f"{where} {key}"
    if setting.kind == "int":
        try:
            number = int(text.strip())
        except ValueError:
            raise CesresError(f"{what} must be a whole number, got {text!r}") from None
        return _in_range(number, setting, what)
    if setting.kind == "models":
        models: list[Any] = []
        for item in text.split(","):
            model_id, at, revision = item.strip().partition("@")
            models.append({"id": model_id, "revision": revision} if at else model_id)
        return _models(models, what)
    if setting.kind == "partitions":
        # A mapping on the command line: YAML's flow style, {gpu: {max_time: "2-00:00:00", gpus: 4}}.
        return _partitions(inputs.load_yaml(text, what), what)
    if setting.kind in ("words", "args"):
        return _checked(setting, [item.strip() for item in text.split(",")], what)
    return _text(text.strip(), setting, what)


def _checked(setting: Setting, value: object, what: str) -> Any:
    if setting.kind == "int":
        if isinstance(value, bool) or not isinstance(value, int):
            raise CesresError(f"{what} must be a whole number, got {value!r}")
        return _in_range(value, setting, what)
    if setting.kind == "models":
        return _models(value, what)
    if setting.kind == "partitions":
        return _partitions(value, what)
    if setting.kind == "words":
        if not isinstance(value, list) or not value:
            raise CesresError(f"{what} must be a non-empty list of names (A,B,C on the command line)")
        return [_checked(Setting("word", ""), item, f"{what}[{index}]") for index, item in enumerate(value)]
    if setting.kind == "args":
        if not isinstance(value, list) or not value:
            raise CesresError(f"{what} must be a non-empty list of options and values (A,B,C on the command line)")
        return [_checked(Setting("arg", ""), item, f"{what}[{index}]") for index, item in enumerate(value)]
    if not isinstance(value, str):
        raise CesresError(f"{what} must be a string, got {value!r} (quote it)")
    return _text(value, setting, what)


_PARTITION_KEYS = ("max_time", "gpus", "default", "max_jobs")


def _partitions(value: object, what: str) -> dict[str, Any]:
    """cesres_cluster_partitions: read by rules.parse_partitions, as train reads the shipped ones."""
    if not isinstance(value, dict) or not value:
        raise CesresError(f"{what} must be a mapping of partition names to {{max_time, gpus, default, max_jobs}}")
    for name, facts in value.items():
        if not isinstance(name, str) or not rules.is_slurm_word(name):
            raise CesresError(f"{what}: {name!r} is not a partition name")
        if not isinstance(facts, dict) or set(facts) - set(_PARTITION_KEYS):
            raise CesresError(f"{what}.{name} must be a mapping with some of the keys {', '.join(_PARTITION_KEYS)}")
        for key in ("gpus", "max_jobs"):
            number = facts.get(key, 0)
            if isinstance(number, bool) or not isinstance(number, int) or number < 0:
                raise CesresError(f"{what}.{name}.{key} must be a whole number, at least 0, got {number!r}")
        if not isinstance(facts.get("default", False), bool):
            raise CesresError(f"{what}.{name}.default must be true or false, got {facts['default']!r}")
        if "max_time" in facts and not isinstance(facts["max_time"], str):
            shown = facts["max_time"]
            raise CesresError(f"{what}.{name}.max_time must be a Slurm time string (quote it), got {shown!r}")
    try:
        rules.parse_partitions(value)
    except CesresError as exc:
        raise CesresError(f"{what}: {exc}") from None
    defaults = [name for name, facts in value.items() if facts.get("default")]
    if len(defaults) > 1:
        raise CesresError(f"{what}: one default partition at most, got {', '.join(defaults)}")
    return value


def _in_range(number: int, setting: Setting, what: str) -> int:
    if number < setting.minimum or (setting.maximum is not None and number > setting.maximum):
        upper = f" and at most {setting.maximum}" if setting.maximum is not None else ""
        raise CesresError(f"{what} must be at least {setting.minimum}{upper}, got {number}")
    return number


def _text(value: str, setting: Setting, what: str) -> str:
    if not value.strip():
        raise CesresError(f"{what} must not be empty (use `cesres-ctl config unset` to remove a setting)")
    if any(ch in value for ch in "\n\r\x00"):
        raise CesresError(f"{what} must not contain newlines or NUL characters")
    if any(marker in value for marker in _TEMPLATE):
        raise CesresError(f"{what} must not contain template delimiters ({{{{, {{%, {{#): {value!r}")
    if setting.kind == "host" and (value.startswith("-") or any(ch.isspace() for ch in value)):
        raise CesresError(f"{what} {value!r} is not a host or user name (no spaces, no leading '-')")
    if setting.kind == "word":
        rules.check_slurm_word(value, what)
    if setting.kind == "arg" and any(ch.isspace() for ch in value):
        # Each item is one word of pip's command line (no shell splits it): "--index-url URL" is two.
        raise CesresError(f"{what} {value!r} contains a space: give an option and its value as two items")
    if setting.kind == "url" and not _HTTP_URL.match(value):
        raise CesresError(f"{what} {value!r} is not an http(s) URL of a host (https://mirror.example/hf)")
    if setting.kind == "time":
        try:
            rules.slurm_seconds(value)
        except CesresError as exc:
            raise CesresError(f"{what}: {exc}") from None
    checks: dict[str, Callable[[str], str | None]] = {"repo_url": rules.repo_url_error, "git_ref": rules.git_ref_error}
    error = checks[setting.kind](value) if setting.kind in checks else None
    if error:
        raise CesresError(f"{what} {value!r} {error}")
    return value


def _models(value: object, what: str) -> list[Any]:
    if not isinstance(value, list) or not value:
        raise CesresError(f"{what} must be a non-empty list of model ids (or {{id, revision}} mappings)")
    models: list[Any] = []
    for item in value:
        entry = {"id": item} if isinstance(item, str) else item
        if not isinstance(entry, dict) or set(entry) - {"id", "revision"} or "id" not in entry:
            raise CesresError(f"{what}: {item!r} is neither a model id nor a mapping with id (and revision)")
        model_id, revision = entry["id"], entry.get("revision")
        if not isinstance(model_id, str) or not rules.is_model_id(model_id):
            raise CesresError(f"{what}: {model_id!r} is not a Hugging Face model id (owner/name)")
        if revision is not None and (not isinstance(revision, str) or not rules.is_slurm_word(revision)):
            raise CesresError(f"{what}: revision {revision!r} of {model_id} is not a branch, tag or commit")
        models.append(item)
    return models


def _did_you_mean(key: object, known: Any) -> str:
    close = difflib.get_close_matches(str(key), list(known), n=1)
    return f" (did you mean {close[0]}?)" if close else ""


# --- writing -------------------------------------------------------------------------------------


def dump(config: UserConfig) -> str:
    import yaml

    data = config.to_data()
    body = yaml.safe_dump(data, sort_keys=False, allow_unicode=True, default_flow_style=False) if data else ""
    return HEADER + body


def save(config: UserConfig, *, exclusive: bool = False) -> Path:
    """Write the configuration (owner-only, 0600). exclusive: fail if the file exists (init without --force)."""
    path = config.path
    paths.ensure_dir(path.parent, "the configuration directory", "set XDG_CONFIG_HOME to a writable directory")
    if exclusive and os.path.lexists(path):
        raise CesresError(f"{path} exists: change it with `cesres-ctl config set`, or overwrite it with --force")
    _write_atomically(path, dump(config))
    return path


def _write_atomically(path: Path, text: str) -> None:
    """Replace `path` with `text` in one rename (readers see the old or the new file, never half), 0600."""
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", dir=path.parent)
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as handle:
            handle.write(text)
        Path(tmp).replace(path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def with_setting(config: UserConfig, cluster: str, key: str, value: Any) -> UserConfig:
    clusters = {name: dict(values) for name, values in config.clusters.items()}
    clusters.setdefault(cluster, {})[key] = value
    return UserConfig(config.path, config.exists, config.default_cluster, clusters)


def without_setting(config: UserConfig, cluster: str, key: str) -> tuple[UserConfig, bool]:
    clusters = {name: dict(values) for name, values in config.clusters.items()}
    removed = clusters.get(cluster, {}).pop(key, None) is not None
    clusters = {name: values for name, values in clusters.items() if values}
    return UserConfig(config.path, config.exists, config.default_cluster, clusters), removed


def with_default(config: UserConfig, cluster: str | None) -> UserConfig:
    return UserConfig(config.path, config.exists, cluster, config.clusters)


# --- the inventory overlay -----------------------------------------------------------------------


def overlay(config: UserConfig) -> dict[str, Any]:
    """The Ansible YAML inventory of the user's settings: one host per configured cluster, its settings
    as host vars (models as {id[, revision]} mappings, the form roles/cesres_hf_cache reads)."""
    hosts: dict[str, Any] = {}
    for name, values in config.clusters.items():
        if not values:
            continue
        host_vars = dict(values)
        if "cesres_hf_models" in host_vars:
            host_vars["cesres_hf_models"] = [
                {"id": item} if isinstance(item, str) else dict(item) for item in host_vars["cesres_hf_models"]
            ]
        hosts[name] = host_vars
    # With its ssh alias, a cluster may be the user's own: in the ceci group, where cesres-ctl looks for clusters
    # (a shipped one is there already, through its cluster_NAME group). Without one, a name the project does
    # not have stays outside, and cesres_ctl.inventory refuses it as a typo.
    own = {name: values for name, values in hosts.items() if OWN_CLUSTER_KEY in values}
    others = {name: values for name, values in hosts.items() if OWN_CLUSTER_KEY not in values}
    data: dict[str, Any] = {}
    if others:
        data["hosts"] = others
    if own:
        data["children"] = {CLUSTER_GROUP: {"hosts": own}}
    return {"all": data} if data else {}


def overlay_text(config: UserConfig) -> str:
    import yaml

    header = f"# Generated by cesres-ctl from {config.path}: change that file (cesres-ctl config set), not this one.\n"
    return header + yaml.safe_dump(overlay(config), sort_keys=False, allow_unicode=True, default_flow_style=False)


def write_overlay(config: UserConfig) -> Path | None:
    """The overlay file for `config` (rewritten only when its text changes), or None without settings (an
    earlier overlay is removed then, so that `ansible-playbook -i` of it cannot apply stale settings)."""
    path = overlay_path()
    if not overlay(config):
        if path.is_file():
            path.unlink(missing_ok=True)
        return None
    paths.ensure_dir(path.parent, "the state directory", "set XDG_STATE_HOME to a writable directory")
    text = overlay_text(config)
    try:
        current = inputs.read_text(path, "the inventory overlay")
    except CesresError:
        current = None  # not written yet, or not by cesres-ctl: written again
    if current != text:
        _write_atomically(path, text)
    return path


def inventory_sources(project: Path | None = None, config: UserConfig | None = None) -> list[str]:
    """The inventory sources of every Ansible run and local check: the project's, then the user's overlay."""
    project = project or paths.project_dir()
    sources = [str(project / "inventory")]
    user = write_overlay(config if config is not None else load())
    if user is not None:
        sources.append(str(user))
    return sources


# --- the cluster of a command --------------------------------------------------------------------


def default_cluster(config: UserConfig | None = None) -> tuple[str, str]:
    """The cluster of a command without --cluster, and where it comes from."""
    from_env = os.environ.get(CLUSTER_ENV)
    if from_env:
        return from_env, f"${CLUSTER_ENV}"
    config = config if config is not None else load()
    if config.default_cluster:
        return config.default_cluster, str(config.path)
    return BUILTIN_CLUSTER, "built-in default"


def cluster_or_default(option: str | None) -> str:
    """--cluster as given (even empty: an error later), else the default cluster."""
    return option if option is not None else default_cluster()[0]


def settings_of(config: UserConfig, cluster: str) -> Mapping[str, Any]:
    return config.clusters.get(cluster, {})
