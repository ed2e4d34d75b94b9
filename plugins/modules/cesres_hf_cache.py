#!/usr/bin/python
# -*- coding: utf-8 -*-
"""Cache Hugging Face models for offline jobs (roles/cesres_hf_cache)."""

from __future__ import annotations

DOCUMENTATION = r"""
module: cesres_hf_cache
short_description: Cache Hugging Face models with the venv's own loaders and prove them offline
description:
- For each model of O(models) not recorded in O(home)/cesres-models.list, the venv's transformers (O(python), run
  with O(env)) loads it online, which caches it, then again offline (C(TRANSFORMERS_OFFLINE=1 HF_HUB_OFFLINE=1)),
  as a compute node without internet would; only then it is recorded.
- The loaders are the collection's module_utils cache_models.py, which O(python) runs as a file.
version_added: 0.1.0
author: cesres-ctl team (@cesres)
options:
  home:
    description: HF_HOME on the cluster (absolute).
    type: str
    required: true
  python:
    description: The venv's Python.
    type: str
    required: true
  endpoint:
    description: HF_ENDPOINT when downloading (empty - the hub).
    type: str
    default: ''
  models:
    description: '[id, revision] pairs.'
    type: list
    elements: list
    required: true
  env:
    description: The environment with the modules loaded, as filter C(cesres.ctl.cesres_module_env) encodes it
      (base64 of its JSON).
    type: str
    default: ''
attributes:
  check_mode:
    support: full
    description: Reports the models that would be cached.
"""

EXAMPLES = r"""
- name: Cache a model
  cesres.ctl.cesres_hf_cache:
    home: /home/me/.cache/huggingface
    python: /home/me/cesres_env/bin/python
    models: [[Enoch/graphcodebert-py, main]]
"""

RETURN = r"""
cached:
  description: The ids cached (in check mode, that would be).
  returned: always
  type: list
  elements: str
"""

from ansible.module_utils.basic import AnsibleModule
from ansible_collections.cesres.ctl.plugins.module_utils.provision import (
    SetupError,
    cache_models,
    decode_env,
    models_missing,
    venv_stamp,
)
from ansible_collections.cesres.ctl.plugins.module_utils.rules import PROGRAM_ENV


def main():
    module = AnsibleModule(
        argument_spec=dict(
            home=dict(type="str", required=True),
            python=dict(type="str", required=True),
            endpoint=dict(type="str", default=""),
            models=dict(type="list", elements="list", required=True),
            env=dict(type="str", default="", no_log=True),
        ),
        supports_check_mode=True,
    )
    p = module.params
    models = [[str(m[0]), str(m[1])] for m in p["models"]]
    missing = set(models_missing(p["home"], models, venv_stamp(p["python"])))
    todo = [m for m in models if m[0] in missing]
    if not todo or module.check_mode:
        module.exit_json(changed=bool(todo), cached=[m[0] for m in todo])
    import os

    try:
        env = decode_env(p["env"]) or dict(os.environ)
        cached = cache_models(p["home"], p["python"], p["endpoint"], todo, env, PROGRAM_ENV)
    except SetupError as exc:
        module.fail_json(msg=str(exc), cached=[])
    else:
        module.exit_json(changed=True, cached=cached)


if __name__ == "__main__":
    main()
