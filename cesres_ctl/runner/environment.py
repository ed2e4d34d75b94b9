"""The environment of the Ansible processes cesres-ctl starts: only what they need of ours (runner would pass
all of it, and write it to artifacts/<ident>/command), and the settings every run of a project playbook gets."""

import os
import sys
from collections.abc import Mapping
from pathlib import Path

from cesres_ctl import paths

# cryptography deprecates DSA, whose key classes ansible-core's ssh-agent client imports whether it uses them or
# not: a warning at the start of every Ansible run's output and log that no user can act on. Filtered for that
# import only, in the Ansible processes cesres-ctl starts (cryptography stays unbounded, for its security fixes).
QUIET_WARNINGS = "ignore:DSA is deprecated:Warning:ansible._internal._ssh._ssh_agent"


def python_warnings() -> str:
    """PYTHONWARNINGS for an Ansible process: the user's filters, then QUIET_WARNINGS."""
    return ",".join(filter(None, [os.environ.get("PYTHONWARNINGS", ""), QUIET_WARNINGS]))


# What Ansible may inherit from cesres-ctl's environment; everything else (tokens, cloud credentials, …)
# stays out of it, and so out of every file runner writes (artifacts/<ident>/command, fact caches).
_ENV_NAMES = frozenset(
    {
        # Who and where: ssh reads ~/.ssh and runs ProxyCommand with $SHELL; temporary files.
        "HOME",
        "USER",
        "LOGNAME",
        "SHELL",
        "TMPDIR",
        "TERM",
        "TZ",
        # A venv made from a module-loaded Python (a login node) may need it to find libpython.
        "LD_LIBRARY_PATH",
        # Ansible needs a UTF-8 locale (LC_* by prefix below); ssh sends LANG and LC_* to the cluster.
        "LANG",
        "LANGUAGE",
        # The user's keys through their agent, and Kerberos tickets for GSSAPI logins.
        "SSH_AUTH_SOCK",
        "KRB5CCNAME",
        "KRB5_CONFIG",
        # Local tasks that reach the network (the sandbox's apt) behind a proxy or a private CA.
        "http_proxy",
        "https_proxy",
        "no_proxy",
        "all_proxy",
        "HTTP_PROXY",
        "HTTPS_PROXY",
        "NO_PROXY",
        "ALL_PROXY",
        "SSL_CERT_FILE",
        "SSL_CERT_DIR",
        # Read by the playbooks: lookup('ansible.builtin.env', …) in group_vars/cluster_sandbox.yml.
        "CESRES_SANDBOX_ROOT",
    }
)


# LC_*: the locale; ANSIBLE_*: the user's Ansible settings; XDG_*: base directories.
_ENV_PREFIXES = ("LC_", "ANSIBLE_", "XDG_")


def _inherits(name: str) -> bool:
    return name in _ENV_NAMES or name.startswith(_ENV_PREFIXES)


def playbook_envvars(project: Path) -> dict[str, str]:
    """The variables a run of one of the project's playbooks sets, over what it inherits."""
    return {
        "ANSIBLE_CONFIG": str(project / "ansible.cfg"),
        # The master connections of cesres-ctl's own ssh and rsync: one per cluster for all of them.
        "ANSIBLE_SSH_CONTROL_PATH_DIR": str(paths.control_dir()),
        # Runner forces host key checking off unless it is set explicitly; we always check.
        "ANSIBLE_HOST_KEY_CHECKING": "True",
        # Ansible runs under runner's pty and would colour its output: keep the log plain text.
        "ANSIBLE_FORCE_COLOR": "0",
        "ANSIBLE_NOCOLOR": "1",
        "PYTHONWARNINGS": python_warnings(),
        # The ansible-playbook of the venv cesres-ctl runs from, even if that venv is not activated.
        "PATH": os.pathsep.join([str(Path(sys.executable).parent), os.environ.get("PATH", os.defpath)]),
    }


def allowed_environment(built: Mapping[str, str], envvars: Mapping[str, str]) -> dict[str, str]:
    """The environment runner built for a run (`built`) without what it copied from ours and is not allowed.

    Runner starts from a copy of os.environ (it has no option not to), then adds `envvars` and its own
    variables (callback plugin, artifact dir, fact cache): those differ from ours or are new, and stay.
    """
    return {
        name: value
        for name, value in built.items()
        if _inherits(name) or name in envvars or os.environ.get(name) != value
    }
