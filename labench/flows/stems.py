"""`python -m labench.flows.stems`: for each line of eval.py arguments on stdin, print
`<scores stem> <maps stem>`: exactly the files eval.py would write and read (its own parser reads
the line into the run value). A line that names no output (an unknown method) prints `? ?` and
its error on stderr. The grid (labench.flows.grid) names its cells the same way, in-process."""
from __future__ import annotations

import shlex
import sys

from saliency import SaliencyError

from ..errors import UserError
from .cli import eval_output_id


def main():
    for line in sys.stdin:
        if not line.strip():
            continue
        try:
            out = eval_output_id(shlex.split(line))
        except (UserError, SaliencyError) as err:
            print(f"error: {err}", file=sys.stderr)
            print("? ?", flush=True)
            continue
        print(out.stem, out.maps().stem, flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
