"""How alike two attribution maps of one image are (the sanity checks, labench.flows.sanity): Spearman's
rank correlation of the absolute values and of the signed values, over every value of the
maps (the C x H x W values Insertion and Deletion rank), and the SSIM of their normalised
heatmaps: the channel mean of |map| over its 99th percentile, clipped to [0, 1]
(labench.heatmaps.signed_heatmap of |map|). Not the published heatmap of the figures: it sets
the 80% lowest pixels to exactly 0, and a window where both maps are 0 counts as identical, so
two unrelated maps would score well above 0.

A map whose values are all equal ranks nothing: its rank correlation with any map is 0 (scipy
would answer NaN), so that a method whose maps vanish on a randomised model reads as unlike its
trained maps and every image keeps a value; `constant` tells such maps apart."""
from __future__ import annotations

import numpy as np
from scipy.stats import rankdata
from skimage.metrics import structural_similarity

from .heatmaps import signed_heatmap

MEASURES = {"spearman_abs": "Spearman rank correlation of |map|",
            "spearman_signed": "Spearman rank correlation of the signed map",
            "ssim": "SSIM of the normalised heatmaps"}


def constant(attribution) -> bool:
    values = np.asarray(attribution)
    return bool(values.size == 0 or values.max() == values.min())


def rank_correlation(a, b) -> float:
    """Spearman's rho of the values of two maps: Pearson's correlation of their average ranks
    (ties share the mean of their ranks); 0 where either map is constant."""
    if constant(a) or constant(b):
        return 0.0
    ranks_a = rankdata(np.asarray(a, dtype=np.float64).ravel()) - (np.size(a) + 1) / 2
    ranks_b = rankdata(np.asarray(b, dtype=np.float64).ravel()) - (np.size(b) + 1) / 2
    return float(ranks_a @ ranks_b / np.sqrt((ranks_a @ ranks_a) * (ranks_b @ ranks_b)))


def normalised_heatmap(attribution) -> np.ndarray:
    """[C,H,W] map -> [H,W] in [0,1]: the channel mean of |map| over its 99th percentile, clipped."""
    return signed_heatmap(np.abs(np.asarray(attribution, dtype=np.float64)))


def heatmap_ssim(a, b) -> float:
    """SSIM (scikit-image's defaults: 7 x 7 windows, data range 1) of the two maps' normalised heatmaps."""
    return float(structural_similarity(normalised_heatmap(a), normalised_heatmap(b), data_range=1.0))


def similarity(reference, attribution) -> dict:
    """{measure: value} of two [C,H,W] maps of one image (MEASURES' order)."""
    reference, attribution = np.asarray(reference, dtype=np.float64), np.asarray(attribution, dtype=np.float64)
    if reference.shape != attribution.shape:
        raise ValueError(f"maps of shapes {reference.shape} and {attribution.shape} cannot be compared")
    return {"spearman_abs": rank_correlation(np.abs(reference), np.abs(attribution)),
            "spearman_signed": rank_correlation(reference, attribution),
            "ssim": heatmap_ssim(reference, attribution)}
