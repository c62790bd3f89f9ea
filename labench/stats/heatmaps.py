"""A map reduced to a 2-D heatmap: the published one (`heatmap`) that the figures show, and the
signed one that keeps evidence for and against the class apart (figures and the sanity checks'
similarity)."""
from __future__ import annotations

import numpy as np


def heatmap(attribution, low_percentile=80, high_percentile=99):
    """[C,H,W] map -> [H,W] in [0,1]: channel mean clipped to its low..high percentiles, rescaled."""
    gray = np.asarray(attribution, dtype=np.float64).mean(axis=0)
    low, high = np.percentile(gray, low_percentile), np.percentile(gray, high_percentile)
    return (np.clip(gray, low, high) - low) / (high - low + 1e-6)


def signed_heatmap(attribution, percentile=99):
    """[C,H,W] map -> [H,W] in [-1,1]: channel mean over its `percentile` of absolute values, clipped.

    Keeps the sign, so evidence for (positive) and against (negative) the class stay apart; an
    all-zero map gives zeros.
    """
    mean = np.asarray(attribution, dtype=np.float64).mean(axis=0)
    scale = np.percentile(np.abs(mean), percentile)
    if scale <= 0:
        scale = np.abs(mean).max()
    return np.clip(mean / scale, -1, 1) if scale > 0 else np.zeros_like(mean)
