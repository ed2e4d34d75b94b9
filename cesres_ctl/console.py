"""The two consoles of the CLI: results on stdout, errors and summaries on stderr.

soft_wrap: long lines (paths, log locations) are never broken by rich, so they stay
copy-pastable and greppable in CI logs. Off a terminal rich would assume 80 columns and
squeeze tables; logs and pipes get a wide console instead.
"""

import sys

from rich.console import Console

_PIPE_WIDTH = 200

out = Console(highlight=False, soft_wrap=True, width=None if sys.stdout.isatty() else _PIPE_WIDTH)
err = Console(stderr=True, highlight=False, soft_wrap=True, width=None if sys.stderr.isatty() else _PIPE_WIDTH)
