#!/usr/bin/env bash
# The paper's grid (docs/PROTOCOL.md "The paper's grid"): every model x method, LA over
# spatial_range x max_iter x sampling_times; attributions, then Insertion/Deletion scores.
# Run with --help for the options. A thin wrapper: the options, the plan, the runs, the logs and
# the summary are labench.flows.grid's (python -m labench.flows.grid takes the same options).
set -u

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"

# the interpreter of the planner: --python's when it runs, else the project's, else python3
planner=""
previous=""
for arg in "$@"; do
    [[ "$previous" == --python ]] && planner="$arg"
    [[ "$arg" == --python=* ]] && planner="${arg#--python=}"
    previous="$arg"
done
if [[ -z "$planner" ]] || ! command -v "$planner" >/dev/null 2>&1; then
    planner="$ROOT/.venv/bin/python"
    [[ -x "$planner" ]] || planner="python3"
fi

read -r -d '' START <<'EOF_PY'
import sys
try:
    from labench.flows.grid import main
except ImportError as err:
    print(f"para_explore.sh: {sys.executable} cannot run the planner ({err}); pass --python with the project's "
          "requirements", file=sys.stderr)
    sys.exit(2)
sys.exit(main())
EOF_PY
PYTHONPATH="$ROOT${PYTHONPATH:+:$PYTHONPATH}" exec "$planner" -c "$START" "$@"
