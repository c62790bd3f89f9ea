"""Interval-backed tables from per-image AUCs (the logic behind the statistics of tables.py and
report.py): a 95% bootstrap interval for every cell; LA against each baseline, paired, with the
interval and the verdict of one test; effect sizes; the headline in the paper's and a robust
form; each method's rank with its interval; how the ranking moves under the metric's free
choices, under other seeds, on the correctly classified images and across models.

Every number comes from the per-image AUCs that eval.py stores in its scores files
(labench.compute.scoring.load_scores), through labench.stats.analysis and labench.stats.inference (scipy.stats
underneath); docs/PROTOCOL.md "Statistics" says what each is and why:

- a cell: the mean AUC over images and its BCa bootstrap 95% interval (10,000 resamples, seed 0);
- LA against a baseline: the mean of the per-image differences LA - baseline, the paired
  sign-flip permutation test of it (10,000 sign patterns, exact for 13 images or fewer), Holm's
  correction over the comparisons of its table (one model tag, one game: `-published`, `-fast`
  and `-amp` runs are tags of their own), and the interval that inverts the same test at the
  level Holm used for that row, so that it excludes 0 exactly when LA is "better" or "worse";
  beside them LA's per-image win rate and the median of (LA - B) / (|LA| + |B|);
- the headline: the paper's mean over baselines of (LA - B) / B ((B - LA) / B for deletion), the
  geometric mean of LA / B (B / LA), each with a paired bootstrap interval, and every baseline's
  term;
- ranks: each method's rank by mean AUC with a percentile bootstrap interval over images, and
  Kendall's tau-b between rankings (insertion vs deletion, a variant vs the paper's metric, one
  model vs another) with its bootstrap interval and scipy's p;
- seeds: the stochastic methods rerun with other seeds on the first images (report.py
  --seed_reruns), the spread of their mean AUCs and LA's verdicts under each seed;
- the correctly classified images: every cell and comparison again on the images whose
  prediction (the class the metric scored) is the label.
"""
from __future__ import annotations

import math
from dataclasses import replace
from pathlib import Path

import numpy as np
import pandas as pd

from saliency.metric import GAMES

from ..compute.scoring import load_scores
from ..spec.identity import LEAD, MISSING, PAPER, method_order
from ..stats.analysis import Agreement, Headline, PerImage, Ranking, Statistics, protocol_of, statistics
from ..stats.inference import ALPHA
from .figures import ranks_figure, save_figure
from .render import Interval, Table, csv_text, latex, latex_escape, markdown, save_text
from .tables import choose_la, display_name, heading, load_results, model_order, of_models

TEST = "paired sign-flip test of the mean difference, Holm-corrected over that model's comparisons"


# ---------------------------------------------------------------- per-image AUCs


def collect(df, scores_prefix, chosen) -> PerImage:
    """The per-image AUCs of every results row (labench.present.tables.load_results) whose scores file is
    in scores_prefix; LA's column takes the setting `chosen[model tag]` (labench.present.tables.choose_la),
    as the main tables do. The classes the metric scored come from LA's file, else the first one
    that holds them."""
    values, sources, outputs, classes = {}, {}, {}, {}
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
        if scores["classes"] is not None and (tag not in classes or out.method == LEAD):
            classes[tag] = np.asarray(scores["classes"])
    return PerImage(values, sources, outputs, classes)


def collect_results(csv_path, scores_prefix, la="default", models=None) -> PerImage:
    """`collect` of a results file (of `models` only where given), LA at the setting the main tables show."""
    df = of_models(load_results(csv_path), models)
    chosen = {model: choose_la(df, model, la) for model in df["model"].unique()}
    return collect(df, scores_prefix, chosen)


# ---------------------------------------------------------------- formatting


def _where(protocol):
    return "the paper's metric" if protocol == PAPER else f"metric variant {protocol}"


def _title(protocol, game, long=True):
    return f"{heading(game) if long else game.title}, {_where(protocol)}"


def _signed(value, digits):
    return f"{value:+.{digits}f}"


def _percent(value):
    return MISSING if math.isnan(value) else f"{100 * value:+.1f}%"


def _difference(r, digits):
    return f"{_signed(r.la_minus_method, digits)} [{_signed(r.diff_low, digits)}, {_signed(r.diff_high, digits)}]"


def _level(level):
    return f"{100 * level:.2f}%".replace(".00%", "%")


def _agreement_text(a: Agreement):
    """'0.70 [0.45, 0.88] (p=0.00097)', 'n.s.' named where p >= 0.05; '-' where fewer than two methods."""
    if math.isnan(a.tau):
        return "- (fewer than 2 methods)"
    interval = "" if math.isnan(a.low) else f" [{a.low:.2f}, {a.high:.2f}]"
    return f"{a.tau:.2f}{interval} (p={a.p:.2g}{'' if a.p < ALPHA else ', n.s.'})"


def _agreement_cells(a: Agreement):
    """tau, 95% CI, p, reading as four cells."""
    if math.isnan(a.tau):
        return ["- (fewer than 2 methods)", MISSING, MISSING, MISSING]
    interval = MISSING if math.isnan(a.low) else f"[{a.low:.2f}, {a.high:.2f}]"
    return [f"{a.tau:.2f}", interval, f"{a.p:.2g}", a.reading]


AGREEMENT_HEADER = ["Kendall tau", "95% bootstrap CI", "p", "reads as"]


# ---------------------------------------------------------------- cells, comparisons, headlines


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
               r"over images; $^\blacktriangle$/$^\blacktriangledown$: LA significantly better/worse (paired sign-flip "
               rf"test, Holm over the model's comparisons, $p<{ALPHA}$).")
    return Table(["Model", "images"] + [display_name(m) for m in methods], rows,
                 title=f"**{_title(protocol, game)}: mean AUC [95% bootstrap CI]**; ▲ / ▼: LA significantly better / "
                       f"worse than that method ({TEST}, p < {ALPHA})",
                 caption=caption, label=f"tab:{game.name}-{protocol.replace('+', '-')}-ci",
                 packages=("booktabs", "amssymb"), markdown_only=(1,))


COMPARISON_HEADER = ["method", "images", "LA - method [CI]", "CI level", "p (sign-flip)", "p (Holm)", "LA is",
                     "LA wins on", "median (LA-B)/(LA+B)"]


def comparison_cells(r, digits):
    return [display_name(r.method), str(r.n), _difference(r, digits + 1), _level(r.level), f"{r.p_value:.2g}",
            f"{r.p_holm:.2g}", r.verdict, f"{100 * r.win_rate:.0f}%", f"{r.shift:+.2f}"]


def comparisons_table(model, protocol, game, versus, digits=3) -> Table:
    return Table(COMPARISON_HEADER, [comparison_cells(r, digits) for r in versus],
                 title=f"**{model}, {_title(protocol, game)}: LA minus each method, paired over images** (one Holm "
                       "family; each interval inverts the sign-flip test at the level Holm used for its row, so it "
                       "excludes 0 exactly where LA is better or worse; LA wins on: the share of images where LA's "
                       "AUC is the better one)")


def headline_text(r: Headline) -> str:
    baselines = f"{r.baselines} baseline" + ("s" if r.baselines != 1 else "")
    return (f"Headline, {r.model}, {r.game.name}: LA's mean relative improvement over {baselines} "
            f"{_percent(r.relative_improvement)} [95% CI {_percent(r.ci_low)}, {_percent(r.ci_high)}]; "
            f"geometric mean of LA's ratios {_percent(r.geometric)} [95% CI {_percent(r.geometric_low)}, "
            f"{_percent(r.geometric_high)}] ({r.n} images; each baseline's term: headlines.md).")


def statistics_markdown(stats: Statistics, digits=3) -> str:
    """Per table (a game under one metric protocol): the cells (mean [95% CI]; ▲/▼ where LA is
    significantly better/worse than that method), then per model the paired comparisons and the
    headline."""
    parts = []
    for protocol, game, cells in _tables_of(stats):
        parts.append(markdown(cells_table(stats, protocol, game, cells, digits)))
        for model in model_order(stats.outputs[c.model] for c in cells):
            versus = [r for r in stats.comparisons if r.game is game and r.model == model]
            if versus:
                parts.append(markdown(comparisons_table(model, protocol, game, versus, digits)))
            parts += [headline_text(r) for r in stats.headlines if r.game is game and r.model == model]
    return "\n\n".join(parts)


def statistics_latex(stats: Statistics, digits=3) -> str:
    """Per table a booktabs table: `mean \\pm h` with h half the width of the 95% bootstrap interval
    (the exact, asymmetric bounds are in statistics.csv), ▲/▼ as in Markdown."""
    return "\n\n".join(latex(cells_table(stats, *part, digits)) for part in _tables_of(stats))


HEADLINE_NOTE = ("The paper's headline is the mean of the terms (LA - B) / B ((B - LA) / B for deletion): a baseline "
                 "whose AUC is near 0 makes its term, and so the mean, as large as it likes, and one such baseline "
                 "can decide the headline. The geometric mean of LA / B (deletion: B / LA) takes logarithms of the "
                 "ratios, so no single baseline dominates and a ratio of 2 weighs as much as one of 1/2.")


def _percent_interval(value, low, high):
    return f"{_percent(value)} [{_percent(low)}, {_percent(high)}]"


def headline_tables(stats: Statistics, digits=3) -> list[Table]:
    """Per model and game: every baseline's mean AUC, its term of the paper's headline and LA / B,
    then the headline and its geometric form with their 95% intervals; the note under the last."""
    means = {(c.model, c.method, c.game): c.mean for c in stats.cells}
    tables = []
    for r in stats.headlines:
        la = means[(r.model, LEAD, r.game)]
        rows = [[display_name(m), f"{means[(r.model, m, r.game)]:.{digits}f}", _percent(term),
                 f"{la / means[(r.model, m, r.game)]:.2f}" if means[(r.model, m, r.game)] else MISSING]
                for m, term in r.ratios.items()]
        rows.append(["the paper's headline: mean of the terms [95% CI]", MISSING,
                     _percent_interval(r.relative_improvement, r.ci_low, r.ci_high), MISSING])
        rows.append(["robust form: geometric mean of the ratios - 1 [95% CI]", MISSING,
                     _percent_interval(r.geometric, r.geometric_low, r.geometric_high), MISSING])
        term = "(LA - B) / B" if r.game.higher_is_better else "(B - LA) / B"
        ratio = "LA / B" if r.game.higher_is_better else "LA / B (the ratio is B / LA)"
        tables.append(Table(["baseline B", "mean AUC", term, ratio], rows,
                            title=f"**{r.model}, {heading(r.game)}: the headline baseline by baseline** "
                                  f"(LA {la:.{digits}f}, {r.n} images)"))
    if tables:
        tables[-1] = replace(tables[-1], note=HEADLINE_NOTE)
    return tables


CSV_HEADER = ["model", "method", "game", "n", "mean", "ci_low", "ci_high", "rank", "rank_low", "rank_high",
              "la_minus_method", "diff_low", "diff_high", "diff_level", "p_permutation", "p_holm", "verdict", "win_rate",
              "shift"]
HEADLINE_ROWS = (("(headline: LA relative improvement)", "relative_improvement", "ci_low", "ci_high"),
                 ("(headline: geometric mean of LA / B, - 1)", "geometric", "geometric_low", "geometric_high"))


def statistics_table(stats: Statistics) -> Table:
    """Every statistic in one long table: each cell with its rank and its comparison with LA, then
    the headline rows (method '(headline: ...)')."""
    versus = {(r.model, r.method, r.game): r for r in stats.comparisons}
    ranks = {(entry.model, method, game): frame.loc[method]
             for entry in stats.ranks for game, frame in entry.ranks.items() for method in frame.index}
    rows = []
    for c in stats.cells:
        r, rank = versus.get((c.model, c.method, c.game)), ranks.get((c.model, c.method, c.game))
        ranked = [rank["rank"], rank["low"], rank["high"]] if rank is not None else [None] * 3
        compared = [r.la_minus_method, r.diff_low, r.diff_high, r.level, r.p_value, r.p_holm, r.verdict, r.win_rate,
                    r.shift] if r else [None] * 9
        rows.append([c.model, c.method, c.game.name, c.n, c.mean, c.ci_low, c.ci_high, *ranked, *compared])
    rows += [[h.model, name, h.game.name, h.n, getattr(h, value), getattr(h, low), getattr(h, high), *[None] * 12]
             for h in stats.headlines for name, value, low, high in HEADLINE_ROWS]
    return Table(CSV_HEADER, rows)


# ---------------------------------------------------------------- ranks and robustness


def _rank_text(frame, method):
    rank, low, high = frame.loc[method, ["rank", "low", "high"]]
    return f"{int(rank)}" + ("" if math.isnan(low) else f" [{int(low)}, {int(high)}]")


def ranks_table(entry, digits=3) -> Table:
    """One model's methods: per game the mean AUC and the rank with its 95% bootstrap interval."""
    frames = [entry.ranks[game] for game in GAMES]
    rows = [[display_name(m), *(cell for frame in frames for cell in (f"{frame.loc[m, 'mean']:.{digits}f}",
                                                                        _rank_text(frame, m)))]
            for m in frames[0].index]
    header = ["method"] + [f"{game.title} {what}" for game in GAMES for what in ("mean", "rank [95% CI]")]
    return Table(header, rows, title=f"**{entry.model}: each method's rank (1 = best) with its 95% bootstrap interval "
                                     f"over images**, on the first {entry.n} images (the images resampled, every "
                                     "mean recomputed, the methods ranked again)",
                 note=f"Insertion vs deletion ranking, Kendall tau with its 95% bootstrap interval: "
                      f"{_agreement_text(entry.ins_vs_del)}: {entry.ins_vs_del.reading}.")


def robustness_tables(ranking: Ranking, digits=3) -> list[Table]:
    """Per game the rank (mean AUC) of every method under each protocol with Kendall's tau against
    the paper's, then the insertion-vs-deletion agreement of each protocol."""
    names, tables = ranking.protocols, []
    for game in GAMES:
        means, ranks = ranking.means[game], ranking.ranks[game]
        rows = [[display_name(m)] + [MISSING if pd.isna(means.loc[m, p]) else
                                     f"{int(ranks.loc[m, p])} ({means.loc[m, p]:.{digits}f})" for p in names]
                for m in means.index]
        rows.append(["Kendall tau vs paper [95% CI] (p)", MISSING] +
                    [_agreement_text(ranking.tau[game][p]) for p in names[1:]])
        tables.append(Table(["method"] + names, rows,
                            title=f"**{ranking.model}, {heading(game)}: rank (mean AUC) under each metric protocol**, "
                                  f"on the first {ranking.n} images, scored under every protocol"))
    tables.append(Table(["protocol", *AGREEMENT_HEADER], [[p, *_agreement_cells(ranking.ins_vs_del[p])] for p in names],
                        title=f"**{ranking.model}: insertion vs deletion ranking agreement** (Kendall tau with its 95% "
                              f"bootstrap interval over the first {ranking.n} images, p)"))
    return tables


def robustness_markdown(rankings, digits=3) -> str:
    return "\n\n".join(markdown(table) for ranking in rankings for table in robustness_tables(ranking, digits))


# ---------------------------------------------------------------- seeds, correctly classified, models


def seed_tables(entry, digits=3) -> list[Table]:
    """Per game the mean AUC of every rerun method under each seed with the spread, then LA's
    verdict against each method under each seed."""
    tables = []
    for game in GAMES:
        means = entry.means[game]
        rows = [[display_name(m), *(MISSING if pd.isna(v) else f"{v:.{digits}f}" for v in means.loc[m]),
                 f"{means.loc[m].std(ddof=1):.{digits + 1}f}", f"{means.loc[m].max() - means.loc[m].min():.{digits + 1}f}"]
                for m in means.index]
        tables.append(Table(["method", *means.columns, "SD over seeds", "max - min"], rows,
                            title=f"**{entry.model}, {heading(game)}: mean AUC of each stochastic method under each "
                                  f"seed**, on the first {entry.n} images"))
        verdicts = entry.verdicts[game].fillna(MISSING)
        changed = entry.changed(game)
        rows = [[display_name(m), *verdicts.loc[m], "yes" if m in changed else "no"] for m in verdicts.index]
        header = ["method", "all images (printed)", *(f"{c} (first {entry.n})" for c in verdicts.columns[1:]),
                  "changes with the seed"]
        summary = (f"Verdicts that change with the seed: {', '.join(display_name(m) for m in changed)}." if changed
                   else "No verdict changes with the seed.")
        tables.append(Table(header, rows, note=summary,
                            title=f"**{entry.model}, {heading(game)}: LA against each method under each seed** "
                                  f"(one Holm family per seed; the seed's maps for the methods it reran, seed 0's for "
                                  f"the others)"))
    return tables


def correct_tables(stats: Statistics, subset, digits=3) -> list[Table]:
    """Per game: every method's mean on all images and on the correctly classified ones, and LA's
    comparison on those beside its verdict on all images."""
    cells = {(c.method, c.game): c for c in stats.cells if c.model == subset.model}
    printed = {(r.method, r.game): r.verdict for r in stats.comparisons if r.model == subset.model}
    tables = []
    for game in GAMES:
        kept = {c.method: c for c in subset.cells if c.game is game}
        versus = {r.method: r for r in subset.comparisons if r.game is game}
        rows = []
        for method in kept:
            c, r, every = kept[method], versus.get(method), cells[(method, game)]
            compared = [_difference(r, digits + 1), f"{r.p_holm:.2g}", r.verdict] if r else [MISSING] * 3
            rows.append([display_name(method), Interval(every.mean, every.ci_low, every.ci_high, digits),
                         Interval(c.mean, c.ci_low, c.ci_high, digits), *compared, printed.get((method, game), MISSING)])
        tables.append(Table(["method", f"all {subset.n_all} images", f"the {subset.n} correct", "LA - method [CI]",
                             "p (Holm)", "LA is", "LA is (all images)"], rows,
                            title=f"**{subset.model}, {heading(game)}: on the {subset.n} of {subset.n_all} images whose "
                                  "prediction is the label** (the metric scores the prediction, the methods other than "
                                  "LA and AGI explain the label: here the two are the same class; one Holm family)"))
    return tables


def class_tables(stats: Statistics, digits=3) -> list[Table]:
    """Per model tag and game: LA against each method with the class as the unit."""
    tables = []
    for model in dict.fromkeys(r.model for r in stats.by_class):
        for game in GAMES:
            rows = [r for r in stats.by_class if r.model == model and r.game is game]
            if not rows:
                continue
            first = rows[0]
            exact = all(r.p_se == 0 for r in rows)
            test = f"exact over the 2^{first.n_classes} sign patterns" if exact else "Monte Carlo, SE beside p"
            cells = [[display_name(r.method), _difference(r, digits + 1),
                      f"{r.p_value:.2g}" + ("" if r.p_se == 0 else f" ± {r.p_se:.1g}"), f"{r.p_holm:.2g}", r.verdict,
                      f"{r.classes_better} / {r.classes_worse}", f"{r.sign_p:.2g}", f"{r.hodges_lehmann:+.{digits + 1}f}",
                      MISSING if math.isnan(r.icc) else f"{r.icc:.2f}"] for r in rows]
            tables.append(Table(["method", "LA - method [95% CI]", "p", "p (Holm)", "LA is", "classes LA better / worse",
                                 "sign test p", "Hodges-Lehmann", "ICC"], cells,
                                title=f"**{model}, {_title(stats.outputs[model].protocol, game)}: LA minus each method, "
                                      f"the class as the unit** ({first.n_classes} classes of {first.n_images} images; "
                                      "each class one value, the mean of its images' differences; the mean over classes "
                                      "with its BCa bootstrap interval over classes; the sign-flip test over classes, "
                                      f"{test}, Holm over the table's comparisons; the sign test and the Hodges-Lehmann "
                                      "estimate for the typical class; ICC: the within-class correlation of the "
                                      "per-image differences)"))
    return tables


def holds_on(verdicts) -> dict:
    """{(verdict, count): [methods]}: for 'better' and 'worse', the methods with that verdict on
    exactly `count` of the models (count >= 1)."""
    found = {}
    for method, row in verdicts.iterrows():
        for kind in ("better", "worse"):
            count = int((row == kind).sum())
            if count:
                found.setdefault((kind, count), []).append(display_name(method))
    return found


def models_tables(entry) -> list[Table]:
    """Across models: the ranking agreement of every pair per game, LA's verdicts per model and
    which hold on all, on some, on one."""
    k = len(entry.models)
    rows = [[a, b, game.name, str(agreement.n), *_agreement_cells(agreement)]
            for game in GAMES for (a, b), agreement in entry.agreement[game].items()]
    tables = [Table(["model", "model", "game", "common images", *AGREEMENT_HEADER], rows,
                    title=f"**Across models ({_where(entry.protocol)}): "
                          "agreement of the method rankings** (Kendall tau of the mean AUCs over the methods both "
                          "models hold, on the images both scored, with its 95% bootstrap interval over those images)")]
    counts = list(range(k, 0, -1))
    names = {k: f"on all {k}" if k > 2 else "on both", 1: "on one"}
    summary = []
    for game in GAMES:
        verdicts = entry.verdicts[game]
        tables.append(Table(["method", *entry.models], [[display_name(m), *verdicts.loc[m]] for m in verdicts.index],
                            title=f"**Across models, {heading(game)}: LA against each method on each model** (each "
                                  "model's own Holm family)"))
        found = holds_on(verdicts)
        summary += [[f"LA {kind} ({game.name})", *(", ".join(found.get((kind, c), [])) or MISSING for c in counts)]
                    for kind in ("better", "worse")]
    tables.append(Table(["verdict", *(names.get(c, f"on {c}") for c in counts)], summary,
                        title=f"**Across models: which verdicts hold on how many of the {k} models** (a method "
                              "listed under 'on one' holds that verdict on one model only)"))
    return tables


# ---------------------------------------------------------------- all outputs


def _section(tables, written, path):
    text = "\n\n".join(markdown(t) for t in tables)
    if text:
        written.append(save_text(path, text))
    return text


def write_statistics(csv_path, scores_prefix, out, la="default", digits=3, plots=True, reruns_csv=None, labels=None,
                     models=None):
    """statistics.md/.tex/.csv, headlines.md, ranks.md, robustness.md (+ robustness_<model>.png),
    and where asked seeds.md (the seed reruns of reruns_csv, scored into scores_prefix), correct.md
    (labels: of the evaluation images) and models.md (two models or more) under `out`, from the
    per-image AUCs in scores_prefix of the rows of csv_path (LA: the setting the main tables
    show), of `models` only where given; (markdown text, written paths), ("", []) where no scores
    file is found."""
    per_image = collect_results(csv_path, scores_prefix, la, models)
    if not per_image.values:
        return "", []
    out = Path(out)
    reruns = collect_results(reruns_csv, scores_prefix, la, models) if reruns_csv and Path(reruns_csv).exists() else None
    stats = statistics(per_image, reruns, labels)
    text = statistics_markdown(stats, digits)
    written = [save_text(out / "statistics.md", text), save_text(out / "statistics.tex", statistics_latex(stats, digits)),
               save_text(out / "statistics.csv", csv_text(statistics_table(stats)))]
    sections = [
        _section(headline_tables(stats, digits), written, out / "headlines.md"),
        _section([ranks_table(r, digits) for r in stats.ranks], written, out / "ranks.md"),
        _section([t for r in stats.rankings for t in robustness_tables(r, digits)], written, out / "robustness.md"),
        _section([t for s in stats.seeds for t in seed_tables(s, digits)], written, out / "seeds.md"),
        _section([t for s in stats.correct for t in correct_tables(stats, s, digits)], written, out / "correct.md"),
        _section([t for a in stats.across for t in models_tables(a)], written, out / "models.md"),
        _section(class_tables(stats, digits), written, out / "classes.md"),
    ]
    text = "\n\n".join([text, *(s for s in sections if s)])
    if stats.rankings and plots:
        written += [save_figure(ranks_figure(r.model, r.protocols, r.ranks, LEAD), out / f"robustness_{r.model}.png",
                                dpi=120) for r in stats.rankings]
    return text, written
