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
"""
from __future__ import annotations

import math
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd

from saliency import get_method

from .identity import METRIC_MODES, OutputId, method_order, parse_model_tag
from .scoring import load_scores
from .stats import holm, mean_ci, paired_comparison, rank_agreement, relative_improvement_ci
from .tables import GAMES, choose_la, display_name, latex_escape, load_results, markdown, model_order, save_png

GAME_KEYS = {"insertion": "ins", "deletion": "del"}
HIGHER_IS_BETTER = {"insertion": True, "deletion": False}
ALPHA, SEED, N_RESAMPLES = 0.05, 0, 10_000
LEAD = "la"  # the method compared with every other one
PAPER = "paper"  # the protocol without metric variants
MARKS = {"better": "▲", "worse": "▼"}


@dataclass
class PerImage:
    """{model tag: {method: {"insertion": [N], "deletion": [N]}}} and the scores files they came from."""
    values: dict
    sources: dict


def collect(df, scores_prefix, chosen) -> PerImage:
    """The per-image AUCs of every results row whose scores file is in scores_prefix; LA's column
    takes the setting `chosen[model]` (labench.tables.choose_la), as the main tables do."""
    values, sources = {}, {}
    for _, row in df.iterrows():
        model, method = row["model"], row["attr_method"]
        params = tuple(int(row[p]) for p in get_method(method).file_params)
        if params and params != chosen.get(model):
            continue
        base, weights, modes = parse_model_tag(model)
        path = Path(scores_prefix) / OutputId(base, method, weights, params, modes).scores_file
        if not path.exists():
            continue
        scores = load_scores(path)
        values.setdefault(model, {})[method] = {game: np.asarray(scores[f"{key}_auc"], dtype=np.float64)
                                                for game, key in GAME_KEYS.items()}
        sources.setdefault(model, {})[method] = path
    return PerImage(values, sources)


def cell_statistics(per_image: PerImage) -> pd.DataFrame:
    """One row per (model, method, game): n, mean, ci_low, ci_high."""
    rows = []
    for model, methods in per_image.values.items():
        for method in method_order(methods):
            for game in GAME_KEYS:
                values = methods[method][game]
                mean, low, high = mean_ci(values, n_resamples=N_RESAMPLES, seed=SEED)
                rows.append({"model": model, "method": method, "game": game, "n": len(values), "mean": mean,
                             "ci_low": low, "ci_high": high})
    return pd.DataFrame(rows, columns=["model", "method", "game", "n", "mean", "ci_low", "ci_high"])


def comparisons(per_image: PerImage) -> pd.DataFrame:
    """LA against each baseline on the same images, per model and game; p_holm over the comparisons
    of one table: one game under one metric protocol (the paper's, or one variant)."""
    rows = []
    for model, methods in per_image.values.items():
        if LEAD not in methods:
            continue
        for method in method_order(methods):
            if method == LEAD:
                continue
            for game in GAME_KEYS:
                lead, other = methods[LEAD][game], methods[method][game]
                if lead.shape != other.shape:
                    continue  # scored on different images: no pairing
                result = paired_comparison(lead, other, n_resamples=N_RESAMPLES, seed=SEED)
                rows.append({"model": model, "method": method, "game": game, "n": result["n"],
                             "la_minus_method": result["mean_diff"], "diff_low": result["low"],
                             "diff_high": result["high"], "p_wilcoxon": result["p_wilcoxon"]})
    frame = pd.DataFrame(rows, columns=["model", "method", "game", "n", "la_minus_method", "diff_low", "diff_high",
                                        "p_wilcoxon"])
    frame["p_holm"] = np.nan
    protocols = frame["model"].map(lambda tag: protocol_of(tag)[1])
    for (_, _), part in frame.groupby([protocols, frame["game"]]).groups.items():
        frame.loc[part, "p_holm"] = holm(frame.loc[part, "p_wilcoxon"].to_numpy())
    frame["verdict"] = [verdict(r.game, r.la_minus_method, r.p_holm) for r in frame.itertuples()]
    return frame


def verdict(game, la_minus_method, p_holm):
    if not p_holm < ALPHA or la_minus_method == 0:
        return "n.s."
    la_higher = la_minus_method > 0
    return "better" if la_higher == HIGHER_IS_BETTER[game] else "worse"


def headlines(per_image: PerImage) -> pd.DataFrame:
    """LA's mean relative improvement over the baselines (scored on LA's images), per model and game."""
    rows = []
    for model, methods in per_image.values.items():
        if LEAD not in methods:
            continue
        for game, key in GAME_KEYS.items():
            lead = methods[LEAD][game]
            baselines = {m: v[game] for m, v in methods.items() if m != LEAD and v[game].shape == lead.shape}
            if not baselines:
                continue
            value, low, high = relative_improvement_ci(lead, baselines, key, n_resamples=N_RESAMPLES, seed=SEED)
            rows.append({"model": model, "game": game, "n": len(lead), "baselines": len(baselines),
                         "relative_improvement": value, "ci_low": low, "ci_high": high})
    return pd.DataFrame(rows, columns=["model", "game", "n", "baselines", "relative_improvement", "ci_low", "ci_high"])


# ---------------------------------------------------------------- robustness to the metric's choices


def protocol_of(model_tag):
    """(the model tag without metric variants, the protocol: 'paper' or the variants joined by '+')."""
    base, weights, modes = parse_model_tag(model_tag)
    variants = [m for m in modes if m in METRIC_MODES]
    kept = [m for m in modes if m not in METRIC_MODES]
    return "-".join([base, *([weights] if weights else []), *kept]), "+".join(variants) or PAPER


def rankings(per_image: PerImage) -> dict:
    """{base tag: {"protocols": [...], "n": images, "means": {game: frame methods x protocols},
    "ranks": {game: frame}, "tau": {game: {variant: (tau, p)}}, "ins_vs_del": {protocol: (tau, p)}}}.

    Like for like: every protocol of a model on the first n images all of them scored, tau over
    the methods both protocols hold."""
    groups = {}
    for tag, methods in per_image.values.items():
        base, protocol = protocol_of(tag)
        groups.setdefault(base, {})[protocol] = methods
    result = {}
    for base, protocols in groups.items():
        if PAPER not in protocols or len(protocols) < 2:
            continue
        names = [PAPER] + sorted(p for p in protocols if p != PAPER)
        n = min(len(v["insertion"]) for p in names for v in protocols[p].values())
        methods = method_order(m for p in names for m in protocols[p])
        entry = {"protocols": names, "n": n, "means": {}, "ranks": {}, "tau": {g: {} for g in GAME_KEYS},
                 "ins_vs_del": {}}
        for game in GAME_KEYS:
            means = pd.DataFrame(np.nan, index=methods, columns=names)
            for protocol in names:
                for method, values in protocols[protocol].items():
                    means.loc[method, protocol] = values[game][:n].mean()
            entry["means"][game] = means
            entry["ranks"][game] = means.rank(ascending=not HIGHER_IS_BETTER[game], method="min")
            for protocol in names[1:]:
                both = means[[PAPER, protocol]].dropna()
                entry["tau"][game][protocol] = rank_agreement(both[PAPER].to_dict(), both[protocol].to_dict(),
                                                              HIGHER_IS_BETTER[game])
        for protocol in names:
            ins, dele = (entry["means"][g][protocol].dropna().to_dict() for g in GAME_KEYS)
            entry["ins_vs_del"][protocol] = rank_agreement(ins, dele, (True, False))
        result[base] = entry
    return result


def _tau_cells(tau_p):
    """(tau, p) as two cells; '-' where fewer than two methods were scored under both protocols."""
    tau, p = tau_p
    return ("- (fewer than 2 methods)", "-") if np.isnan(tau) else (f"{tau:.2f}", f"{p:.2g}")


def _tau_text(tau_p):
    tau, p = _tau_cells(tau_p)
    return tau if p == "-" else f"{tau} (p={p})"


# ---------------------------------------------------------------- rendering


def _by_cell(cells):
    """{(model, method): row} of one game's cell statistics."""
    return {(r["model"], r["method"]): r for _, r in cells.iterrows()}


def _interval(mean, low, high, digits):
    if math.isnan(low):
        return f"{mean:.{digits}f}"
    return f"{mean:.{digits}f} [{low:.{digits}f}, {high:.{digits}f}]"


def tables_of(cells):
    """[(protocol, game, cells of that table)]: the paper's protocol first, then each variant."""
    protocol = cells["model"].map(lambda tag: protocol_of(tag)[1])
    names = [PAPER] + sorted(set(protocol) - {PAPER})
    return [(p, game, cells[(protocol == p) & (cells["game"] == game)]) for p in names for game in GAME_KEYS
            if ((protocol == p) & (cells["game"] == game)).any()]


def _title(protocol, game, long=True):
    where = "the paper's metric" if protocol == PAPER else f"metric variant {protocol}"
    return f"{GAMES[game] if long else game.capitalize()}, {where}"


def statistics_markdown(cells, versus, heads, digits=3):
    """Per table (a game under one metric protocol): the cells (mean [95% CI]; ▲/▼ where LA is
    significantly better/worse than that method), the paired comparisons and the headline."""
    parts = []
    for protocol, game, part in tables_of(cells):
        models = model_order(part["model"])
        methods = method_order(part["method"])
        vs = versus[(versus["game"] == game) & versus["model"].isin(models)]
        marks = {(r.model, r.method): MARKS.get(r.verdict, "") for r in vs.itertuples()}
        found = _by_cell(part)
        rows = []
        for model in models:
            row = [model, str(int(part[part["model"] == model]["n"].max()))]
            for method in methods:
                r = found.get((model, method))
                row.append("-" if r is None else
                           _interval(r["mean"], r["ci_low"], r["ci_high"], digits) + marks.get((model, method), ""))
            rows.append(row)
        header = ["Model", "images"] + [display_name(m) for m in methods]
        parts.append(f"**{_title(protocol, game)}: mean AUC [95% bootstrap CI]**; ▲ / ▼: LA significantly better / "
                     f"worse than that method (Wilcoxon signed-rank, Holm-corrected over this table, p < {ALPHA})\n\n"
                     + markdown(header, rows))
        if len(vs):
            lines = [[r.model, display_name(r.method), str(r.n),
                      f"{r.la_minus_method:+.{digits + 1}f} [{r.diff_low:+.{digits + 1}f}, {r.diff_high:+.{digits + 1}f}]",
                      f"{r.p_wilcoxon:.2g}", f"{r.p_holm:.2g}", r.verdict] for r in vs.itertuples()]
            parts.append(f"**{_title(protocol, game)}: LA minus each method, paired over images**\n\n"
                         + markdown(["Model", "method", "images", "LA - method [95% CI]", "p (Wilcoxon)", "p (Holm)",
                                     "LA is"], lines))
        for r in heads[(heads["game"] == game) & heads["model"].isin(models)].itertuples():
            baselines = f"{r.baselines} baseline" + ("s" if r.baselines != 1 else "")
            parts.append(f"Headline, {r.model}, {game}: LA's mean relative improvement over {baselines} "
                         f"{100 * r.relative_improvement:+.1f}% [95% CI {100 * r.ci_low:+.1f}%, "
                         f"{100 * r.ci_high:+.1f}%] ({r.n} images).")
    return "\n\n".join(parts)


def statistics_latex(cells, versus, digits=3):
    """Per game a booktabs table: `mean \\pm h` with h half the width of the 95% bootstrap interval
    (the exact, asymmetric bounds are in statistics.csv), ▲/▼ as in Markdown."""
    out = []
    for protocol, game, part in tables_of(cells):
        models, methods = model_order(part["model"]), method_order(part["method"])
        marks = {(r.model, r.method): {"better": r"$^\blacktriangle$", "worse": r"$^\blacktriangledown$"}.get(r.verdict, "")
                 for r in versus[versus["game"] == game].itertuples()}
        lines = [r"% needs \usepackage{booktabs} and \usepackage{amssymb}", r"\begin{table}[t]", r"\centering",
                 rf"\caption{{{latex_escape(_title(protocol, game, long=False))} AUC, mean $\pm$ half the 95\% bootstrap interval over "
                 r"images; $^\blacktriangle$/$^\blacktriangledown$: LA significantly better/worse (Wilcoxon, "
                 rf"Holm, $p<{ALPHA}$).}}", rf"\label{{tab:{game}-{protocol.replace('+', '-')}-ci}}",
                 r"\begin{tabular}{l" + "c" * len(methods) + "}", r"\toprule",
                 " & ".join(["Model"] + [latex_escape(display_name(m)) for m in methods]) + r" \\", r"\midrule"]
        found = _by_cell(part)
        for model in models:
            row = [latex_escape(model)]
            for method in methods:
                r = found.get((model, method))
                if r is None:
                    row.append("-")
                    continue
                half = (r["ci_high"] - r["ci_low"]) / 2
                text = f"{r['mean']:.{digits}f}" if math.isnan(half) else f"{r['mean']:.{digits}f} \\pm {half:.{digits}f}"
                row.append(f"${text}$" + marks.get((model, method), ""))
            lines.append(" & ".join(row) + r" \\")
        lines += [r"\bottomrule", r"\end{tabular}", r"\end{table}"]
        out.append("\n".join(lines))
    return "\n\n".join(out)


def statistics_csv(cells, versus, heads) -> pd.DataFrame:
    """Every statistic in one long table: the cells joined with their comparison with LA, then the
    headline rows (method '(headline)')."""
    table = cells.merge(versus.drop(columns=["n"]), on=["model", "method", "game"], how="left")
    head = heads.rename(columns={"relative_improvement": "mean"}).assign(method="(headline: LA relative improvement)")
    return pd.concat([table, head.drop(columns=["baselines"])], ignore_index=True)


def robustness_markdown(ranked, digits=3):
    parts = []
    for base, entry in ranked.items():
        names = entry["protocols"]
        for game in GAME_KEYS:
            means, ranks = entry["means"][game], entry["ranks"][game]
            header = ["method"] + names
            rows = [[display_name(m)] + [("-" if pd.isna(means.loc[m, p]) else
                                          f"{int(ranks.loc[m, p])} ({means.loc[m, p]:.{digits}f})") for p in names]
                    for m in means.index]
            taus = entry["tau"][game]
            rows.append(["Kendall tau vs paper (p)", "-"] + [_tau_text(taus[p]) for p in names[1:]])
            parts.append(f"**{base}, {GAMES[game]}: rank (mean AUC) under each metric protocol**, on the first "
                         f"{entry['n']} images, scored under every protocol\n\n" + markdown(header, rows))
        agree = entry["ins_vs_del"]
        parts.append(f"**{base}: insertion vs deletion ranking agreement** (Kendall tau, p)\n\n" + markdown(
            ["protocol", "tau", "p"], [[p, *_tau_cells(agree[p])] for p in names]))
    return "\n\n".join(parts)


MARKERS = "osD^vP<X>*hp"


def robustness_figure(base, entry, path):
    """Rank of every method (1 = best) under each protocol, insertion left and deletion right."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    names = entry["protocols"]
    fig, axes = plt.subplots(1, 2, figsize=(3.2 + 1.5 * len(names), 5.2), squeeze=False)
    for ax, game in zip(axes[0], GAME_KEYS):
        ranks = entry["ranks"][game]
        for i, method in enumerate(ranks.index):  # ten colours, so a marker each keeps twelve lines apart
            ax.plot(range(len(names)), ranks.loc[method], marker=MARKERS[i % len(MARKERS)], color=f"C{i % 10}",
                    linewidth=2.2 if method == LEAD else 1, label=display_name(method))
        ax.set_xticks(range(len(names)), [p.replace("+", "\n") for p in names], fontsize=8)
        ax.set_ylim(len(ranks.index) + 0.5, 0.5)
        ax.set_ylabel("rank (1 = best)")
        ax.set_title(f"{game}", fontsize=10)
        ax.grid(alpha=0.3)
    axes[0][1].legend(fontsize=7, loc="center left", bbox_to_anchor=(1.0, 0.5))
    fig.suptitle(f"{base}: method ranks under each metric protocol")
    return save_png(fig, path)


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
    out.mkdir(parents=True, exist_ok=True)
    cells, versus, heads = cell_statistics(per_image), comparisons(per_image), headlines(per_image)
    text = statistics_markdown(cells, versus, heads, digits)
    written = []
    for name, content in [("statistics.md", text), ("statistics.tex", statistics_latex(cells, versus, digits))]:
        (out / name).write_text(content + "\n")
        written.append(out / name)
    statistics_csv(cells, versus, heads).to_csv(out / "statistics.csv", index=False, float_format="%.6g")
    written.append(out / "statistics.csv")
    ranked = rankings(per_image)
    if ranked:
        robust = robustness_markdown(ranked, digits)
        (out / "robustness.md").write_text(robust + "\n")
        written.append(out / "robustness.md")
        text += "\n\n" + robust
        if plots:
            written += [robustness_figure(base, entry, out / f"robustness_{base}.png") for base, entry in ranked.items()]
    return text, written
