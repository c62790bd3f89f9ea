"""Inference with the class as the unit (docs/PROTOCOL.md "Statistics"): the evaluation set's
images come in about twenty ImageNet classes, and images of one class are not independent draws,
so the population is those classes and each class contributes one value, the mean over its images.

- `class_means`: per-class means of per-image values.
- `exact_sign_flip_p`: the paired sign-flip test of a mean over classes, exact (all 2^k sign
  patterns) up to EXACT_MAX classes, else Monte Carlo with its standard error.
The interval of a mean over classes is labench.stats.inference.mean_ci of the class means (BCa,
classes resampled with replacement: a cluster bootstrap of the images).
- `within_class_correlation`: ICC(1) of per-image values, how much the images of a class agree.
- `sign_test_p`, `hodges_lehmann`: the typical image beside the mean (ties dropped).
- `tost_p`: equivalence within +-margin by two one-sided sign-flip tests.
- `rank_sets`: each method's set of possible ranks from Holm-corrected pairwise tests.
- `monte_carlo_se`: the standard error of a Monte Carlo p-value.
Numbers only: no files, no formatting.
"""
from __future__ import annotations

import itertools
import math

import numpy as np
from scipy import stats

from .inference import holm

EXACT_MAX = 22  # 2^22 sign patterns: exact enumeration still takes well under a second
MC_RESAMPLES = 100_000


def class_means(values, classes) -> tuple[np.ndarray, np.ndarray]:
    """(class ids sorted, the mean of `values` over each class's images)."""
    values, classes = np.asarray(values, dtype=np.float64), np.asarray(classes)
    if values.shape != classes.shape or values.ndim != 1:
        raise ValueError(f"values {values.shape} and classes {classes.shape} must be 1-D and of one length")
    ids, inverse = np.unique(classes, return_inverse=True)
    sums = np.bincount(inverse, weights=values)
    return ids, sums / np.bincount(inverse)


def _sign_patterns(k: int, start: int, stop: int) -> np.ndarray:
    """Rows start..stop-1 of the 2^k sign patterns, as +-1 [rows, k] (bit j of the row number)."""
    rows = np.arange(start, stop, dtype=np.int64)[:, None]
    return 1.0 - 2.0 * ((rows >> np.arange(k)) & 1)


def exact_sign_flip_p(differences, alternative: str = "two-sided", seed: int = 0) -> tuple[float, float]:
    """(p, its Monte Carlo standard error: 0 when exact) of H0: the differences are symmetric
    about 0, by the mean. alternative: "two-sided", "greater" (mean > 0) or "less"."""
    d = np.asarray(differences, dtype=np.float64)
    k = len(d)
    if k == 0:
        raise ValueError("no differences to test")
    observed = d.mean()
    tolerance = 1e-12 * max(1.0, np.abs(d).max())

    def extreme(means):
        if alternative == "two-sided":
            return np.abs(means) >= abs(observed) - tolerance
        if alternative == "greater":
            return means >= observed - tolerance
        if alternative == "less":
            return means <= observed + tolerance
        raise ValueError(f"alternative must be two-sided, greater or less, got {alternative!r}")

    if k <= EXACT_MAX:
        total, count, step = 1 << k, 0, 1 << 16
        for start in range(0, total, step):
            count += int(extreme(_sign_patterns(k, start, min(start + step, total)) @ d / k).sum())
        return count / total, 0.0
    rng = np.random.default_rng(seed)
    signs = rng.choice([-1.0, 1.0], size=(MC_RESAMPLES, k))
    p = (int(extreme(signs @ d / k).sum()) + 1) / (MC_RESAMPLES + 1)
    return p, monte_carlo_se(p, MC_RESAMPLES)


def monte_carlo_se(p: float, n_resamples: int) -> float:
    """The standard error of a p-value estimated from n_resamples random resamples."""
    return math.sqrt(p * (1 - p) / n_resamples)


def within_class_correlation(values, classes) -> float:
    """ICC(1) of one-way ANOVA, classes as groups (unbalanced: n0 = (N - sum n_i^2 / N) / (k - 1)):
    the share of the variance of per-image values that lies between classes."""
    values, classes = np.asarray(values, dtype=np.float64), np.asarray(classes)
    ids, inverse = np.unique(classes, return_inverse=True)
    k, n = len(ids), len(values)
    if k < 2 or n <= k:
        return float("nan")  # one class, or one image per class: no within-class variance to compare
    sizes = np.bincount(inverse)
    means = np.bincount(inverse, weights=values) / sizes
    between = float((sizes * (means - values.mean()) ** 2).sum()) / (k - 1)
    within = float(((values - means[inverse]) ** 2).sum()) / (n - k)
    n0 = (n - (sizes ** 2).sum() / n) / (k - 1)
    denominator = between + (n0 - 1) * within
    return (between - within) / denominator if denominator > 0 else float("nan")


def sign_test_p(a, b) -> float:
    """Two-sided sign test of a - b (ties dropped): how often one beats the other, not by how much."""
    d = np.asarray(a, dtype=np.float64) - np.asarray(b, dtype=np.float64)
    wins, losses = int((d > 0).sum()), int((d < 0).sum())
    if wins + losses == 0:
        return 1.0
    return float(stats.binomtest(wins, wins + losses, 0.5).pvalue)


def hodges_lehmann(differences) -> float:
    """The median of the Walsh averages (d_i + d_j) / 2, i <= j: the typical paired difference."""
    d = np.asarray(differences, dtype=np.float64)
    i, j = np.triu_indices(len(d))
    return float(np.median((d[i] + d[j]) / 2))


def tost_p(differences, margin: float) -> float:
    """Equivalence of the mean difference to 0 within +-margin: the larger of the two one-sided
    sign-flip p-values of H0: mean <= -margin and H0: mean >= +margin (exact over classes)."""
    if margin <= 0:
        raise ValueError(f"the equivalence margin must be positive, got {margin}")
    d = np.asarray(differences, dtype=np.float64)
    lower, _ = exact_sign_flip_p(d + margin, "greater")
    upper, _ = exact_sign_flip_p(d - margin, "less")
    return max(lower, upper)


def rank_sets(class_scores: dict, higher_is_better: bool = True, alpha: float = 0.05) -> dict:
    """{method: (best rank, worst rank)} that the data allow: every pair of methods compared by
    the exact sign-flip test of their per-class differences, Holm-corrected over all pairs; a
    method ranks below every method that beats it significantly and above every one it beats.
    class_scores: {method: per-class values}, one order of classes for all."""
    methods = list(class_scores)
    pairs = list(itertools.combinations(methods, 2))
    raw = [exact_sign_flip_p(np.asarray(class_scores[a]) - np.asarray(class_scores[b]))[0] for a, b in pairs]
    adjusted = holm(raw)
    sign = 1.0 if higher_is_better else -1.0
    above = {m: 0 for m in methods}  # methods significantly better than m
    below = {m: 0 for m in methods}  # methods significantly worse than m
    for (a, b), p in zip(pairs, adjusted):
        if p >= alpha:
            continue
        a_better = sign * (np.mean(class_scores[a]) - np.mean(class_scores[b])) > 0
        better, worse = (a, b) if a_better else (b, a)
        above[worse] += 1
        below[better] += 1
    m = len(methods)
    return {method: (1 + above[method], m - below[method]) for method in methods}
