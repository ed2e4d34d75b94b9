"""Ansible's Python API, initialised once per process (plugin loader, the project's ansible.cfg)."""

import os
from functools import cache

from cesres_ctl import paths


@cache
def init() -> None:
    os.environ.setdefault("ANSIBLE_CONFIG", str(paths.project_dir() / "ansible.cfg"))
    from ansible.plugins.loader import init_plugin_loader

    init_plugin_loader()
