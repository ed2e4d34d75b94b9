"""Before each play's tasks, in the controller: what each forked worker would otherwise redo, done once.

ansible-core runs every task of every host in a worker process forked from the controller. Two costs
that each worker paid again (about 5 ms a task, 0.1 s of a no-op setup) are paid here once, before the
first fork, and inherited:

- the controller's objects (the loaded playbook, roles, inventory and plugins) move to Python's permanent
  generation (gc.freeze): a worker's garbage collection no longer walks them, nor writes to their memory
  pages, which fork shares copy-on-write. The Python documentation advises freezing before fork();
- the Jinja filters and tests that the roles' templates use are looked up once through ansible-core's
  plugin loader (the first use of each name searched the builtin and legacy plugin files in every worker;
  ansible-core notes the same for its lexer, "pre-generate ... before forking"). A name left out of
  FILTERS or TESTS is only looked up by each worker, as without this plugin.

Changes no result and prints nothing. Next to the playbooks (playbooks/callback_plugins), so ansible-core
loads it for every playbook here, run by ansible-playbook or through ansible-runner alike (which sets its
own callback path), without any setting.
"""

import gc

from ansible.plugins.callback import CallbackBase
from ansible.plugins.loader import filter_loader, test_loader

# Those that the roles, playbooks and group_vars use, and no other (tests/unit/test_prefork.py).
FILTERS = (
    "b64decode",
    "bool",
    "combine",
    "default",
    "dict2items",
    "dirname",
    "expanduser",
    "first",
    "flatten",
    "from_json",
    "hash",
    "int",
    "intersect",
    "items2dict",
    "join",
    "last",
    "length",
    "list",
    "map",
    "quote",
    "regex_replace",
    "reject",
    "rejectattr",
    "replace",
    "select",
    "selectattr",
    "sort",
    "strftime",
    "string",
    "to_json",
    "trim",
    "unique",
    "zip",
    "cesres.ctl.cesres_choose_partition",
    "cesres.ctl.cesres_code_digest",
    "cesres.ctl.cesres_expand_path",
    "cesres.ctl.cesres_job_input_errors",
    "cesres.ctl.cesres_module_env",
    "cesres.ctl.cesres_probe_envs",
    "cesres.ctl.cesres_probe_report",
    "cesres.ctl.cesres_repo_source_errors",
    "cesres.ctl.cesres_rsync_ssh",
    "cesres.ctl.cesres_sandbox_root_errors",
    "cesres.ctl.cesres_sha256_manifest",
    "cesres.ctl.cesres_signal_grace",
    "cesres.ctl.cesres_ssh_host",
    "cesres.ctl.cesres_unchanged_watch",
    "cesres.ctl.cesres_with_checksums",
)
TESTS = ("changed", "defined", "directory", "exists", "match", "search", "skipped", "subset")


class CallbackModule(CallbackBase):
    CALLBACK_VERSION = 2.0
    CALLBACK_TYPE = "aggregate"
    CALLBACK_NAME = "cesres_prefork"
    # Loaded without being named in callbacks_enabled (ansible.cfg, or ansible-runner's environment).
    CALLBACK_NEEDS_ENABLED = False

    def v2_playbook_on_play_start(self, play: object) -> None:
        for loader, names in ((filter_loader, FILTERS), (test_loader, TESTS)):
            for name in names:
                try:
                    loader.get(name)
                except Exception:  # noqa: S112 - the worker looks it up again, and reports what it finds
                    continue
        gc.freeze()
