"""Interval-backed tables from per-image AUCs: a 95% bootstrap interval for every cell, LA against
each baseline (paired), LA's relative-improvement headline, and how robust each ranking of the
methods is to the metric's free choices (the logic behind tables.py's statistics).

Every number comes from the per-image AUCs that eval.py stores in its scores files
(labench.scoring.load_scores) and from labench.stats (scipy.stats underneath):

- a cell: the mean AUC over images and its BCa bootstrap 95% interval (10,000 resamples of the
  images, seed 0);
- LA against a baseline, per model and game: mean of the per-image differences LA - baseline with
  its paired bootstrap 95% interval, the two-sided Wilcoxon signed-rank p-value, Holm-corrected
  over every comparison of its table (one game under one metric protocol: the paper's, or one
  variant); LA is "better" (deletion: lower) or "worse" where the corrected p is below 0.05, in
  the direction of the mean difference;
- the headline: LA's mean relative improvement over the baselines, mean over baselines B of
  (LA - B) / B for insertion and (B - LA) / B for deletion, with a paired bootstrap interval;
- robustness: for each model, the methods ranked by mean AUC under the paper's metric and under
  each metric variant on the images every protocol scored (the first n), Kendall's tau-b (and p)
  between the paper's ranking and each variant's, and between each protocol's insertion and
  deletion rankings.

The statistics are labench.stats's plain results (Cell, Comparison, Headline, Ranking in one
Statistics); this module collects their inputs from the scores files, builds the tables that show
them (labench.render) and writes them with the robustness figure (labench.figures.ranks_figure).
"""
from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd

from saliency.metric import GAMES

from .figures import ranks_figure, save_figure
from .identity import method_order
from .render import MISSING, Interval, Table, csv_text, latex, latex_escape, markdown, save_text
from .scoring import load_scores
from .stats import ALPHA, LEAD, PAPER, Headline, PerImage, Ranking, Statistics, protocol_of, statistics
from .tables import choose_la, display_name, heading, load_results, model_order


# ---------------------------------------------------------------- per-image AUCs


def collect(df, scores_prefix, chosen) -> PerImage:
    """The per-image AUCs of every results row (labench.tables.load_results) whose scores file is
    in scores_prefix; LA's column takes the setting `chosen[model tag]` (labench.tables.choose_la),
    as the main tables do."""
    values, sources, outputs = {}, {}, {}
    for _, row in df.iterrows():
        out, tag = row["output"], row["model"]
        if out.params and out.params != chosen.get(tag):
            continue
        path = Path(scores_prefix) / out.scores_file
        if not path.exists():
            continue
        scores = load_scores(path)
        values.setdefault(tag, {})[out.method] = {game: np.asarray(scores[f"{game.key}_auc"], dtype=np.float64)
                                                  for game in GAMES}
        sources.setdefault(tag, {})[out.method] = path
        outputs.setdefault(tag, out)
    return PerImage(values, sources, outputs)


# ---------------------------------------------------------------- as tables


def _title(protocol, game, long=True):
    where = "the paper's metric" if protocol == PAPER else f"metric variant {protocol}"
    return f"{heading(game) if long else game.title}, {where}"


def _tables_of(stats: Statistics):
    """[(protocol, game, its cells)]: one table per game under each protocol, the paper's first."""
    protocol = {tag: protocol_of(out)[1] for tag, out in stats.outputs.items()}
    names = [PAPER] + sorted({protocol[c.model] for c in stats.cells} - {PAPER})
    parts = [(p, game, [c for c in stats.cells if protocol[c.model] == p and c.game is game])
             for p in names for game in GAMES]
    return [part for part in parts if part[2]]


def cells_table(stats: Statistics, protocol, game, cells, digits=3) -> Table:
    """Mean [95% CI] of every model and method of one table, marked where LA is significantly
    better or worse than the method (the images column in Markdown only)."""
    models = model_order(stats.outputs[c.model] for c in cells)
    methods = method_order(c.method for c in cells)
    verdicts = {(r.model, r.method): r.verdict for r in stats.comparisons if r.game is game}
    found = {(c.model, c.method): c for c in cells}

    def interval(model, method):
        c = found.get((model, method))
        return MISSING if c is None else Interval(c.mean, c.ci_low, c.ci_high, digits, verdicts.get((model, method), ""))

    rows = [[model, str(max(c.n for c in cells if c.model == model)), *(interval(model, m) for m in methods)]
            for model in models]
    caption = (rf"{latex_escape(_title(protocol, game, long=False))} AUC, mean $\pm$ half the 95\% bootstrap interval "
               r"over images; $^\blacktriangle$/$^\blacktriangledown$: LA significantly better/worse (Wilcoxon, "
               rf"Holm, $p<{ALPHA}$).")
    return Table(["Model", "images"] + [display_name(m) for m in methods], rows,
                 title=f"**{_title(protocol, game)}: mean AUC [95% bootstrap CI]**; ▲ / ▼: LA significantly better / "
                       f"worse than that method (Wilcoxon signed-rank, Holm-corrected over this table, p < {ALPHA})",
                 caption=caption, label=f"tab:{game.name}-{protocol.replace('+', '-')}-ci",
                 packages=("booktabs", "amssymb"), markdown_only=(1,))


def comparisons_table(protocol, game, versus, digits=3) -> Table:
    d = digits + 1
    rows = [[r.model, display_name(r.method), str(r.n),
             f"{r.la_minus_method:+.{d}f} [{r.diff_low:+.{d}f}, {r.diff_high:+.{d}f}]", f"{r.p_wilcoxon:.2g}",
             f"{r.p_holm:.2g}", r.verdict] for r in versus]
    return Table(["Model", "method", "images", "LA - method [95% CI]", "p (Wilcoxon)", "p (Holm)", "LA is"], rows,
                 title=f"**{_title(protocol, game)}: LA minus each method, paired over images**")


def headline_text(r: Headline) -> str:
    baselines = f"{r.baselines} baseline" + ("s" if r.baselines != 1 else "")
    return (f"Headline, {r.model}, {r.game.name}: LA's mean relative improvement over {baselines} "
            f"{100 * r.relative_improvement:+.1f}% [95% CI {100 * r.ci_low:+.1f}%, {100 * r.ci_high:+.1f}%] "
            f"({r.n} images).")


def statistics_markdown(stats: Statistics, digits=3) -> str:
    """Per table (a game under one metric protocol): the cells (mean [95% CI]; ▲/▼ where LA is
    significantly better/worse than that method), the paired comparisons and the headline."""
    parts = []
    for protocol, game, cells in _tables_of(stats):
        parts.append(markdown(cells_table(stats, protocol, game, cells, digits)))
        models = {c.model for c in cells}
        versus = [r for r in stats.comparisons if r.game is game and r.model in models]
        if versus:
            parts.append(markdown(comparisons_table(protocol, game, versus, digits)))
        parts += [headline_text(r) for r in stats.headlines if r.game is game and r.model in models]
    return "\n\n".join(parts)


def statistics_latex(stats: Statistics, digits=3) -> str:
    """Per table a booktabs table: `mean \\pm h` with h half the width of the 95% bootstrap interval
    (the exact, asymmetric bounds are in statistics.csv), ▲/▼ as in Markdown."""
    return "\n\n".join(latex(cells_table(stats, *part, digits)) for part in _tables_of(stats))


CSV_HEADER = ["model", "method", "game", "n", "mean", "ci_low", "ci_high", "la_minus_method", "diff_low", "diff_high",
              "p_wilcoxon", "p_holm", "verdict"]


def statistics_table(stats: Statistics) -> Table:
    """Every statistic in one long table: each cell with its comparison with LA, then the
    headline rows (method '(headline: LA relative improvement)')."""
    versus = {(r.model, r.method, r.game): r for r in stats.comparisons}
    rows = []
    for c in stats.cells:
        r = versus.get((c.model, c.method, c.game))
        compared = [r.la_minus_method, r.diff_low, r.diff_high, r.p_wilcoxon, r.p_holm, r.verdict] if r else [None] * 6
        rows.append([c.model, c.method, c.game.name, c.n, c.mean, c.ci_low, c.ci_high, *compared])
    rows += [[h.model, "(headline: LA relative improvement)", h.game.name, h.n, h.relative_improvement, h.ci_low,
              h.ci_high, *[None] * 6] for h in stats.headlines]
    return Table(CSV_HEADER, rows)


def _tau_cells(tau_p):
    """(tau, p) as two cells; '-' where fewer than two methods were scored under both protocols."""
    tau, p = tau_p
    return ("- (fewer than 2 methods)", "-") if np.isnan(tau) else (f"{tau:.2f}", f"{p:.2g}")


def _tau_text(tau_p):
    tau, p = _tau_cells(tau_p)
    return tau if p == "-" else f"{tau} (p={p})"


def robustness_tables(ranking: Ranking, digits=3) -> list[Table]:
    """Per game the rank (mean AUC) of every method under each protocol with Kendall's tau against
    the paper's, then the insertion-vs-deletion agreement of each protocol."""
    names, tables = ranking.protocols, []
    for game in GAMES:
        means, ranks = ranking.means[game], ranking.ranks[game]
        rows = [[display_name(m)] + [MISSING if pd.isna(means.loc[m, p]) else
                                     f"{int(ranks.loc[m, p])} ({means.loc[m, p]:.{digits}f})" for p in names]
                for m in means.index]
        rows.append(["Kendall tau vs paper (p)", MISSING] + [_tau_text(ranking.tau[game][p]) for p in names[1:]])
        tables.append(Table(["method"] + names, rows,
                            title=f"**{ranking.model}, {heading(game)}: rank (mean AUC) under each metric protocol**, "
                                  f"on the first {ranking.n} images, scored under every protocol"))
    tables.append(Table(["protocol", "tau", "p"], [[p, *_tau_cells(ranking.ins_vs_del[p])] for p in names],
                        title=f"**{ranking.model}: insertion vs deletion ranking agreement** (Kendall tau, p)"))
    return tables


def robustness_markdown(rankings, digits=3) -> str:
    return "\n\n".join(markdown(table) for ranking in rankings for table in robustness_tables(ranking, digits))


# ---------------------------------------------------------------- all outputs


def write_statistics(csv_path, scores_prefix, out, la="default", digits=3, plots=True):
    """statistics.md/.tex/.csv and robustness.md (+ robustness_<model>.png) under `out` from the
    per-image AUCs in scores_prefix of the rows of csv_path (LA: the setting the main tables
    show); (markdown text, written paths), ("", []) where no scores file is found."""
    df = load_results(csv_path)
    chosen = {model: choose_la(df, model, la) for model in df["model"].unique()}
    per_image = collect(df, scores_prefix, chosen)
    if not per_image.values:
        return "", []
    out = Path(out)
    stats = statistics(per_image)
    text = statistics_markdown(stats, digits)
    written = [save_text(out / "statistics.md", text), save_text(out / "statistics.tex", statistics_latex(stats, digits)),
               save_text(out / "statistics.csv", csv_text(statistics_table(stats)))]
    if stats.rankings:
        robust = robustness_markdown(stats.rankings, digits)
        written.append(save_text(out / "robustness.md", robust))
        text += "\n\n" + robust
        if plots:
            written += [save_figure(ranks_figure(r.model, r.protocols, r.ranks, LEAD), out / f"robustness_{r.model}.png",
                                    dpi=120) for r in stats.rankings]
    return text, written
