"""The plumbing around the `saliency` library: models, data files, output names, resumable jobs,
and the logic behind the scripts (generate_pt.py, generate_attributions.py, eval.py, plot.py,
tables.py, report.py, sanity.py, para_explore.sh). Layers, top down: scripts -> labench.report ->
labench.{grid, stems, significance, sanity} -> labench.{attributions, scoring, tables, analysis,
similarity} -> labench.{cli, figures, stats} -> labench.run -> labench.{identity, jobs, data, memory,
fast} -> labench.{models, files, progress, randomisation} -> labench.errors -> saliency."""

import os

# Intel MKL (torch's CPU BLAS) picks its code path, and so its summation order, by the memory
# alignment of each buffer, which differs from process to process: the same command then gives
# maps that differ in the last bits (measured: saliency maps on efficientnet_lite0 with two
# threads, 1e-6 relative). MKL's conditional numerical reproducibility mode "AUTO" keeps the
# CPU's fast code path and makes the results a function of the inputs and the thread count. MKL
# reads the variable at its first call, so setting it here, before any computation, is enough;
# a value the user set wins.
os.environ.setdefault("MKL_CBWR", "AUTO")
