"""labench.stats.inference on hand-made data with known answers, and against scipy called directly."""
import itertools

import numpy as np
import pytest
import scipy.stats

from labench.stats.inference import (baseline_ratios, geometric_improvement, geometric_improvement_ci, holm, holm_multipliers,
                           inverted_intervals, kendall_tau_b, mean_ci, paired_comparison, paired_family,
                           rank_agreement, rank_intervals, relative_improvement, relative_improvement_ci,
                           relative_shift, sign_flip_p, tau_interval, win_rate)
from saliency.metric import INSERTION

N_RESAMPLES = 2000


def test_mean_ci_contains_the_true_mean_and_is_reproducible():
    values = np.random.default_rng(1).normal(0.3, 0.1, size=2000)
    mean, low, high = mean_ci(values, n_resamples=N_RESAMPLES)
    assert mean == pytest.approx(values.mean())
    assert low < 0.3 < high and high - low < 0.02
    assert mean_ci(values, n_resamples=N_RESAMPLES) == (mean, low, high)
    assert mean_ci(values, n_resamples=N_RESAMPLES, seed=1) != (mean, low, high)


def test_mean_ci_is_scipys_bca_interval():
    values = np.random.default_rng(2).exponential(size=40)  # skewed: BCa differs from percentile
    _, low, high = mean_ci(values, confidence=0.9, n_resamples=N_RESAMPLES, seed=5)
    bca, pct = (scipy.stats.bootstrap((values,), np.mean, confidence_level=0.9, n_resamples=N_RESAMPLES, method=m,
                                      rng=np.random.default_rng(5)).confidence_interval for m in ("BCa", "percentile"))
    assert (low, high) == (bca.low, bca.high)
    assert (low, high) != (pct.low, pct.high)


def test_mean_ci_of_constant_values_is_degenerate_not_nan():
    assert mean_ci(np.full(30, 0.25)) == pytest.approx((0.25, 0.25, 0.25))


def test_paired_constant_shift_has_a_degenerate_interval():
    b = np.random.default_rng(3).uniform(size=50)
    result = paired_comparison(b + 0.1, b)
    assert result["n"] == 50
    assert (result["mean_diff"], result["low"], result["high"]) == pytest.approx((0.1, 0.1, 0.1), abs=1e-12)


def test_paired_wilcoxon_p_is_scipys():
    rng = np.random.default_rng(4)
    a = rng.normal(size=30)
    b = a + rng.normal(0.3, 1.0, size=30)
    result = paired_comparison(a, b)
    assert result["p_wilcoxon"] == scipy.stats.wilcoxon(a, b).pvalue
    assert result["mean_diff"] == pytest.approx(np.mean(a - b))
    assert result["low"] < result["mean_diff"] < result["high"]
    assert paired_comparison(a, a)["p_wilcoxon"] == 1.0
    with pytest.raises(ValueError, match="paired"):
        paired_comparison(a, b[:-1])


def test_holm_by_hand():
    # sorted 0.01, 0.03, 0.04 -> 3*0.01, 2*0.03, max(0.06, 1*0.04): back in input order
    assert holm([0.01, 0.04, 0.03]) == pytest.approx([0.03, 0.06, 0.06])
    assert holm([0.6, 0.7]) == pytest.approx([1.0, 1.0])  # 2*0.6 capped at 1, then monotone
    assert holm([0.02, 0.001, 0.2, 0.04]) == pytest.approx([0.06, 0.004, 0.2, 0.08])
    with pytest.raises(ValueError):
        holm([0.1, 1.5])


def test_relative_improvement_by_hand():
    # insertion: ((0.6 - 0.5) / 0.5 + (0.6 - 0.4) / 0.4) / 2 = (0.2 + 0.5) / 2
    assert relative_improvement(0.6, [0.5, 0.4], "ins") == pytest.approx(0.35)
    # deletion: ((0.2 - 0.1) / 0.2 + (0.4 - 0.1) / 0.4) / 2 = (0.5 + 0.75) / 2
    assert relative_improvement(0.1, {"ig": 0.2, "sm": 0.4}, "del") == pytest.approx(0.625)
    with pytest.raises(ValueError, match="game"):
        relative_improvement(0.1, [0.2], "auc")


def test_relative_improvement_ci_resamples_images_jointly():
    rng = np.random.default_rng(6)
    la = rng.uniform(0.2, 0.8, size=40)
    # every image's baseline AUC is half LA's: +100 % in every joint resample, a point interval
    value, low, high = relative_improvement_ci(la, {"x": la / 2, "y": la / 2}, "ins", n_resamples=N_RESAMPLES)
    assert (value, low, high) == pytest.approx((1.0, 1.0, 1.0))
    other = rng.uniform(0.2, 0.8, size=40)
    value, low, high = relative_improvement_ci(la, {"x": other, "y": la / 2}, "del", n_resamples=N_RESAMPLES)
    assert value == pytest.approx(relative_improvement(la.mean(), [other.mean(), la.mean() / 2], "del"))
    assert low < value < high


def test_rank_agreement():
    a = {"la": 0.9, "ig": 0.5, "sm": 0.3, "eg": 0.1}
    assert rank_agreement(a, {"la": 9, "ig": 5, "sm": 3, "eg": 1, "only_b": 100}) == pytest.approx((1.0, 1 / 12))
    assert rank_agreement(a, {"la": 1, "ig": 3, "sm": 5, "eg": 9})[0] == pytest.approx(-1.0)
    deletion_like = {"la": 1, "ig": 3, "sm": 5, "eg": 9}  # lower is better
    assert rank_agreement(a, deletion_like, higher_is_better=(True, False))[0] == pytest.approx(1.0)
    assert rank_agreement(a, {"la": 9, "ig": 5, "sm": 3, "eg": 1}, higher_is_better=False)[0] == pytest.approx(1.0)
    tau, p = rank_agreement(a, {"la": 9, "ig": 3, "sm": 5, "eg": 1})
    expected = scipy.stats.kendalltau([0.9, 0.5, 0.3, 0.1], [9, 3, 5, 1])
    assert (tau, p) == pytest.approx((expected.statistic, expected.pvalue)) and tau == pytest.approx(4 / 6)
    assert np.isnan(rank_agreement(a, {"la": 1, "only_b": 2})).all()  # one shared method: no ranking


# ---------------------------------------------------------------- the tables' test, interval and effect sizes


def flip_counts(d, shift=0.0):
    """The exact sign-flip test by hand: over all 2^n sign patterns, how many give a mean of
    s * (d - shift) at least / at most the observed one."""
    d = np.asarray(d, dtype=float) - shift
    means = np.array([np.mean(np.array(signs) * d) for signs in itertools.product([1, -1], repeat=len(d))])
    observed = d.mean()
    return (means >= observed - 1e-12).sum(), (means <= observed + 1e-12).sum(), len(means)


def test_sign_flip_p_is_the_exact_test_by_hand_and_scipys():
    d = np.array([0.3, 0.1, 0.25, 0.4, 0.2])
    greater, less, total = flip_counts(d)
    assert (greater, total) == (1, 32)  # only the observed signs give a mean that large
    assert sign_flip_p(d)[0] == pytest.approx(2 * min(greater, less) / total) == pytest.approx(1 / 16)
    d = np.random.default_rng(0).normal(0.05, 0.1, size=30)  # random sign patterns: scipy's Monte Carlo p
    expected = scipy.stats.permutation_test((d,), np.mean, permutation_type="samples", n_resamples=N_RESAMPLES,
                                            rng=np.random.default_rng(0)).pvalue
    assert sign_flip_p(d, n_resamples=N_RESAMPLES)[0] == expected
    rows = np.stack([d, d[::-1] - 0.05, d * 0])
    together = sign_flip_p(rows, n_resamples=N_RESAMPLES)
    assert together[0] == expected and together[2] == 1.0  # one row's p does not depend on the others
    assert together[1] == sign_flip_p(rows[1], n_resamples=N_RESAMPLES)[0]


def test_holm_multipliers_are_the_steps_that_decided():
    # sorted 0.01 (3 x 0.01 < 0.05: rejected), 0.03 (2 x 0.03 >= 0.05: Holm stops): the rest wait at step 2
    assert holm_multipliers([0.01, 0.04, 0.03]).tolist() == [3, 2, 2]
    assert holm_multipliers([0.001, 0.002, 0.01]).tolist() == [3, 2, 1]  # all rejected: 3, 2, 1
    assert holm_multipliers([0.5, 0.6]).tolist() == [2, 2]


def subset_means(d):
    """The means of every non-empty subset of d: where the exact sign-flip test's p steps."""
    return np.sort([np.mean(c) for k in range(1, len(d) + 1) for c in itertools.combinations(d, k)])


@pytest.mark.parametrize("multiplier, k, shift", [(1, 6, 0.0), (2, 3, 0.0), (1, 6, 0.1), (2, 3, -0.3)])
def test_inverted_interval_ends_are_the_exact_tests_subset_means(multiplier, k, shift):
    """n = 8, exact (256 sign patterns): delta is kept while 2 (1 + #{subset means <= delta}) / 256 >=
    0.05 / multiplier, so the interval runs from the k-th smallest subset mean to the k-th largest
    (k = 6 at 95%, 3 at 97.5%): Hartigan's subset-mean interval."""
    d = np.array([0.12, -0.03, 0.3, 0.07, 0.21, -0.08, 0.15, 0.02]) + shift
    means = subset_means(d)
    outside = means[k - 1] > 0 or means[-k] < 0  # the test rejects 0: the verdict is not n.s.
    assert outside == (shift != 0)
    low, high = inverted_intervals(d[None], [multiplier], [outside])
    assert low[0] == pytest.approx(means[k - 1], abs=1e-6) and high[0] == pytest.approx(means[-k], abs=1e-6)
    greater, less, total = flip_counts(d, means[k - 1])  # the end itself is kept; just below it is not
    assert 2 * min(greater, less) / total * multiplier >= 0.05
    greater, less, total = flip_counts(d, means[k - 1] - 1e-4)
    assert 2 * min(greater, less) / total * multiplier < 0.05


def test_too_few_images_give_an_unbounded_interval():
    low, high = inverted_intervals(np.array([[0.2, 0.3]]), [1], [False])  # p >= 1/2 for every shift
    assert (low[0], high[0]) == (-np.inf, np.inf)


def test_no_row_of_a_constructed_table_shows_an_interval_that_contradicts_its_verdict():
    """Tables of 11 comparisons with effects around the significance boundary, as in the paper's
    tables; the interval (at the row's Holm level) excludes 0 exactly where the verdict is not n.s."""
    rng = np.random.default_rng(7)
    seen = set()
    for table in range(4):
        lead = rng.uniform(0.1, 0.6, size=24)
        others = lead - rng.normal(0, 0.04, size=24) - np.linspace(-0.04, 0.04, 11)[:, None]
        family = paired_family(lead, others, INSERTION, n_resamples=2000, seed=table)
        assert family["p_holm"].tolist() == pytest.approx(holm(family["p"]))
        for i, verdict in enumerate(family["verdict"]):
            excludes_zero = family["low"][i] > 0 or family["high"][i] < 0
            assert excludes_zero == (verdict != "n.s."), (table, i)
            assert family["low"][i] <= family["mean_diff"][i] <= family["high"][i]
            seen.add(verdict)
        assert family["level"].tolist() == pytest.approx(1 - 0.05 / holm_multipliers(family["p"]))
    assert seen == {"better", "worse", "n.s."}  # the constructed tables hold all three


def test_win_rate_and_relative_shift_by_hand():
    la, other = np.array([0.5, 0.2, 0.4, 0.3]), np.array([0.1, 0.2, 0.6, 0.1])
    assert win_rate(la, other) == pytest.approx((2 + 0.5) / 4)  # images 0 and 3 won, 1 a tie
    assert win_rate(la, other, higher_is_better=False) == pytest.approx((1 + 0.5) / 4)
    # (0.4/0.6, 0, -0.2/1.0, 0.2/0.4): the median of 2/3, 0, -1/5, 1/2 is (0 + 1/2) / 2
    assert relative_shift(la, other) == pytest.approx(0.25)
    assert relative_shift([0.0, 0.2], [0.0, 0.2]) == 0.0


def test_geometric_improvement_and_baseline_ratios_by_hand():
    assert geometric_improvement(0.6, [0.3, 0.6], "ins") == pytest.approx(np.sqrt(2) - 1)  # ratios 2 and 1
    assert geometric_improvement(0.1, {"a": 0.2, "b": 0.4}, "del") == pytest.approx(np.sqrt(8) - 1)  # B / LA
    # a near-zero baseline: the paper's mean explodes, the geometric form moves by a logarithm
    assert relative_improvement(0.5, [0.4, 0.001], "ins") == pytest.approx((0.25 + 499) / 2)
    assert geometric_improvement(0.5, [0.4, 0.001], "ins") == pytest.approx(np.sqrt(1.25 * 500) - 1)
    assert baseline_ratios(0.6, {"x": 0.5, "y": 0.4}, "ins") == pytest.approx({"x": 0.2, "y": 0.5})
    la = np.random.default_rng(8).uniform(0.2, 0.8, size=30)
    value, low, high = geometric_improvement_ci(la, {"x": la / 2, "y": la / 4}, "ins", n_resamples=N_RESAMPLES)
    assert (value, low, high) == pytest.approx((np.sqrt(8) - 1,) * 3)  # every resample: ratios 2 and 4


def test_kendall_tau_b_matches_scipy_on_every_row_ties_included():
    rng = np.random.default_rng(9)
    x, y = rng.integers(0, 4, size=(50, 7)), rng.integers(0, 5, size=(50, 7))  # many ties
    ours = kendall_tau_b(x, y)
    for row in range(50):
        assert ours[row] == pytest.approx(scipy.stats.kendalltau(x[row], y[row]).statistic)


def test_rank_intervals_separate_a_clear_leader_from_a_tie():
    rng = np.random.default_rng(10)
    leader = rng.normal(0.9, 0.01, size=40)
    values = rng.normal(0.5, 0.05, size=40)
    tied = np.stack([values, values[::-1]])  # the same mean, other images
    ranks, low, high = rank_intervals(np.vstack([leader, tied]), n_resamples=N_RESAMPLES)
    assert ranks[0] == 1 and (low[0], high[0]) == (1, 1)
    assert ranks[1:].tolist() == [2, 2] and (low[1], high[1]) == (2, 3) == (low[2], high[2])  # ties share the best
    ranks, _, _ = rank_intervals(np.vstack([leader, tied]), higher_is_better=False, n_resamples=N_RESAMPLES)
    assert ranks[0] == 3


def test_tau_interval_is_scipys_tau_with_a_bootstrap_interval():
    rng = np.random.default_rng(11)
    a = np.linspace(0.1, 0.9, 6)[:, None] + rng.normal(0, 0.02, size=(6, 30))
    found = tau_interval(a, a + rng.normal(0, 0.02, size=(6, 30)), n_resamples=N_RESAMPLES)
    assert (found["tau"], found["low"], found["high"], found["n"]) == pytest.approx((1, 1, 1, 30))  # never out of order
    b = rng.uniform(size=(6, 30))
    found = tau_interval(a, b, higher_is_better=(True, False), n_resamples=N_RESAMPLES)
    expected = scipy.stats.kendalltau(a.mean(axis=1), -b.mean(axis=1))
    assert (found["tau"], found["p"]) == pytest.approx((expected.statistic, expected.pvalue))
    assert found["low"] <= found["tau"] <= found["high"] and found["high"] - found["low"] > 0.2
