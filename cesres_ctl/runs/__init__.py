"""Training runs: the job role's inputs, submission through playbooks/train.yml, and the run registry.

Modules: `slurmtime` and `resources` (limits checked before any ssh), `config` (the CESReS config and
its data files), `cluster` (per-cluster facts from the inventory), `spec` (run id inputs and the
playbook's extravars), `jobscript` (local rendering for --dry-run), `registry` (SQLite), `remote`
(direct ssh/rsync for status, logs, fetch, cancel), `plot`, and `commands` (the typer commands).
"""
