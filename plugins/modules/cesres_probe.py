#!/usr/bin/python
# -*- coding: utf-8 -*-
"""Read, in one module run, the state of everything that playbooks/setup.yml provisions."""

from __future__ import annotations

DOCUMENTATION = r"""
module: cesres_probe
short_description: Read the state of the CESReS setup on a cluster, changing nothing
description:
- Run once by roles/cesres_python for the whole play (the play's one probe, with O(envs)); a role runs it again
  only when that probe did not read its target (or its inputs changed since), to read just its own part.
- Each part is optional and reads only what its role needs.
- With O(envs), the paths of each part are as configured, expanded here with the login environment by the rule that
  every role applies (C(cesres.ctl.cesres_expand_path)), with C(what) naming the setting in messages; each part runs
  with the environment of its group of modules, C(set). Without it, paths are absolute and every part runs with
  O(env).
- Commands that need Lmod's modules (git, python3) run with those environments, captured by the play's one login
  shell; no login shell here.
version_added: 0.1.0
author: cesres-ctl team (@cesres)
options:
  repo:
    description:
    - The code (roles/cesres_repo) - C(mode) (git or push), C(path); git mode also C(url), C(version), C(force).
    - Git mode returns whether a sync would change the code (no fetch); push mode what a push would overwrite.
    type: dict
  venv:
    description:
    - The virtualenv (roles/cesres_venv) - C(path), C(requirements), C(config) (everything else its ready stamp
      depends on); returns its state against that hash.
    - A requirements file that is not there yet is no error here (the code may be deployed later in the play), the
      hash is then C(none) and the venv is not ready.
    type: dict
  hf_cache:
    description: The model cache (roles/cesres_hf_cache) - C(home), C(models) ([id, revision] pairs); returns the
      ids not recorded.
    type: dict
  data:
    description: The components' destination (roles/cesres_data) - C(dest), C(dirs); returns the directories that
      do not exist.
    type: dict
  env:
    description: The environment with the part's modules loaded, as filter C(cesres.ctl.cesres_module_env) encodes it
      (empty - this module's).
    type: str
    default: ''
  envs:
    description: What the play's one login shell read (the login environment, the environments of the module groups
      and why a group did not load), as filter C(cesres.ctl.cesres_probe_envs) encodes it; empty - the paths are
      absolute and O(env) is every part's.
    type: str
    default: ''
attributes:
  check_mode:
    support: full
    description: Changes nothing in any mode.
notes:
- Never reports changed.
"""

EXAMPLES = r"""
- name: Read the state of the model cache
  cesres.ctl.cesres_probe:
    hf_cache:
      home: /home/me/.cache/huggingface
      models: [[Enoch/graphcodebert-py, main]]
  register: state
"""

RETURN = r"""
probe:
  description:
  - One entry per part given. repo (git mode) - C(changed), C(commit), C(path), or C(refused) with C(msg); repo
    (push mode) - C(path), C(exists), C(manifest), C(modified), C(foreign), C(gitdirty); venv - C(path), C(python),
    C(hash), C(state) (ready, stale, missing, recreate, incomplete); hf_cache - C(home), C(missing); data -
    C(dest), C(missing).
  - A part that cannot be read has C(error), one line.
  returned: always
  type: dict
"""

from ansible.module_utils.basic import AnsibleModule
from ansible_collections.cesres.ctl.plugins.module_utils.provision import decode_env, decode_envs, probe, probe_with


def main():
    module = AnsibleModule(
        argument_spec=dict(
            repo=dict(type="dict"),
            venv=dict(type="dict"),
            hf_cache=dict(type="dict"),
            data=dict(type="dict"),
            env=dict(type="str", default="", no_log=True),
            envs=dict(type="str", default="", no_log=True),
        ),
        mutually_exclusive=[("env", "envs")],
        supports_check_mode=True,
    )
    request = dict((name, module.params[name]) for name in ("repo", "venv", "hf_cache", "data") if module.params[name])
    if module.params["envs"]:
        state = probe_with(request, decode_envs(module.params["envs"]))
    else:
        env = decode_env(module.params["env"])
        state = probe(request, lambda path, what: path, lambda part: env)
    module.exit_json(changed=False, probe=state)


if __name__ == "__main__":
    main()
