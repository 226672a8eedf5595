"""The training loss: L1 with a heavier hole, optionally SSIM of the pasted-back image, and the
VAE's KL term."""

from __future__ import annotations

import torch
import torch.nn.functional as F

from vaeinpaint.modeling.model import kl_divergence
from vaeinpaint.params import TrainParams


def ssim_map(a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    """Differentiable SSIM map with Wang et al.'s settings (11x11 Gaussian, sigma 1.5, over the
    windows that fit in the image, as scikit-image computes it), for the loss. The Gaussian is
    separable: two grouped 1-D convolutions over the five statistics at once, ~6x cheaper on a
    CPU than five 11x11 ones. Colour images get one map per channel, as scikit-image's
    `channel_axis` computes them (their mean is the mean of the per-channel SSIMs)."""
    g = torch.exp(-((torch.arange(11, dtype=a.dtype, device=a.device) - 5) ** 2) / (2 * 1.5**2))
    g = g / g.sum()
    stats = torch.cat([a, b, a * a, b * b, a * b], dim=1)
    n = stats.shape[1]  # 5 statistics x channels
    stats = F.conv2d(stats, g.view(1, 1, 1, 11).repeat(n, 1, 1, 1), groups=n)
    stats = F.conv2d(stats, g.view(1, 1, 11, 1).repeat(n, 1, 1, 1), groups=n)
    mu_a, mu_b, aa, bb, ab = stats.chunk(5, dim=1)
    c1, c2 = 0.01**2, 0.03**2
    var_a, var_b, cov = aa - mu_a**2, bb - mu_b**2, ab - mu_a * mu_b
    return ((2 * mu_a * mu_b + c1) * (2 * cov + c2)) / ((mu_a**2 + mu_b**2 + c1) * (var_a + var_b + c2))


def inpainting_loss(out, target, mask, mu, logvar, tp: TrainParams) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """(loss, reconstruction, kl). Reconstruction: L1 per pixel, `hole_weight` times heavier
    inside the hole; optionally plus (1 - SSIM) of the pasted-back image. KL: per image,
    summed over the latent, divided by the pixel count so `kl_weight` is relative to the
    per-pixel reconstruction."""
    out, target = out.float(), target.float()
    weight = 1.0 + (tp.hole_weight - 1.0) * mask
    recon = (weight * (out - target).abs()).mean()
    if tp.ssim_weight > 0:
        pasted = target * (1 - mask) + out * mask
        recon = recon + tp.ssim_weight * (1.0 - ssim_map(pasted, target).mean())
    kl = kl_divergence(mu.float(), logvar.float()).mean() / target[0].numel()
    return recon + tp.kl_weight * kl, recon.detach(), kl.detach()
