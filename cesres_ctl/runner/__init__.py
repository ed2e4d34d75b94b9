"""Running Ansible through ansible-runner, split by concern as ansible-navigator splits its runner:

- private_dir: the private data directory of one run (fresh, owner-only, swept when a killed run left it);
- environment: what the Ansible processes inherit of ours, and what every playbook run sets;
- events: Ansible's events read into stats, changes, facts, log lines and one-line failures;
- run: the run itself (run_ansible, run_playbook) and its PlaybookResult.

The names below are the package's interface; the commands import them from here.
"""

from cesres_ctl.runner.events import HostStats
from cesres_ctl.runner.private_dir import private_data_dir
from cesres_ctl.runner.run import PlaybookResult, format_summary, run_playbook

__all__ = [
    "HostStats",
    "PlaybookResult",
    "format_summary",
    "private_data_dir",
    "run_playbook",
]
