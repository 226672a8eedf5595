"""K completions per image drawn from the model's latent: how different they are, how good one
is, and how good the best is, as Pluralistic (Zheng et al. 2019) reports them; also by hole size.

Draws come from where the model draws at inference: the learned prior p(z | visible) of a
`model.prior: learned` checkpoint, else the encoder's latent. Draw j uses a generator seeded
`seed + j`, passed through the set batch by batch, so the figures are reproducible. Per image:
- `hole_l1_pairwise`: mean absolute difference inside the hole between two draws, over the
  K (K - 1) / 2 pairs (0: the latent is ignored, a collapsed posterior);
- `hole_ssim_pairwise`: SSIM between two draws (pasted back) over the hole's pixels, the mean
  of the SSIM map (Wang et al.'s settings, scikit-image's full map) over the missing pixels,
  over the pairs (1: the draws are alike; lower is more diverse);
- `sample_ssim`, `sample_hole_psnr`: the mean of single draws' scores, what a user gets from one;
- `best_of_k_ssim`, `best_of_k_hole_psnr`: the best draw's: an **oracle** (it looks at the
  original to choose), an upper bound, not what any one draw gives.
"""

from __future__ import annotations

import numpy as np
import pandas as pd
import torch
from scipy.ndimage import gaussian_filter

from vaeinpaint.evaluation import metrics
from vaeinpaint.evaluation.by_hole_size import BINS, bin_name, bin_of
from vaeinpaint.evaluation.realism import HoleSWD
from vaeinpaint.modeling.layout import from_model, masks_to_model, to_model
from vaeinpaint.progress import progress

PER_IMAGE = ["hole_l1_pairwise", "hole_ssim_pairwise", "sample_ssim", "best_of_k_ssim", "sample_hole_psnr", "best_of_k_hole_psnr"]
BIN_COLUMNS = ["bin", "hole_share", "n", "samples", *PER_IMAGE]
C1, C2 = 0.01**2, 0.03**2  # SSIM's constants for data range 1 (metrics.SSIM_SETTINGS)


@torch.no_grad()
def draw_batch(model: torch.nn.Module, images: np.ndarray, masks: np.ndarray, generators: list, device: torch.device) -> np.ndarray:
    """[K, n, ...] float32 draws for a batch of uint8 `images`, one per generator (as
    `evaluate.restore` computes a draw: fp32, the same layout)."""
    model.eval()
    x = to_model(torch.from_numpy(np.ascontiguousarray(images)).to(device), torch.contiguous_format)
    m = masks_to_model(torch.from_numpy(np.ascontiguousarray(masks)).to(device), torch.contiguous_format)
    return np.stack([from_model(model(x * (1 - m), m, sample=True, generator=g)[0].float()).cpu().numpy() for g in generators])


def _filtered(a: np.ndarray) -> np.ndarray:
    """scikit-image's Gaussian window (sigma 1.5, truncate 3.5, reflected edges) over each image's
    height and width, for a stack [n, h, w(, C)]."""
    sigma = (0, 1.5, 1.5) + ((0,) if a.ndim == 4 else ())
    return gaussian_filter(a, sigma=sigma, mode="reflect", truncate=3.5)


def hole_of(masks: np.ndarray, images: np.ndarray) -> np.ndarray:
    """Masks [n, h, w] as booleans weighing every value of `images` (colour: every channel)."""
    hole = masks.astype(bool)
    return np.broadcast_to(hole[..., None], images.shape) if images.ndim == hole.ndim + 1 else hole


def hole_ssim_pairs(draws: np.ndarray, masks: np.ndarray) -> np.ndarray:
    """Per image, SSIM between two draws (pasted, float64 [K, n, h, w(, C)]) averaged over the
    hole's values, then over the pairs: scikit-image's full SSIM map (population covariances),
    each draw's local means and variances filtered once."""
    k = len(draws)
    means = [_filtered(d) for d in draws]
    variances = [_filtered(d * d) - mu * mu for d, mu in zip(draws, means)]
    hole = hole_of(masks, draws[0])
    axes = tuple(range(1, draws[0].ndim))
    count = np.maximum(hole.sum(axis=axes), 1)
    pairs = []
    for a in range(k):
        for b in range(a + 1, k):
            covariance = _filtered(draws[a] * draws[b]) - means[a] * means[b]
            s = ((2 * means[a] * means[b] + C1) * (2 * covariance + C2)) / (
                (means[a] ** 2 + means[b] ** 2 + C1) * (variances[a] + variances[b] + C2)
            )
            pairs.append(np.where(hole, s, 0.0).sum(axis=axes) / count)
    return np.mean(pairs, axis=0)


def score_draws(originals: np.ndarray, masks: np.ndarray, draws: np.ndarray, chunk: int = 32) -> tuple[pd.DataFrame, np.ndarray]:
    """(per-image figures (`PER_IMAGE`), the pairwise hole L1 [pairs, n] they average) of `draws`
    (float [K, n, ...]) of uint8 `originals` under `masks`; `chunk` images at a time (the SSIM
    maps of K draws in float64 are large)."""
    k = len(draws)
    hole = hole_of(masks, originals)
    hole_pixels = np.maximum(hole.reshape(len(hole), -1).sum(1), 1)
    pair_l1 = np.stack(
        [(np.abs(draws[a] - draws[b]) * hole).reshape(len(hole), -1).sum(1) / hole_pixels for a in range(k) for b in range(a + 1, k)]
    )
    parts = []
    for start in range(0, len(originals), chunk):
        part = slice(start, start + chunk)
        reference = originals[part].astype(np.float64) / 255.0
        pasted = np.stack([metrics.paste_back(reference, d[part].astype(np.float64), masks[part]) for d in draws])
        ssims = np.stack([metrics.ssim_batch(reference, p) for p in pasted])
        psnrs = np.stack([metrics.hole_psnr(reference, p, masks[part]) for p in pasted])
        figures = {
            "hole_ssim_pairwise": hole_ssim_pairs(pasted, masks[part]),
            "sample_ssim": ssims.mean(axis=0),
            "best_of_k_ssim": ssims.max(axis=0),
            "sample_hole_psnr": psnrs.mean(axis=0),
            "best_of_k_hole_psnr": psnrs.max(axis=0),
        }
        parts.append(pd.DataFrame({"hole_l1_pairwise": pair_l1[:, part].mean(axis=0), **figures}))
    return (pd.concat(parts, ignore_index=True) if parts else pd.DataFrame(columns=PER_IMAGE)), pair_l1


def sample(
    model: torch.nn.Module,
    originals: np.ndarray,
    masks: np.ndarray,
    k: int,
    seed: int,
    device: torch.device | str = "cpu",
    batch_size: int = 256,
    realism: HoleSWD | None = None,
) -> tuple[pd.DataFrame, dict[str, float], list[np.ndarray] | None]:
    """Draw `k` completions of every image, batch by batch: (per-image figures, the summary
    `summarize` gives, and with `realism` the descriptors of the draws' hole patches, patch p
    from draw p mod k, for `HoleSWD.distance_of`)."""
    if k < 2:
        raise ValueError("diversity needs at least two samples")
    device = torch.device(device)
    generators = [torch.Generator(device=device).manual_seed(seed + j) for j in range(k)]
    sources = realism.sources(k) if realism is not None else None
    tables, pair_l1, descriptors = [], [], []
    for start in progress(range(0, len(originals), batch_size), desc=f"{k} draws", unit="batch"):
        stop = start + batch_size
        draws = draw_batch(model, originals[start:stop], masks[start:stop], generators, device)
        table, pairs = score_draws(originals[start:stop], masks[start:stop], draws)
        tables.append(table)
        pair_l1.append(pairs)
        if realism is not None:
            descriptors.append(realism.descriptors(draws, start, sources))
    table = pd.concat(tables, ignore_index=True)
    joined = [np.concatenate(level) for level in zip(*descriptors)] if descriptors else None
    return table, summarize(table, np.concatenate(pair_l1, axis=1), k), joined


def summarize(table: pd.DataFrame, pair_l1: np.ndarray, k: int) -> dict[str, float]:
    """What metrics/evaluate.json's test block carries of the draws."""
    best = metrics.summary(table["best_of_k_ssim"].to_numpy())
    return {
        "samples": k,
        "samples_hole_l1_pairwise": round(float(np.mean(pair_l1)), 6),
        "samples_hole_ssim_pairwise": metrics.summary(table["hole_ssim_pairwise"].to_numpy())["mean"],
        "best_of_k_ssim_mean": best["mean"],  # an oracle: the upper bound of K draws, not one draw
        "best_of_k_ssim_std": best["std"],
        "sample_ssim_mean": metrics.summary(table["sample_ssim"].to_numpy())["mean"],
        "best_of_k_hole_psnr": metrics.summary(table["best_of_k_hole_psnr"].to_numpy())["mean"],  # an oracle too
        "sample_hole_psnr": metrics.summary(table["sample_hole_psnr"].to_numpy())["mean"],
    }


def diversity(
    model: torch.nn.Module,
    originals: np.ndarray,
    masks: np.ndarray,
    k: int,
    seed: int,
    device: torch.device | str = "cpu",
    batch_size: int = 256,
) -> dict[str, float]:
    """The summary of `k` draws per image (`sample` without the per-image table)."""
    return sample(model, originals, masks, k, seed, device, batch_size)[1]


def by_hole_size(table: pd.DataFrame, shares: np.ndarray, k: int) -> pd.DataFrame:
    """`table` (per-image figures, in the order of `shares`, each image's hole share) -> one row
    per non-empty bin of hole share (as `by_hole_size.by_hole_size`): the bin, its middle, n, K
    and the mean of every figure."""
    bins = bin_of(shares)
    rows = []
    for b in range(BINS):
        chosen = table[bins == b]
        if len(chosen):
            means = {c: round(float(chosen[c].mean()), 6) for c in PER_IMAGE}
            rows.append({"bin": bin_name(b), "hole_share": round((b + 0.5) / BINS, 3), "n": len(chosen), "samples": k, **means})
    return pd.DataFrame(rows, columns=BIN_COLUMNS)
