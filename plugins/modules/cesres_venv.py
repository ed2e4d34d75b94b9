#!/usr/bin/python
# -*- coding: utf-8 -*-
"""The CESReS virtualenv on top of the cluster's modules (roles/cesres_venv)."""

from __future__ import annotations

DOCUMENTATION = r"""
module: cesres_venv
short_description: Create a virtualenv with the modules loaded and install a requirements file under the module
  policy
description:
- Creates O(path) with C(--system-site-packages) (again when its Python version changed), then installs O(requirements)
  with ONE pip run under the module policy (the collection's module_utils requirements_policy.py, run by the venv's
  Python) - module frameworks and compiled module packages are never replaced.
- Then C(pip check) and an import check of O(entry)'s imports; the venv is marked ready (C(.cesres-ready) holds
  the hash of O(config), the Python version, the policy and the requirements) only after all of that, by the run
  holding the venv's lock (C(.cesres-install.lock)); a second installer waits for the first (O(lock_timeout)).
- With the stamp up to date nothing runs. Commands run with O(env), the environment with the modules loaded.
version_added: 0.1.0
author: cesres-ctl team (@cesres)
options:
  path:
    description: The virtualenv (absolute).
    type: str
    required: true
  requirements:
    description: The requirements file.
    type: str
    required: true
  config:
    description: Everything else the ready stamp depends on (one string).
    type: str
    required: true
  env:
    description: The environment with the venv's modules loaded, as filter C(cesres.ctl.cesres_module_env) encodes
      it (base64 of its JSON).
    type: str
    required: true
  create_command:
    description: The command creating the venv (C(--system-site-packages) and the path are appended).
    type: str
    default: python3 -m venv
  protected:
    description: More package names that pip must never replace.
    type: list
    elements: str
    default: []
  entry:
    description: The program whose imports are checked (empty - no import check).
    type: str
    default: ''
  pip_cache_dir:
    description: pip's cache directory (empty - pip's default).
    type: str
    default: ''
  pip_extra_args:
    description: Extra options of C(pip install).
    type: list
    elements: str
    default: []
  lock_timeout:
    description: Seconds to wait for another installation into the same venv.
    type: int
    default: 1800
attributes:
  check_mode:
    support: full
    description: Reports what would be created or installed (C(state), C(hash)); writes nothing.
"""

EXAMPLES = r"""
- name: Install the requirements
  cesres.ctl.cesres_venv:
    path: /home/me/cesres_env
    requirements: /home/me/cesres/installation/CECI_requirements.txt
    config: "python3 -m venv"
    env: "{{ cesres_python_probe | cesres.ctl.cesres_module_env(['releases/2022a', 'Python/3.10.4'],
      cesres_login_env) }}"
"""

RETURN = r"""
state:
  description: The venv's state before the run (ready, stale, missing, recreate, incomplete).
  returned: always
  type: str
hash:
  description: The stamp's value (C(none) in check mode when the requirements are not there yet).
  returned: always
  type: str
created:
  description: The venv was (or in check mode, would be) created.
  returned: always
  type: bool
installed:
  description: pip ran (or would run).
  returned: always
  type: bool
reports:
  description: Lines to show - module versions kept, pip check outside the venv, a wait for the lock.
  returned: always
  type: list
  elements: str
kind:
  description: What failed - pip, quota, check, locked, imports, failed.
  returned: failure
  type: str
"""

from ansible.module_utils.basic import AnsibleModule
from ansible_collections.cesres.ctl.plugins.module_utils.provision import (
    SetupError,
    decode_env,
    venv_create,
    venv_install,
    venv_state,
)
from ansible_collections.cesres.ctl.plugins.module_utils.rules import PROGRAM_ENV


def main():
    module = AnsibleModule(
        argument_spec=dict(
            path=dict(type="str", required=True),
            requirements=dict(type="str", required=True),
            config=dict(type="str", required=True),
            env=dict(type="str", required=True, no_log=True),
            create_command=dict(type="str", default="python3 -m venv"),
            protected=dict(type="list", elements="str", default=[]),
            entry=dict(type="str", default=""),
            pip_cache_dir=dict(type="str", default=""),
            pip_extra_args=dict(type="list", elements="str", default=[]),
            lock_timeout=dict(type="int", default=1800),
        ),
        supports_check_mode=True,
    )
    p = module.params
    env = decode_env(p["env"])
    result = dict(changed=False, created=False, installed=False, reports=[], state="", hash="")
    try:
        state = venv_state(p["path"], p["requirements"], p["config"], env, check=module.check_mode)
        result.update(state=state["state"], hash=state["hash"])
        if state["state"] == "ready":
            module.exit_json(**result)
        result["created"] = state["state"] in ("missing", "recreate", "incomplete")
        if module.check_mode:
            module.exit_json(**dict(result, changed=True, installed=True))
        if result["created"]:
            venv_create(p["path"], p["create_command"], env)
            result["changed"] = True
        done = venv_install(
            p["path"],
            p["requirements"],
            state["hash"],
            env,
            protect=p["protected"],
            extra=p["pip_extra_args"],
            cache=p["pip_cache_dir"],
            entry=p["entry"],
            wait_s=p["lock_timeout"],
            program_env=PROGRAM_ENV,
        )
    except SetupError as exc:
        module.fail_json(msg=str(exc), kind=exc.kind, **{k: v for k, v in result.items() if k != "changed"})
    else:
        result.update(reports=done["reports"], installed=done["installed"])
        module.exit_json(**dict(result, changed=result["changed"] or done["installed"]))


if __name__ == "__main__":
    main()
