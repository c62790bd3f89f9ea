#!/usr/bin/env bash
# The paper's grid (SPEC "The paper's grid"): every model x method, LA over
# spatial_range x max_iter x sampling_times; attributions, then Insertion/Deletion scores.
# Run with --help for the options. A thin wrapper: the plan, the runs, the logs and the summary
# are labench.grid's (python -m labench.grid), which defines every option.
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

PYTHONPATH="$ROOT${PYTHONPATH:+:$PYTHONPATH}" exec "$planner" -m labench.grid "$@"
