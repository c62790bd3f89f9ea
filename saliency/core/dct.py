"""Orthonormal 2-D DCT-II and its inverse over the last two dimensions, as matrix products.

AttEXplore perturbs images in the frequency domain: idct2(dct2(x) * mask). The published code
uses an FFT-based DCT without normalisation; with any per-coefficient scaling s and its
inverse, idct2(dct2(x) * mask) = D^T (mask * (D x)) is the same, because a diagonal scaling
commutes with an element-wise mask, so the orthonormal form gives the same images.
"""
from __future__ import annotations

import math

import torch


def dct_matrix(n: int, dtype=torch.float32, device=None) -> torch.Tensor:
    """[n, n] orthonormal DCT-II matrix D: D[k, i] = s_k cos(pi (2i + 1) k / (2n)),
    s_0 = sqrt(1/n), s_k = sqrt(2/n); D @ D.T = I. Built in float64, then cast."""
    k = torch.arange(n, dtype=torch.float64).view(-1, 1)
    i = torch.arange(n, dtype=torch.float64).view(1, -1)
    d = torch.cos(math.pi * (2 * i + 1) * k / (2 * n)) * math.sqrt(2.0 / n)
    d[0] /= math.sqrt(2.0)
    return d.to(dtype=dtype, device=device)


def dct2(x: torch.Tensor) -> torch.Tensor:
    """Orthonormal DCT-II over the last two dimensions: D_H x D_W^T."""
    dh = dct_matrix(x.shape[-2], x.dtype, x.device)
    dw = dh if x.shape[-1] == x.shape[-2] else dct_matrix(x.shape[-1], x.dtype, x.device)
    return dh @ x @ dw.T


def idct2(coefficients: torch.Tensor) -> torch.Tensor:
    """Inverse of dct2 (orthonormal DCT-III): D_H^T X D_W."""
    dh = dct_matrix(coefficients.shape[-2], coefficients.dtype, coefficients.device)
    dw = dh if coefficients.shape[-1] == coefficients.shape[-2] else dct_matrix(
        coefficients.shape[-1], coefficients.dtype, coefficients.device)
    return dh.T @ coefficients @ dw
