"""The two consoles of the CLI: results on stdout, progress and errors on stderr.

soft_wrap: long lines (paths, log locations) are never broken by rich, so they stay
copy-pastable and greppable in CI logs; the terminal wraps them if it must.
"""

from rich.console import Console

out = Console(highlight=False, soft_wrap=True)
err = Console(stderr=True, highlight=False, soft_wrap=True)
