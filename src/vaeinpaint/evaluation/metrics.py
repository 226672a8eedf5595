"""How restorations are scored.

SSIM is scikit-image's `structural_similarity` with the settings of Wang et al. (2004),
the paper that defined SSIM: an 11x11 Gaussian window with sigma 1.5
(`gaussian_weights=True, sigma=1.5`), population covariances
(`use_sample_covariance=False`), and `data_range=1.0` because images are floats in
[0, 1]. It is computed on the whole image. Colour images ([h, w, 3]) are scored with
`channel_axis=-1`: scikit-image computes the SSIM map of each of R, G and B separately with
the same settings and returns the mean over channels of each channel's mean SSIM (no colour
transform, no weighting). When the known pixels are pasted back, every window that does not
touch the hole scores exactly 1, which is why whole-image SSIM flatters every method (even
leaving the hole black scores ~0.7 at a 20% square); `hole_psnr` and `hole_l1` look only at
the missing pixels, over all channels of each (a colour image's hole counts 3 values per
pixel).
"""

from __future__ import annotations

import math

import numpy as np
from skimage.metrics import structural_similarity

SSIM_SETTINGS = {"data_range": 1.0, "gaussian_weights": True, "sigma": 1.5, "use_sample_covariance": False}


def ssim(reference: np.ndarray, restored: np.ndarray) -> float:
    """SSIM of two float images in [0, 1]: gray [h, w], or colour [h, w, C] (mean over channels)."""
    channels = {"channel_axis": -1} if reference.ndim == 3 else {}
    return float(structural_similarity(reference.astype(np.float64), restored.astype(np.float64), **SSIM_SETTINGS, **channels))


def ssim_batch(references: np.ndarray, restored: np.ndarray) -> np.ndarray:
    """Per-image SSIM of two [n, h, w] or [n, h, w, C] stacks."""
    return np.array([ssim(a, b) for a, b in zip(references, restored)], dtype=np.float64)


def _per_value(masks: np.ndarray, images: np.ndarray) -> np.ndarray:
    """Masks [n, h, w] as booleans shaped to weigh every value of `images` ([n, h, w(, C)])."""
    m = masks.astype(bool)
    return np.broadcast_to(m[..., None], images.shape) if images.ndim == m.ndim + 1 else m


def _hole_mean(values: np.ndarray, masks: np.ndarray) -> np.ndarray:
    m = _per_value(masks, values)
    axes = tuple(range(1, values.ndim))
    return np.where(m, values, 0.0).sum(axis=axes) / np.maximum(m.sum(axis=axes), 1)


def hole_mse(reference: np.ndarray, restored: np.ndarray, masks: np.ndarray) -> np.ndarray:
    """Mean squared error over the missing pixels (mask == 1; every channel of each) of each image."""
    return _hole_mean((reference.astype(np.float64) - restored.astype(np.float64)) ** 2, masks)


def hole_psnr(reference: np.ndarray, restored: np.ndarray, masks: np.ndarray) -> np.ndarray:
    """PSNR in dB over the missing pixels only (peak 1.0); a perfect fill is capped at 100 dB."""
    return 10.0 * np.log10(1.0 / np.maximum(hole_mse(reference, restored, masks), 1e-10))


def hole_l1(reference: np.ndarray, restored: np.ndarray, masks: np.ndarray) -> np.ndarray:
    """Mean absolute error over the missing pixels (every channel of each) of each image."""
    return _hole_mean(np.abs(reference.astype(np.float64) - restored.astype(np.float64)), masks)


def paste_back(damaged_or_original: np.ndarray, output: np.ndarray, masks: np.ndarray) -> np.ndarray:
    """Known pixels from the input, missing ones from the output: input*(1-mask) + output*mask.
    Masks have no channel axis; colour images ([..., h, w, C]) take the mask on every channel."""
    m = masks.astype(np.float64)
    if output.ndim == m.ndim + 1:
        m = m[..., None]
    return damaged_or_original * (1.0 - m) + output * m


def summary(values: np.ndarray) -> dict[str, float]:
    """Mean and (population) standard deviation, rounded for JSON."""
    values = np.asarray(values, dtype=np.float64)
    if len(values) == 0:
        return {"mean": math.nan, "std": math.nan}
    return {"mean": round(float(values.mean()), 6), "std": round(float(values.std()), 6)}
