"""The harness around the `saliency` library and the logic behind the scripts, in packages along
the data flow (each imports only the ones below it; tests/test_architecture.py checks):

    flows    what the scripts run: arguments, the grid, the report, the sanity checks
    present  tables and figures
    stats    numbers only: intervals, tests, the tables' statistics
    compute  the evaluation set, a run's set-up, the attribution and scoring jobs
    spec     what an output is: identity, file names, results.csv rows, the run value
    nets     model names to networks; randomised, --fast and runtime-converted copies
    store    atomic files, locks, resumable chunk stores
    errors   the one-line user errors
"""

import os

# Intel MKL (torch's CPU BLAS) picks its code path, and so its summation order, by the memory
# alignment of each buffer, which differs from process to process: the same command then gives
# maps that differ in the last bits (measured: saliency maps on efficientnet_lite0 with two
# threads, 1e-6 relative). MKL's conditional numerical reproducibility mode "AUTO" keeps the
# CPU's fast code path and makes the results a function of the inputs and the thread count. MKL
# reads the variable at its first call, so setting it here, before any computation, is enough;
# a value the user set wins.
os.environ.setdefault("MKL_CBWR", "AUTO")
