"""Class-level inference (labench.stats.clusters) against scipy and hand-computed cases."""
import itertools

import numpy as np
import pytest
from scipy import stats

from labench.stats import clusters
from labench.stats.clusters import (class_means, exact_sign_flip_p, hodges_lehmann, rank_sets, sign_test_p, tost_p,
                                    within_class_correlation)
from labench.stats.inference import mean_ci


def test_class_means_by_hand():
    ids, means = class_means([1.0, 3.0, 10.0, 2.0, 4.0], [7, 7, 2, 9, 9])
    assert ids.tolist() == [2, 7, 9] and means.tolist() == [10.0, 2.0, 3.0]
    with pytest.raises(ValueError):
        class_means([1.0, 2.0], [1])


@pytest.mark.parametrize("alternative", ["two-sided", "greater", "less"])
def test_exact_sign_flip_matches_scipy_exact_permutation_test(alternative):
    d = np.random.default_rng(3).normal(0.3, 1.0, size=11)
    p, se = exact_sign_flip_p(d, alternative)
    expected = stats.permutation_test((d,), np.mean, permutation_type="samples", n_resamples=np.inf,
                                      alternative=alternative).pvalue
    assert se == 0.0 and p == pytest.approx(expected, abs=1e-12)


def test_exact_sign_flip_by_hand():
    # d = (1, 2, 3): of the 8 sign patterns only (+,+,+) and (-,-,-) reach |mean| >= 2
    assert exact_sign_flip_p([1.0, 2.0, 3.0]) == (0.25, 0.0)
    assert exact_sign_flip_p([1.0, 2.0, 3.0], "greater") == (0.125, 0.0)
    assert exact_sign_flip_p([0.0, 0.0]) == (1.0, 0.0)


def test_many_classes_fall_back_to_monte_carlo_with_its_error(monkeypatch):
    monkeypatch.setattr(clusters, "EXACT_MAX", 4)
    monkeypatch.setattr(clusters, "MC_RESAMPLES", 20_000)
    d = np.array([0.5, -0.2, 0.9, 0.4, 0.1, 0.7])
    p, se = exact_sign_flip_p(d)
    exact = stats.permutation_test((d,), np.mean, permutation_type="samples", n_resamples=np.inf).pvalue
    assert se == pytest.approx(np.sqrt(p * (1 - p) / 20_000)) and abs(p - exact) < 4 * se


def test_the_class_interval_is_scipys_bca_over_class_means_and_wider_than_over_images():
    rng = np.random.default_rng(0)
    class_effect = rng.normal(0, 1.0, size=20)
    classes = np.repeat(np.arange(20), 8)
    values = class_effect[classes] + rng.normal(0, 0.1, size=len(classes))
    ids, means = class_means(values, classes)
    mean, low, high = mean_ci(means, n_resamples=2000, seed=1)
    expected = stats.bootstrap((means,), np.mean, n_resamples=2000, method="BCa",
                               random_state=np.random.default_rng(1)).confidence_interval
    assert (low, high) == (pytest.approx(expected.low), pytest.approx(expected.high))
    assert mean == pytest.approx(values.mean())  # balanced classes: the same point estimate
    images = stats.bootstrap((values,), np.mean, n_resamples=2000, method="BCa",
                             random_state=np.random.default_rng(1)).confidence_interval
    assert (high - low) > 2 * (images.high - images.low)  # images of a class are not independent draws
    assert mean_ci([0.2, 0.2, 0.2]) == pytest.approx((0.2, 0.2, 0.2))


def test_within_class_correlation_by_hand():
    # balanced, 2 classes of 2: means 1 and 3, grand mean 2; MSB = 2*(1+1)/1 = 4; MSW = (0+0+... )
    values = [0.0, 2.0, 2.0, 4.0]
    classes = [0, 0, 1, 1]
    # within: (1 + 1 + 1 + 1) / (4 - 2) = 2; n0 = 2; ICC = (4 - 2) / (4 + 2) = 1/3
    assert within_class_correlation(values, classes) == pytest.approx(1 / 3)
    assert within_class_correlation([1.0, 1.0, 5.0, 5.0], classes) == pytest.approx(1.0)
    assert np.isnan(within_class_correlation([1.0, 2.0], [3, 3]))  # one class
    assert np.isnan(within_class_correlation([1.0, 2.0], [3, 4]))  # one image per class


def test_sign_test_is_scipys_binomial_test_without_ties():
    a = np.array([0.5, 0.6, 0.7, 0.2, 0.9, 0.4, 0.4])
    b = np.array([0.4, 0.5, 0.8, 0.1, 0.3, 0.4, 0.1])  # 5 wins, 1 loss, 1 tie
    assert sign_test_p(a, b) == pytest.approx(stats.binomtest(5, 6, 0.5).pvalue)
    assert sign_test_p(a, a) == 1.0


def test_hodges_lehmann_by_hand():
    # Walsh averages of (1, 2, 4): 1, 1.5, 2.5, 2, 3, 4 -> median 2.25
    assert hodges_lehmann([1.0, 2.0, 4.0]) == 2.25
    assert hodges_lehmann([-1.0, 10.0]) == pytest.approx(np.median([-1.0, 4.5, 10.0]))


def test_tost_by_hand():
    d = np.array([0.01, -0.02, 0.015, 0.0, 0.005])
    margin = 0.05
    p = tost_p(d, margin)
    lower = stats.permutation_test((d + margin,), np.mean, permutation_type="samples", n_resamples=np.inf,
                                   alternative="greater").pvalue
    upper = stats.permutation_test((d - margin,), np.mean, permutation_type="samples", n_resamples=np.inf,
                                   alternative="less").pvalue
    assert p == pytest.approx(max(lower, upper))
    assert p == pytest.approx(1 / 32)  # every difference within the margin: only all-plus flips reach it
    assert tost_p(d + 0.1, margin) > 0.5  # shifted beyond the margin: no evidence of equivalence
    with pytest.raises(ValueError):
        tost_p(d, 0.0)


def test_rank_sets_from_holm_over_all_pairs():
    rng = np.random.default_rng(5)
    base = rng.normal(0, 0.01, size=12)
    scores = {"a": base + 1.0, "b": base + 0.5, "c": base + 0.5 + rng.normal(0, 0.01, size=12), "d": base}
    sets = rank_sets(scores)
    assert sets["a"] == (1, 1) and sets["d"] == (4, 4)
    assert sets["b"] == (2, 3) and sets["c"] == (2, 3)  # b and c cannot be told apart
    assert rank_sets(scores, higher_is_better=False)["d"] == (1, 1)
    # the number of pairs sets the correction: 6 pairs for 4 methods
    raw = [exact_sign_flip_p(scores[x] - scores[y])[0] for x, y in itertools.combinations(scores, 2)]
    assert len(raw) == 6


def test_class_comparisons_of_a_table_against_a_plain_computation():
    from labench.present.significance import class_tables
    from labench.spec.identity import OutputId
    from labench.stats.analysis import PerImage, class_comparisons, statistics
    from saliency.metric import DELETION, INSERTION

    rng = np.random.default_rng(11)
    labels = np.repeat([4, 9, 2, 7, 5, 1], [3, 2, 4, 3, 2, 2])  # 16 images of 6 classes, unbalanced
    n = len(labels)
    effect = {4: 0.05, 9: 0.03, 2: 0.06, 7: 0.02, 5: 0.04, 1: 0.05}
    la = {INSERTION: rng.uniform(0.3, 0.6, n), DELETION: rng.uniform(0.1, 0.3, n)}
    methods = {"la": la,
               "sm": {INSERTION: la[INSERTION] - [effect[c] for c in labels] + rng.normal(0, 0.01, n),
                      DELETION: la[DELETION] + rng.normal(0, 0.05, n)},
               "ig": {INSERTION: la[INSERTION] + rng.normal(0, 0.02, n), DELETION: la[DELETION] - 0.04}}
    tag = "efficientnet_lite0"
    per_image = PerImage({tag: methods}, {}, {tag: OutputId.make(tag, "la")})
    found = {(r.method, r.game.key): r for r in class_comparisons(per_image, np.concatenate([labels, [0, 0]]))}
    assert set(found) == {(m, g) for m in ("ig", "sm") for g in ("ins", "del")}
    for game in (INSERTION, DELETION):
        raw = {}
        for method in ("ig", "sm"):
            by_class = {}
            for d, c in zip(la[game] - methods[method][game], labels):
                by_class.setdefault(c, []).append(d)
            means = np.array([np.mean(by_class[c]) for c in sorted(by_class)])
            r = found[(method, game.key)]
            assert (r.n_images, r.n_classes) == (16, 6) and r.la_minus_method == pytest.approx(means.mean())
            raw[method] = stats.permutation_test((means,), np.mean, permutation_type="samples",
                                                 n_resamples=np.inf).pvalue
            assert r.p_value == pytest.approx(raw[method]) and r.p_se == 0
            ci = stats.bootstrap((means,), np.mean, n_resamples=10_000, method="BCa",
                                 random_state=np.random.default_rng(0)).confidence_interval
            assert (r.diff_low, r.diff_high) == (pytest.approx(ci.low), pytest.approx(ci.high))
            sign = 1 if game.higher_is_better else -1
            assert (r.classes_better, r.classes_worse) == (int((sign * means > 0).sum()), int((sign * means < 0).sum()))
        low, high = sorted(raw.values())
        holm_by_hand = {m: min(1, 2 * low) if raw[m] == low else max(min(1, 2 * low), high) for m in raw}
        for method in raw:
            assert found[(method, game.key)].p_holm == pytest.approx(holm_by_hand[method])
    # the exact test over 6 classes cannot go below 2/64: a consistent effect is "better" only if Holm allows
    assert found[("sm", "ins")].p_value == pytest.approx(2 / 64)
    # LA's deletion 0.04 higher in every class: the smallest p six classes allow, 2/64, which Holm over two
    # comparisons doubles: six classes cannot carry a verdict here, however consistent the effect
    worse = found[("ig", "del")]
    assert worse.p_value == pytest.approx(2 / 64) and worse.p_holm == pytest.approx(4 / 64) and worse.verdict == "n.s."
    assert worse.classes_worse == 6 and worse.sign_p == pytest.approx(stats.binomtest(0, 6).pvalue)
    text = "\n".join(t.title for t in class_tables(statistics(per_image, labels=labels)))
    assert "the class as the unit** (6 classes of 16 images" in text and "exact over the 2^6 sign patterns" in text
    assert class_comparisons(per_image, None) == []
