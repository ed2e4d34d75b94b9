#!/usr/bin/python
# -*- coding: utf-8 -*-
"""Clone or update the CESReS code at a pinned version (roles/cesres_repo, git mode)."""

from __future__ import annotations

DOCUMENTATION = r"""
module: cesres_git
short_description: Clone or update a git checkout at a pinned version, refusing to lose local work
description:
- Clones O(url) into O(dest), or updates it, at O(version) (branch, tag or commit); a full commit id that is already
  there needs no network.
- Refuses to overwrite modified tracked files, commits that are not on the remote, or a directory that is not a
  git checkout, unless O(force).
- Runs git with O(env), the environment with the git module loaded that the play's one login shell
  captured (roles/cesres_python); no login shell here.
version_added: 0.1.0
author: cesres-ctl team (@cesres)
options:
  dest:
    description: The checkout on the cluster (absolute).
    type: str
    required: true
  url:
    description: The repository.
    type: str
    required: true
  version:
    description: Branch, tag or commit.
    type: str
    default: master
  force:
    description: Overwrite local changes instead of refusing.
    type: bool
    default: false
  env:
    description: The environment git runs with (empty - this module's), as filter C(cesres.ctl.cesres_module_env)
      encodes it (base64 of its JSON).
    type: str
    default: ''
attributes:
  check_mode:
    support: full
    description:
    - Resolves O(version) with C(git ls-remote) and says whether the run would change O(dest), or refuse.
    - Changes nothing, not even C(.git).
notes:
- A refusal fails with C(refused=true) and one line naming the files or commits.
"""

EXAMPLES = r"""
- name: Deploy the code
  cesres.ctl.cesres_git:
    dest: /home/me/cesres
    url: https://github.com/me/CESReS.git
    version: master
"""

RETURN = r"""
commit:
  description: The deployed commit (in check mode the one that would be; the version when unknown).
  returned: success
  type: str
path:
  description: The checkout.
  returned: always
  type: str
refused:
  description: Local changes stopped the run.
  returned: failure
  type: bool
"""

from ansible.module_utils.basic import AnsibleModule
from ansible_collections.cesres.ctl.plugins.module_utils.provision import SetupError, decode_env, git_plan, git_sync


def main():
    module = AnsibleModule(
        argument_spec=dict(
            dest=dict(type="str", required=True),
            url=dict(type="str", required=True),
            version=dict(type="str", default="master"),
            force=dict(type="bool", default=False),
            env=dict(type="str", default="", no_log=True),
        ),
        supports_check_mode=True,
    )
    p = module.params
    env = decode_env(p["env"])
    try:
        if module.check_mode:
            result = git_plan(p["dest"], p["url"], p["version"], p["force"], env or {})
        else:
            result = git_sync(p["dest"], p["url"], p["version"], p["force"], env)
    except SetupError as exc:
        module.fail_json(msg=str(exc), path=p["dest"], refused=exc.kind == "refused")
    else:
        module.exit_json(**result)


if __name__ == "__main__":
    main()
