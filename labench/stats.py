"""Statistics for result tables: bootstrap intervals over images, paired tests, Holm's correction,
the relative-improvement headline and rank agreement between tables.

Inputs are per-image values (e.g. per-image AUCs: the trapezoid rule is linear, so the mean of the
per-image AUCs is the AUC of the mean curve, a method's score). Outputs are plain floats, lists
and dicts. Every resampling uses `np.random.default_rng(seed)`, so results are reproducible.
"""
from __future__ import annotations

import warnings

import numpy as np
from scipy import stats

from saliency.metric import Game, game_named


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
