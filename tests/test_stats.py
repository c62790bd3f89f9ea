"""labench.stats on hand-made data with known answers, and against scipy called directly."""
import numpy as np
import pytest
import scipy.stats

from labench.stats import (holm, mean_ci, paired_comparison, rank_agreement, relative_improvement,
                           relative_improvement_ci)

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
