"""The plumbing around the `saliency` library: models, data files, output names, resumable jobs,
and the logic behind the scripts (generate_pt.py, generate_attributions.py, eval.py, plot.py,
tables.py). Layers, top down: scripts -> labench.{attributions, scoring, figures, tables} ->
labench.cli -> labench.{jobs, identity, models, data, memory, files} -> labench.errors -> saliency."""
