"""User-facing errors: one line that names the fix, never a traceback (unless --debug)."""
from __future__ import annotations

import signal
import sys

from saliency import SaliencyError


class UserError(Exception):
    """A mistake the user can fix (a bad argument or input file); one line, exit status 2."""

    status = 2


class RunFailure(UserError):
    """The run could not finish through no bad argument (disk full, read-only folder, a failed
    rank); one line, exit status 1. What was finished before stays on disk for a rerun."""

    status = 1


def _terminate(signum, frame):
    raise KeyboardInterrupt


def run_cli(main):
    """Run a script's main(). A UserError or the library's SaliencyError becomes one line on stderr
    (exit 2; 1 for a RunFailure); Ctrl-C and SIGTERM end with a line saying how to resume (exit
    130). --debug anywhere on the command line keeps the traceback instead."""
    debug = "--debug" in sys.argv[1:]
    if debug:
        sys.argv.remove("--debug")
    previous = signal.signal(signal.SIGTERM, _terminate)
    try:
        main()
    except (UserError, SaliencyError) as err:
        if debug:
            raise
        print(f"error: {err}", file=sys.stderr)
        sys.exit(getattr(err, "status", 2))
    except KeyboardInterrupt:
        if debug:
            raise
        print("interrupted; finished chunks are kept: rerun the same command to resume", file=sys.stderr)
        sys.exit(130)
    except OSError as err:  # disk full, read-only folder, a path that is a file...
        if debug:
            raise
        where = f" ({err.filename})" if getattr(err, "filename", None) else ""
        print(f"error: {err.strerror or err}{where}; free space or choose a writable folder, then rerun "
              "(finished chunks are kept)", file=sys.stderr)
        sys.exit(1)
    finally:
        signal.signal(signal.SIGTERM, previous)
