"""results.csv as the paper's tables, and the LA parameter grid.

    python tables.py                       # reads results.csv, writes tables/, prints Markdown
    python tables.py --csv x.csv --out t --la 10,20,30 --digits 3

Main tables: one for Insertion (higher is better), one for Deletion (lower is better); rows are
models, columns the methods in the paper's order (LA, AGI, AttEXplore, BIG, DeepLIFT, EG, FIG,
GIG, IG, MFABA, SG, SM); the best value of each row is bold; a missing cell is '-'. LA's column
takes one setting per model: `--la default` (r=20, T=20, S=20 when present, else the rule
plot.py's grid uses: the most work, then spatial_range closest to 20), `--la best` (best insertion) or `--la R,T,S`.

LA grid: for each model, Insertion and Deletion against spatial_range x max_iter (rows) and
sampling_times (columns), and a figure with one panel per spatial_range (AUC against max_iter, a
line per sampling_times; insertion on top, deletion below).

Statistics (from the per-image AUCs in --scores_prefix's scores files; labench.present.significance,
docs/PROTOCOL.md "Statistics"): every cell's mean with a BCa bootstrap 95% interval, LA against
each method (the mean difference, its paired sign-flip test Holm-corrected over the model's
comparisons, the interval that inverts it, LA's win rate and a scale-free shift), LA's headline
in the paper's and a robust form, each method's rank with a bootstrap interval, where metric
variants were scored the ranks under each with Kendall's tau against the paper's, with two models
or more their agreement, and with --data_dir the same on the images whose prediction is the label.

Files written under --out: tables.md (everything printed), insertion.md, deletion.md,
insertion.tex, deletion.tex, la_grid.md, la_grid_<model>.png; statistics.md, statistics.tex,
statistics.csv, headlines.md, ranks.md, robustness.md, robustness_<model>.png, models.md,
correct.md.
"""
from __future__ import annotations

import argparse
import sys
from pathlib import Path

from labench.compute.data import load_labels
from labench.errors import UserError, run_cli
from labench.flows.cli import HelpFormatter
from labench.present.render import save_text
from labench.present.significance import write_statistics
from labench.present.tables import parse_la_choice, write_tables


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=HelpFormatter)
    parser.add_argument("--csv", "--csv_path", dest="csv", default="results.csv", help="the results table")
    parser.add_argument("--out", default="tables", help="output folder")
    parser.add_argument("--la", default="default",
                        help="LA setting in the main tables: default (20,20,20 if present, else the setting with the "
                             "most work, as plot.py's grid), best (best insertion), or R,T,S")
    parser.add_argument("--digits", type=int, default=4, help="decimal places")
    parser.add_argument("--all_methods", "--all-methods", action="store_true",
                        help="a column for each of the twelve methods even when it has no row")
    parser.add_argument("--no_plot", "--no-plot", action="store_true", help="skip the figures")
    parser.add_argument("--scores_dir", "--scores_prefix", dest="scores_prefix", default="scores", metavar="DIR",
                        help="folder of eval.py's scores files: their per-image AUCs give the statistics")
    parser.add_argument("--no_stats", "--no-stats", action="store_true", help="skip the statistics")
    parser.add_argument("--data_dir", default=None,
                        help="folder of the label_batch.pt the rows were scored on: adds the statistics on the images "
                             "whose prediction is the label (correct.md)")
    args = parser.parse_args(argv)
    if args.digits < 0:
        raise UserError("--digits must be 0 or more")
    la = parse_la_choice(args.la)
    text, written = write_tables(args.csv, args.out, la, args.digits, args.all_methods, not args.no_plot)
    if not args.no_stats:
        labels = load_labels(args.data_dir).numpy() if args.data_dir else None
        stats_text, stats_written = write_statistics(args.csv, args.scores_prefix, args.out, la,
                                                     max(args.digits - 1, 0), not args.no_plot, labels=labels)
        if stats_text:
            text += "\n\n" + stats_text
            save_text(Path(args.out) / "tables.md", text)
            written += stats_written
        else:
            print(f"note: no scores files under {args.scores_prefix}/ for these rows: tables without intervals "
                  "(--scores_prefix names eval.py's --prefix)", file=sys.stderr)
    print(text)
    print("\nwrote " + ", ".join(str(p) for p in written))


if __name__ == "__main__":
    run_cli(main)
