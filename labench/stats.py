"""Statistics for result tables: bootstrap intervals over images, paired tests, Holm's correction,
the relative-improvement headline and rank agreement between tables; then the statistics of the
tables (labench.significance shows them) as plain results: a `Cell` (mean and interval), a
`Comparison` of LA with a method, a `Headline`, a `Ranking` under the metric variants.

Inputs are per-image values (e.g. per-image AUCs: the trapezoid rule is linear, so the mean of the
per-image AUCs is the AUC of the mean curve, a method's score). Outputs are plain floats, lists,
dicts and dataclasses. Every resampling uses `np.random.default_rng(seed)`, so results are
reproducible. A model tag's metric protocol is read from the fields of its OutputId.
"""
from __future__ import annotations

import warnings
from dataclasses import dataclass

import numpy as np
import pandas as pd
from scipy import stats

from saliency.metric import GAMES, Game, game_named

from .identity import METRIC_MODES, method_order

ALPHA, SEED, N_RESAMPLES = 0.05, 0, 10_000
LEAD = "la"  # the method compared with every other one
PAPER = "paper"  # the protocol without metric variants


def _values(values, name="values") -> np.ndarray:
    values = np.asarray(values, dtype=np.float64).ravel()
    if values.size == 0:
        raise ValueError(f"{name} is empty")
    if not np.isfinite(values).all():
        raise ValueError(f"{name} holds NaN or infinite values")
    return values


def _interval(data, statistic, confidence, n_resamples, seed, paired=False) -> tuple[float, float]:
    """(low, high) of scipy.stats.bootstrap: BCa, or percentile where BCa is undefined (NaN), as
    for constant data. Fewer than two observations: (nan, nan)."""
    if len(data[0]) < 2:
        return float("nan"), float("nan")
    for method in ("BCa", "percentile"):
        with warnings.catch_warnings():  # BCa's warning on degenerate data: handled by the fallback
            warnings.simplefilter("ignore", (stats.DegenerateDataWarning, RuntimeWarning))
            ci = stats.bootstrap(data, statistic, n_resamples=n_resamples, confidence_level=confidence,
                                 method=method, paired=paired, vectorized=True,
                                 rng=np.random.default_rng(seed)).confidence_interval
        if np.isfinite(ci.low) and np.isfinite(ci.high):
            break
    return float(ci.low), float(ci.high)


def mean_ci(values, confidence=0.95, n_resamples=10000, seed=0) -> tuple[float, float, float]:
    """(mean, low, high): the mean over images and its bootstrap confidence interval.

    BCa interval (scipy.stats.bootstrap, method='BCa', resampling images with replacement); where
    BCa is undefined (all values equal, or NaN for another reason) the percentile interval. One
    value: (value, nan, nan).
    """
    values = _values(values)
    return (float(values.mean()), *_interval((values,), np.mean, confidence, n_resamples, seed))


def paired_comparison(a, b, confidence=0.95, n_resamples=10000, seed=0) -> dict:
    """Method a against method b on the same images: {mean_diff, low, high, p_wilcoxon, n}.

    mean_diff = mean(a - b) with the `mean_ci` bootstrap interval of the per-image differences
    (resampling images keeps each pair together); p_wilcoxon: two-sided Wilcoxon signed-rank test
    of the differences (scipy.stats.wilcoxon defaults: zero differences dropped, exact or normal
    approximation chosen by scipy), 1.0 where every difference is zero.
    """
    a, b = _values(a, "a"), _values(b, "b")
    if a.shape != b.shape:
        raise ValueError(f"a and b must be paired: {a.size} and {b.size} values")
    d = a - b
    mean, low, high = mean_ci(d, confidence, n_resamples, seed)
    p = 1.0 if not d.any() else float(stats.wilcoxon(d).pvalue)
    return {"mean_diff": mean, "low": low, "high": high, "p_wilcoxon": p, "n": int(d.size)}


def holm(p_values) -> list[float]:
    """Holm-Bonferroni adjusted p-values, in the input order.

    With p sorted ascending, p_(i) becomes max over j <= i of min(1, (m - j + 1) p_(j)): the
    step-down multipliers m, m-1, ..., 1, made monotone and capped at 1.
    """
    p = _values(p_values, "p_values")
    if ((p < 0) | (p > 1)).any():
        raise ValueError("p_values must lie in [0, 1]")
    order = np.argsort(p, kind="stable")
    m = p.size
    stepped = np.maximum.accumulate(np.minimum(1.0, (m - np.arange(m)) * p[order]))
    adjusted = np.empty(m)
    adjusted[order] = stepped
    return adjusted.tolist()


def _sign(game) -> float:
    """+1 where a higher AUC is better, -1 where a lower one is; game: a saliency.metric.Game, its
    key or its name."""
    return 1.0 if (game if isinstance(game, Game) else game_named(game)).higher_is_better else -1.0


def _headline(la, baselines, sign):
    """Mean over baselines of sign * (LA - B) / B; works elementwise on arrays of resamples."""
    return np.mean([sign * (la - b) / b for b in baselines], axis=0)


def relative_improvement(la_auc, baseline_aucs, game) -> float:
    """LA's mean relative improvement over the baselines' AUCs (a list, or a dict method -> AUC).

    Insertion (higher is better): mean over baselines B of (LA - B) / B.
    Deletion (lower is better): mean over baselines B of (B - LA) / B.
    game: a saliency.metric.Game, its key ('ins') or its name ('insertion').
    Positive means LA is better on average; 0.1 reads as "10 % better".
    """
    baselines = _values(list(baseline_aucs.values()) if isinstance(baseline_aucs, dict) else baseline_aucs,
                        "baseline_aucs")
    if (baselines == 0).any():
        raise ValueError("a baseline AUC is 0: the relative improvement is undefined")
    return float(_headline(float(la_auc), baselines, _sign(game)))


def relative_improvement_ci(per_image_la, per_image_baselines: dict, game, confidence=0.95, n_resamples=10000,
                            seed=0) -> tuple[float, float, float]:
    """(value, low, high): `relative_improvement` of the mean AUCs and its bootstrap interval.

    Each resample draws one set of image indices for LA and every baseline together
    (scipy.stats.bootstrap, paired=True), recomputes each method's mean AUC, then the headline;
    BCa interval, percentile where BCa is undefined (as `mean_ci`).
    """
    sign = _sign(game)
    la = _values(per_image_la, "per_image_la")
    baselines = [_values(v, f"per_image_baselines[{k!r}]") for k, v in per_image_baselines.items()]
    if not baselines:
        raise ValueError("per_image_baselines is empty")
    if any(b.shape != la.shape for b in baselines):
        raise ValueError("every baseline needs one AUC per image, as LA")

    def statistic(la_sample, *baseline_samples, axis=-1):
        return _headline(la_sample.mean(axis), [b.mean(axis) for b in baseline_samples], sign)

    value = relative_improvement(la.mean(), [b.mean() for b in baselines], game)
    return (value, *_interval((la, *baselines), statistic, confidence, n_resamples, seed, paired=True))


def rank_agreement(scores_a: dict, scores_b: dict, higher_is_better=True) -> tuple[float, float]:
    """(tau, p): Kendall's tau-b (scipy.stats.kendalltau, two-sided p) between the rankings of the
    methods two tables share.

    higher_is_better: one bool for both tables, or a pair (a's, b's), e.g. (True, False) to compare
    an insertion ranking with a deletion one. A bool for both does not change tau: the rankings
    flip together. Fewer than two shared methods have no ranking to compare: (nan, nan), as scipy
    answers for a degenerate sample (a report whose variant is still being scored).
    """
    a_higher, b_higher = higher_is_better if isinstance(higher_is_better, tuple) else (higher_is_better,) * 2
    common = sorted(set(scores_a) & set(scores_b))
    if len(common) < 2:
        return float("nan"), float("nan")
    rank_a = stats.rankdata([-scores_a[m] if a_higher else scores_a[m] for m in common])
    rank_b = stats.rankdata([-scores_b[m] if b_higher else scores_b[m] for m in common])
    result = stats.kendalltau(rank_a, rank_b)
    return float(result.statistic), float(result.pvalue)


# ---------------------------------------------------------------- the statistics of the tables


@dataclass(frozen=True)
class PerImage:
    """The per-image AUCs of the rows a table shows (labench.significance.collect)."""
    values: dict  # {model tag: {method: {Game: [N] per-image AUCs}}}
    sources: dict  # {model tag: {method: the scores file}}
    outputs: dict  # {model tag: the OutputId of one of its rows: the tag's fields}

    def protocol(self, tag) -> str:
        return protocol_of(self.outputs[tag])[1]


def protocol_of(out):
    """(what the protocols of one model share: its model, weights and modes other than metric
    variants; the protocol: 'paper' or the output's metric variants joined by '+')."""
    variants = [m for m in out.modes if m in METRIC_MODES]
    return (out.model, out.weights, tuple(m for m in out.modes if m not in METRIC_MODES)), "+".join(variants) or PAPER


@dataclass(frozen=True)
class Cell:
    """A table cell: the mean AUC over images and its bootstrap interval."""
    model: str  # the model tag
    method: str
    game: Game
    n: int
    mean: float
    ci_low: float
    ci_high: float


@dataclass(frozen=True)
class Comparison:
    """LA against one method on the same images."""
    model: str
    method: str
    game: Game
    n: int
    la_minus_method: float  # the mean of the per-image differences
    diff_low: float
    diff_high: float
    p_wilcoxon: float
    p_holm: float
    verdict: str  # "better", "worse" (LA than the method, significantly) or "n.s."


@dataclass(frozen=True)
class Headline:
    """LA's mean relative improvement over the baselines scored on its images."""
    model: str
    game: Game
    n: int
    baselines: int
    relative_improvement: float
    ci_low: float
    ci_high: float


@dataclass(frozen=True)
class Ranking:
    """One model's methods ranked under the paper's metric and each variant, like for like."""
    model: str  # the model tag under the paper's protocol
    protocols: list  # 'paper' first, then the variants
    n: int  # the first n images, scored under every protocol
    means: dict  # {Game: frame methods x protocols of mean AUCs}
    ranks: dict  # {Game: frame methods x protocols, 1 = best}
    tau: dict  # {Game: {variant: (Kendall tau, p) against the paper's ranking}}
    ins_vs_del: dict  # {protocol: (tau, p) between its insertion and deletion rankings}


@dataclass(frozen=True)
class Statistics:
    cells: list  # [Cell]
    comparisons: list  # [Comparison]
    headlines: list  # [Headline]
    rankings: list  # [Ranking]
    outputs: dict  # {model tag: OutputId}, as PerImage.outputs


def cell_statistics(per_image: PerImage) -> list[Cell]:
    """One Cell per (model tag, method, game)."""
    return [Cell(model, method, game, len(methods[method][game]),
                 *mean_ci(methods[method][game], n_resamples=N_RESAMPLES, seed=SEED))
            for model, methods in per_image.values.items() for method in method_order(methods) for game in GAMES]


def comparisons(per_image: PerImage) -> list[Comparison]:
    """LA against each baseline on the same images, per model and game; p_holm over the comparisons
    of one table: one game under one metric protocol (the paper's, or one variant)."""
    pairs = []
    for model, methods in per_image.values.items():
        if LEAD not in methods:
            continue
        for method in method_order(methods):
            for game in GAMES:
                lead, other = methods[LEAD][game], methods[method][game]
                if method != LEAD and lead.shape == other.shape:  # else scored on other images: no pairing
                    pairs.append((model, method, game, paired_comparison(lead, other, n_resamples=N_RESAMPLES,
                                                                         seed=SEED)))
    families = {}
    for i, (model, _, game, _) in enumerate(pairs):
        families.setdefault((per_image.protocol(model), game), []).append(i)
    p_holm = {}
    for members in families.values():
        p_holm.update(zip(members, holm([pairs[i][3]["p_wilcoxon"] for i in members])))
    return [Comparison(model, method, game, r["n"], r["mean_diff"], r["low"], r["high"], r["p_wilcoxon"], p_holm[i],
                       verdict(game, r["mean_diff"], p_holm[i])) for i, (model, method, game, r) in enumerate(pairs)]


def verdict(game: Game, la_minus_method, p_holm):
    if not p_holm < ALPHA or la_minus_method == 0:
        return "n.s."
    la_higher = la_minus_method > 0
    return "better" if la_higher == game.higher_is_better else "worse"


def headlines(per_image: PerImage) -> list[Headline]:
    """LA's mean relative improvement over the baselines (scored on LA's images), per model and game."""
    found = []
    for model, methods in per_image.values.items():
        if LEAD not in methods:
            continue
        for game in GAMES:
            lead = methods[LEAD][game]
            baselines = {m: v[game] for m, v in methods.items() if m != LEAD and v[game].shape == lead.shape}
            if baselines:
                value, low, high = relative_improvement_ci(lead, baselines, game, n_resamples=N_RESAMPLES, seed=SEED)
                found.append(Headline(model, game, len(lead), len(baselines), value, low, high))
    return found


def rankings(per_image: PerImage) -> list[Ranking]:
    """A Ranking of every model scored under the paper's protocol and at least one variant: every
    protocol on the first n images all of them scored, tau over the methods both protocols hold."""
    groups = {}
    for tag, methods in per_image.values.items():
        shared, protocol = protocol_of(per_image.outputs[tag])
        groups.setdefault(shared, {})[protocol] = (tag, methods)
    found = []
    for protocols in groups.values():
        if PAPER not in protocols or len(protocols) < 2:
            continue
        names = [PAPER] + sorted(p for p in protocols if p != PAPER)
        scored = {p: protocols[p][1] for p in names}
        n = min(len(v[GAMES[0]]) for p in names for v in scored[p].values())
        methods = method_order(m for p in names for m in scored[p])
        means, ranks, tau = {}, {}, {}
        for game in GAMES:
            means[game] = pd.DataFrame(np.nan, index=methods, columns=names)
            for protocol in names:
                for method, values in scored[protocol].items():
                    means[game].loc[method, protocol] = values[game][:n].mean()
            ranks[game] = means[game].rank(ascending=not game.higher_is_better, method="min")
            tau[game] = {}
            for protocol in names[1:]:
                both = means[game][[PAPER, protocol]].dropna()
                tau[game][protocol] = rank_agreement(both[PAPER].to_dict(), both[protocol].to_dict(),
                                                     game.higher_is_better)
        ins_vs_del = {p: rank_agreement(*(means[g][p].dropna().to_dict() for g in GAMES),
                                        tuple(g.higher_is_better for g in GAMES)) for p in names}
        found.append(Ranking(protocols[PAPER][0], names, n, means, ranks, tau, ins_vs_del))
    return found


def statistics(per_image: PerImage) -> Statistics:
    return Statistics(cell_statistics(per_image), comparisons(per_image), headlines(per_image), rankings(per_image),
                      per_image.outputs)
