"""The plumbing around the `saliency` library: models, data files, output names, resumable jobs,
and the logic behind the scripts (generate_pt.py, generate_attributions.py, eval.py, plot.py,
tables.py, report.py, para_explore.sh). Layers, top down: scripts -> labench.report ->
labench.{grid, stems, significance} -> labench.{attributions, scoring, figures, tables, stats} ->
labench.cli -> labench.run -> labench.{identity, jobs, data, memory, fast} -> labench.{models,
files} -> labench.errors -> saliency."""
