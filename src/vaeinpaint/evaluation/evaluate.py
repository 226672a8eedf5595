"""Restoring a set with a trained model, and scoring restorations.

Every method (the model, each baseline) is scored the same way, on the same masks:
`ssim` on the whole image with the known pixels pasted back, and `hole_psnr` / `hole_l1`
over the missing pixels only (see `vaeinpaint.evaluation.metrics`). The model also gets `raw_ssim`:
its output as the network drew it, known pixels included, as the study scored it.
"""

from __future__ import annotations

import numpy as np
import pandas as pd
import torch
from PIL import Image, ImageDraw

from vaeinpaint.evaluation import metrics
from vaeinpaint.modeling.layout import from_model, masks_to_model, to_model
from vaeinpaint.modeling.precision import exact_fp32
from vaeinpaint.progress import progress


@torch.no_grad()
def restore(
    model: torch.nn.Module,
    images: np.ndarray,
    masks: np.ndarray,
    device: torch.device | str = "cpu",
    batch_size: int = 256,
    sample: bool = False,
    generator: torch.Generator | None = None,
) -> np.ndarray:
    """Raw model outputs (float32 in [0, 1], shaped like `images`: [n, s, s] or [n, s, s, 3])
    for uint8 `images` damaged by `masks`.

    With `sample=False` the latent is its mean, so the result is deterministic. Inference runs
    in fp32 even where training used bf16, and on CUDA with TF32 off (`exact_fp32`: cuDNN
    would otherwise compute fp32 convolutions at TF32's 10-bit mantissa): reported metrics
    carry no reduced-precision noise."""
    model.eval()
    device = torch.device(device)
    outputs = np.empty(images.shape, dtype=np.float32)
    with exact_fp32():
        for start in progress(range(0, len(images), batch_size), desc="restore", unit="batch"):
            x = to_model(torch.from_numpy(np.ascontiguousarray(images[start : start + batch_size])).to(device), torch.contiguous_format)
            m = masks_to_model(
                torch.from_numpy(np.ascontiguousarray(masks[start : start + batch_size])).to(device), torch.contiguous_format
            )
            out, _, _ = model(x * (1 - m), m, sample=sample, generator=generator)
            outputs[start : start + len(x)] = from_model(out.float()).cpu().numpy()
    return outputs


def score(originals: np.ndarray, masks: np.ndarray, restored: np.ndarray) -> pd.DataFrame:
    """Per-image `ssim`, `hole_psnr`, `hole_l1` of `restored` (float [n, s, s] or [n, s, s, 3])
    after pasting the known pixels of `originals` (uint8, the same shape) back."""
    reference = originals.astype(np.float64) / 255.0
    pasted = metrics.paste_back(reference, restored.astype(np.float64), masks)
    return pd.DataFrame(
        {
            "ssim": metrics.ssim_batch(reference, pasted),
            "hole_psnr": metrics.hole_psnr(reference, pasted, masks),
            "hole_l1": metrics.hole_l1(reference, pasted, masks),
        }
    )


def score_model(originals: np.ndarray, masks: np.ndarray, raw: np.ndarray) -> pd.DataFrame:
    """`score` plus `raw_ssim`: SSIM of the network's output before pasting back."""
    table = score(originals, masks, raw)
    table.insert(1, "raw_ssim", metrics.ssim_batch(originals.astype(np.float64) / 255.0, raw.astype(np.float64)))
    return table


def summarize(table: pd.DataFrame) -> dict[str, float]:
    """The numbers a subset reports: mean and std of SSIM, means of the rest, and n."""
    ssim = metrics.summary(table["ssim"])
    result = {"ssim_mean": ssim["mean"], "ssim_std": ssim["std"]}
    for column in ("raw_ssim", "hole_psnr", "hole_l1"):
        if column in table:
            result[f"{column}_mean" if column == "raw_ssim" else column] = metrics.summary(table[column])["mean"]
    result["n"] = int(len(table))
    return result


def sample_grid(originals: np.ndarray, masks: np.ndarray, raw: np.ndarray, title: str = "") -> Image.Image:
    """One row per image: original | damaged | raw output | pasted-back result (in colour
    for colour images)."""
    reference = originals.astype(np.float64) / 255.0
    damaged = reference * (1 - (masks if originals.ndim == 3 else masks[..., None]))
    columns = [reference, damaged, raw.astype(np.float64), metrics.paste_back(reference, raw, masks)]
    names = ["original", "damaged", "raw output", "pasted back"]
    n, size = len(originals), originals.shape[1]
    mode = "L" if originals.ndim == 3 else "RGB"
    white, black = (255, 0) if mode == "L" else ((255, 255, 255), (0, 0, 0))
    pad, header = 4, 16
    grid = Image.new(mode, (4 * (size + pad) + pad, header + n * (size + pad) + pad), color=white)
    draw = ImageDraw.Draw(grid)
    for c, name in enumerate(names):
        draw.text((pad + c * (size + pad) + 2, 2), name, fill=black)
        for r in range(n):
            tile = Image.fromarray(np.clip(np.rint(columns[c][r] * 255), 0, 255).astype(np.uint8), mode)
            grid.paste(tile, (pad + c * (size + pad), header + pad + r * (size + pad)))
    if title:
        draw.text((pad, grid.height - 12), title, fill=black)
    return grid
