"""User-facing errors: one line that names the fix, never a traceback."""
from __future__ import annotations

import sys

from saliency import SaliencyError


class UserError(Exception):
    """A mistake the user can fix; scripts print it as one line and exit with status 2."""


def run_cli(main):
    """Run a script's main(); a UserError or the library's SaliencyError becomes one line on stderr
    and exit status 2."""
    try:
        main()
    except (UserError, SaliencyError) as err:
        print(f"error: {err}", file=sys.stderr)
        sys.exit(2)
