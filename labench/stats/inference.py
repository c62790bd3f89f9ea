"""Statistics of per-image values, on scipy.stats: bootstrap intervals over images, the paired
sign-flip test of a mean difference with the interval that inverts it, Holm's correction and the
level at which it decided each hypothesis, effect sizes, the relative-improvement headline in
the paper's and a robust form, ranks with bootstrap intervals and rank agreement (Kendall's tau)
with a bootstrap interval. labench.stats.analysis turns them into the statistics of the tables.

Inputs are per-image values (e.g. per-image AUCs: the trapezoid rule is linear, so the mean of the
per-image AUCs is the AUC of the mean curve, a method's score). Outputs are plain floats, arrays
and dicts. Every resampling uses `np.random.default_rng(seed)`, so results are reproducible.
"""
from __future__ import annotations

import math
import warnings

import numpy as np
from scipy import stats

from saliency.metric import Game, game_named

ALPHA, SEED, N_RESAMPLES = 0.05, 0, 10_000


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
    """Method a against method b on the same images, described: {mean_diff, low, high, p_wilcoxon, n}
    (the bench scripts' measurements of a change; the tables' verdicts come from `paired_family`).

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


def _geometric(la, baselines, sign):
    """exp(mean over baselines of log(LA / B)) - 1, with B / LA for a lower-is-better game (sign -1):
    the geometric mean of LA's ratios to the baselines, oriented so that positive is better."""
    return np.exp(np.mean([sign * (np.log(la) - np.log(b)) for b in baselines], axis=0)) - 1


def _baseline_values(baseline_aucs) -> np.ndarray:
    baselines = _values(list(baseline_aucs.values()) if isinstance(baseline_aucs, dict) else baseline_aucs,
                        "baseline_aucs")
    if (baselines == 0).any():
        raise ValueError("a baseline AUC is 0: the relative improvement is undefined")
    return baselines


def relative_improvement(la_auc, baseline_aucs, game) -> float:
    """LA's mean relative improvement over the baselines' AUCs (a list, or a dict method -> AUC).

    Insertion (higher is better): mean over baselines B of (LA - B) / B.
    Deletion (lower is better): mean over baselines B of (B - LA) / B.
    game: a saliency.metric.Game, its key ('ins') or its name ('insertion').
    Positive means LA is better on average; 0.1 reads as "10 % better".
    """
    return float(_headline(float(la_auc), _baseline_values(baseline_aucs), _sign(game)))


def geometric_improvement(la_auc, baseline_aucs, game) -> float:
    """The headline's robust form: the geometric mean over baselines of LA / B (deletion: B / LA),
    minus 1. A baseline near 0 moves it by a logarithm, not by a ratio without bound, and a
    method twice as good counts as much as one half as good (log 2 against -log 2). NaN where an
    AUC is not positive."""
    baselines = _baseline_values(baseline_aucs)
    if la_auc <= 0 or (baselines < 0).any():
        return float("nan")
    return float(_geometric(float(la_auc), baselines, _sign(game)))


def _headline_ci(form, value_of, per_image_la, per_image_baselines: dict, game, confidence, n_resamples, seed):
    """(value, low, high): value_of(the mean AUCs) (relative_improvement, geometric_improvement) and
    the bootstrap interval of its form (_headline, _geometric): one set of image indices for LA and
    every baseline together per resample (scipy.stats.bootstrap, paired=True); BCa, percentile where
    BCa is undefined (as `mean_ci`); NaNs where the value is undefined."""
    sign = _sign(game)
    la = _values(per_image_la, "per_image_la")
    baselines = [_values(v, f"per_image_baselines[{k!r}]") for k, v in per_image_baselines.items()]
    if not baselines:
        raise ValueError("per_image_baselines is empty")
    if any(b.shape != la.shape for b in baselines):
        raise ValueError("every baseline needs one AUC per image, as LA")

    def statistic(la_sample, *baseline_samples, axis=-1):
        return form(la_sample.mean(axis), [b.mean(axis) for b in baseline_samples], sign)

    value = value_of(la.mean(), [b.mean() for b in baselines], game)
    if not np.isfinite(value):
        return value, float("nan"), float("nan")
    return (value, *_interval((la, *baselines), statistic, confidence, n_resamples, seed, paired=True))


def relative_improvement_ci(per_image_la, per_image_baselines: dict, game, confidence=0.95, n_resamples=10000,
                            seed=0) -> tuple[float, float, float]:
    """(value, low, high): `relative_improvement` of the mean AUCs and its bootstrap interval (_headline_ci)."""
    return _headline_ci(_headline, relative_improvement, per_image_la, per_image_baselines, game, confidence,
                        n_resamples, seed)


def geometric_improvement_ci(per_image_la, per_image_baselines: dict, game, confidence=0.95, n_resamples=10000,
                             seed=0) -> tuple[float, float, float]:
    """(value, low, high): `geometric_improvement` of the mean AUCs and its bootstrap interval
    (_headline_ci); NaNs where an AUC is not positive."""
    with np.errstate(divide="ignore", invalid="ignore"):
        return _headline_ci(_geometric, geometric_improvement, per_image_la, per_image_baselines, game, confidence,
                            n_resamples, seed)


def baseline_ratios(la_auc, baseline_aucs: dict, game) -> dict:
    """{baseline: its term of the paper's headline, (LA - B) / B (deletion: (B - LA) / B)}."""
    sign = _sign(game)
    return {method: float(sign * (la_auc - b) / b) if b else float("nan") for method, b in baseline_aucs.items()}


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




# ---------------------------------------------------------------- a table of paired comparisons


def sign_flip_p(differences, shifts=0.0, n_resamples=N_RESAMPLES, seed=SEED) -> np.ndarray:
    """Two-sided p-values of the paired sign-flip test of `mean(differences - shift) = 0`, one per
    row of differences ([K, n] or [n]; shifts: one per row or one for all).

    scipy.stats.permutation_test with the mean as statistic and permutation_type='samples' on one
    sample, which flips the sign of each difference: exact (all 2^n sign patterns) when 2^n <=
    n_resamples, else n_resamples random patterns with the observed one counted in. The patterns
    depend only on n and the seed, so every row and every call with the same n sees the same ones
    and p is a function of the data. One image: p = 1 (its two sign patterns are as extreme).
    """
    rows = np.atleast_2d(np.asarray(differences, dtype=np.float64))
    if rows.shape[1] < 2:  # scipy asks for two observations
        return np.ones(len(rows))
    data = rows - np.broadcast_to(np.asarray(shifts, dtype=np.float64), (len(rows),))[:, None]
    result = stats.permutation_test((data,), np.mean, permutation_type="samples", vectorized=True,
                                    n_resamples=n_resamples, batch=max(1, 2_000_000 // data.size), axis=-1,
                                    rng=np.random.default_rng(seed))
    return np.asarray(result.pvalue, dtype=np.float64).reshape(len(rows))


def holm_multipliers(p_values, alpha=ALPHA) -> np.ndarray:
    """The step of Holm's procedure that decided each hypothesis, as the multiplier of its p: with
    p sorted ascending, the hypothesis Holm tests at step j (0-based) has m - j while Holm rejects;
    every hypothesis Holm keeps has m - k (k = the number it rejected, the step at which it
    stopped). Holm rejects a hypothesis exactly when multiplier * p < alpha (see `holm`)."""
    p = _values(p_values, "p_values")
    order = np.argsort(p, kind="stable")
    rejected = int((np.asarray(holm(p)) < alpha).sum())
    step = np.empty(p.size)
    step[order] = np.arange(p.size)
    return p.size - np.minimum(step, rejected)


def _step_out(accepted, inner, outer, direction, scale, steps=60):
    """`outer` with each NaN replaced by a shift beyond `inner` (further in `direction`) that the
    test rejects: inner + direction * scale * 2^k for the first such k; NaN where none is rejected
    within `steps` doublings (the test never rejects there: an unbounded interval)."""
    outer = outer.copy()
    for k in range(steps):
        open_rows = np.isnan(outer)
        if not open_rows.any():
            break
        candidate = inner + direction * scale * 2.0 ** k
        rejected = open_rows & ~accepted(candidate)
        outer[rejected] = candidate[rejected]
    return outer


def inverted_intervals(differences, multipliers, excludes_zero, alpha=ALPHA, n_resamples=N_RESAMPLES, seed=SEED,
                       tolerance=1e-7):
    """(low, high) per row of differences [K, n]: the shifts delta that the sign-flip test of
    mean(d - delta) = 0 (`sign_flip_p`) does not reject at level alpha / multiplier, i.e.
    min(1, multiplier * p(delta)) >= alpha: the confidence interval of the mean difference that
    inverts that very test.

    Each end is found by bisection between a shift the test keeps and one it rejects, to
    `tolerance` times the spread of the row (the ends are where p steps, at means of subsets of
    the differences). 0 is one of those bracketing shifts: kept where excludes_zero is False,
    rejected where it is True, so the interval holds 0 exactly where the verdict says "n.s." (by
    construction, whatever the rounding of p near the level). An end the test never reaches
    (too few images for the level) is -inf / +inf.
    """
    d = np.atleast_2d(np.asarray(differences, dtype=np.float64))
    multipliers, excludes_zero = np.asarray(multipliers, dtype=np.float64), np.asarray(excludes_zero, dtype=bool)
    center = d.mean(axis=1)
    scale = np.maximum(np.ptp(d, axis=1), np.abs(center)) + 1e-12
    both, both_multipliers = np.concatenate([d, d]), np.tile(multipliers, 2)

    def kept_by_test(rows, shifts, row_multipliers):
        return np.minimum(1.0, row_multipliers * sign_flip_p(rows, shifts, n_resamples, seed)) >= alpha

    def accepted(shifts):
        return kept_by_test(d, shifts, multipliers)

    def accepted_both(low, high):  # both ends in one call of the test
        return np.split(kept_by_test(both, np.concatenate([low, high]), both_multipliers), 2)

    keeps_zero = ~excludes_zero
    inner = [np.where(keeps_zero, np.minimum(center, 0.0), center), np.where(keeps_zero, np.maximum(center, 0.0), center)]
    outer = [np.where(excludes_zero & (center > 0), 0.0, np.nan), np.where(excludes_zero & (center < 0), 0.0, np.nan)]
    rejected = [_step_out(accepted, inner[side], outer[side], direction, scale)
                for side, direction in ((0, -1.0), (1, 1.0))]
    low, high = _bisect(accepted_both, inner, rejected, tolerance * scale)
    return np.where(np.isnan(rejected[0]), -np.inf, low), np.where(np.isnan(rejected[1]), np.inf, high)


def _bisect(accepted_both, kept, rejected, tolerance, steps=200):
    """The (low, high) ends: per row and side, bisection of [kept, rejected] (a shift the test keeps,
    one it rejects; NaN: none, left as kept) until narrower than `tolerance`; the kept side returned."""
    kept, rejected = [k.copy() for k in kept], [r.copy() for r in rejected]
    for _ in range(steps):
        active = [~np.isnan(rejected[i]) & (np.abs(kept[i] - rejected[i]) > tolerance) for i in (0, 1)]
        if not (active[0].any() or active[1].any()):
            break
        middle = [np.where(active[i], (kept[i] + rejected[i]) / 2, kept[i]) for i in (0, 1)]
        ok = accepted_both(*middle)
        for i in (0, 1):
            kept[i] = np.where(active[i] & ok[i], middle[i], kept[i])
            rejected[i] = np.where(active[i] & ~ok[i], middle[i], rejected[i])
    return kept


def verdict(game, la_minus_method, p_holm, alpha=ALPHA):
    """"better" or "worse" (LA than the method, significantly: Holm p below alpha, in the direction
    of the mean difference for the game), else "n.s."."""
    if not p_holm < alpha or la_minus_method == 0:
        return "n.s."
    la_higher = la_minus_method > 0
    return "better" if la_higher == (_sign(game) > 0) else "worse"


def paired_family(lead, others, game, alpha=ALPHA, n_resamples=N_RESAMPLES, seed=SEED) -> dict:
    """The comparisons of one table: `lead` ([n] per-image values, LA's) against each row of
    `others` ([K, n], the other methods on the same images), as arrays of K:

    mean_diff: mean of lead - other; p: `sign_flip_p` of the differences; p_holm: Holm over these K
    (one table, one family); multiplier: `holm_multipliers`; level: 1 - alpha / multiplier, the
    confidence of the row's interval; low, high: `inverted_intervals` at that level; verdict:
    `verdict`. The interval excludes 0 exactly where the verdict is "better" or "worse"; the rows
    Holm rejects get the level of the step that rejected them, the others the level of the step
    at which Holm stopped (docs/PROTOCOL.md "Statistics").
    """
    lead = _values(lead, "lead")
    others = np.atleast_2d(np.asarray(others, dtype=np.float64))
    if others.shape[1] != lead.size:
        raise ValueError(f"the methods must be paired with the lead on its {lead.size} images")
    d = lead[None, :] - others
    mean_diff = d.mean(axis=1)
    p = sign_flip_p(d, 0.0, n_resamples, seed)
    p_holm = np.asarray(holm(p))
    verdicts = [verdict(game, m, q, alpha) for m, q in zip(mean_diff, p_holm)]
    multipliers = holm_multipliers(p, alpha)
    low, high = inverted_intervals(d, multipliers, [v != "n.s." for v in verdicts], alpha, n_resamples, seed)
    return {"mean_diff": mean_diff, "p": p, "p_holm": p_holm, "multiplier": multipliers, "level": 1 - alpha / multipliers,
            "low": low, "high": high, "verdict": verdicts}


# ---------------------------------------------------------------- effect sizes


def win_rate(a, b, higher_is_better=True) -> float:
    """The share of images on which a is better than b (higher, or lower where lower is better),
    a tie counting half."""
    a, b = _values(a, "a"), _values(b, "b")
    wins = (a > b) if higher_is_better else (a < b)
    return float(wins.mean() + 0.5 * (a == b).mean())


def relative_shift(a, b) -> float:
    """A scale-free shift of a against b: the median over images of (a - b) / (|a| + |b|), in
    [-1, 1] (0 where both are 0); 1/3 reads as "a is typically twice b"."""
    a, b = _values(a, "a"), _values(b, "b")
    total = np.abs(a) + np.abs(b)
    return float(np.median(np.divide(a - b, total, out=np.zeros_like(total), where=total > 0)))


# ---------------------------------------------------------------- ranks and their agreement


def ranks_of(means, higher_is_better=True, axis=-1) -> np.ndarray:
    """Rank 1 = best along `axis`, ties sharing the best rank of their group (method='min')."""
    means = np.asarray(means, dtype=np.float64)
    return stats.rankdata(-means if higher_is_better else means, method="min", axis=axis)


def _bootstrap_rows(rows, statistic, n_resamples, seed):
    """scipy.stats.bootstrap's distribution of statistic(*resampled rows) (a [..., R] array), the
    rows (each [n], on the same images) resampled by one set of image indices together."""
    with warnings.catch_warnings():  # NaN resamples (a ranking all ties) are handled by the callers
        warnings.simplefilter("ignore", (stats.DegenerateDataWarning, RuntimeWarning))
        return stats.bootstrap(tuple(rows), statistic, paired=True, vectorized=True, method="percentile",
                               n_resamples=n_resamples, rng=np.random.default_rng(seed)).bootstrap_distribution


def rank_intervals(per_image, higher_is_better=True, confidence=0.95, n_resamples=N_RESAMPLES, seed=SEED):
    """(ranks, low, high) of M methods from their per-image values ([M, n], the same images): the
    rank of each mean and its percentile bootstrap interval (images resampled, every mean
    recomputed, the methods ranked again), widened to whole ranks."""
    values = np.atleast_2d(np.asarray(per_image, dtype=np.float64))
    ranks = ranks_of(values.mean(axis=1), higher_is_better)
    if values.shape[1] < 2:
        return ranks, np.full(len(values), np.nan), np.full(len(values), np.nan)

    def statistic(*rows, axis=-1):
        return ranks_of(np.stack([row.mean(axis=axis) for row in rows]), higher_is_better, axis=0).astype(np.float64)

    distribution = _bootstrap_rows(values, statistic, n_resamples, seed)
    tail = (1 - confidence) / 2
    low, high = np.quantile(distribution, [tail, 1 - tail], axis=-1)
    return ranks, np.floor(low), np.ceil(high)


def kendall_tau_b(x, y) -> np.ndarray:
    """Kendall's tau-b between x and y along the last axis, for every leading index at once (the
    bootstrap's resamples); NaN where a ranking is all ties. The same number as
    scipy.stats.kendalltau (tests check it), which takes one pair of rankings per call."""
    x, y = np.asarray(x, dtype=np.float64), np.asarray(y, dtype=np.float64)
    i, j = np.triu_indices(x.shape[-1], k=1)
    dx, dy = np.sign(x[..., i] - x[..., j]), np.sign(y[..., i] - y[..., j])
    with np.errstate(divide="ignore", invalid="ignore"):
        return (dx * dy).sum(-1) / np.sqrt((dx != 0).sum(-1)) / np.sqrt((dy != 0).sum(-1))  # scipy's rounding


def tau_interval(per_image_a, per_image_b, higher_is_better=True, confidence=0.95, n_resamples=N_RESAMPLES,
                 seed=SEED) -> dict:
    """Kendall's tau-b between the rankings of the same M methods in two tables, from their
    per-image values on the same images ([M, n] each): {tau, p} of the means (`rank_agreement`,
    scipy), {low, high} its percentile bootstrap interval (images resampled in both tables at once,
    the means recomputed, tau again) and n. higher_is_better: a bool or a pair, as `rank_agreement`."""
    a = np.atleast_2d(np.asarray(per_image_a, dtype=np.float64))
    b = np.atleast_2d(np.asarray(per_image_b, dtype=np.float64))
    pair = higher_is_better if isinstance(higher_is_better, tuple) else (higher_is_better,) * 2
    tau, p = rank_agreement(dict(enumerate(a.mean(axis=1))), dict(enumerate(b.mean(axis=1))), pair)
    found = {"tau": tau, "p": p, "low": math.nan, "high": math.nan, "n": a.shape[1]}
    if math.isnan(tau) or a.shape[1] < 2:
        return found
    orient = [1.0 if higher else -1.0 for higher in pair]

    def statistic(*rows, axis=-1):
        means = np.stack([row.mean(axis=axis) for row in rows], axis=-1)
        return kendall_tau_b(orient[0] * means[..., :len(a)], orient[1] * means[..., len(a):])

    distribution = _bootstrap_rows([*a, *b], statistic, n_resamples, seed)
    tail = (1 - confidence) / 2
    found["low"], found["high"] = np.nanquantile(distribution, [tail, 1 - tail]) if np.isfinite(distribution).any() \
        else (math.nan, math.nan)
    return found
