"""The training loss: L1 with a heavier hole, optionally SSIM of the pasted-back image, and the
VAE's KL term: to N(0, I) (`model.prior: standard`), or to the learned prior (`learned`), with
free bits and the generative path (`train.free_bits`, `train.generative_weight`)."""

from __future__ import annotations

import torch
import torch.nn.functional as F

from vaeinpaint.modeling.model import gaussian_kl, kl_divergence
from vaeinpaint.params import TrainParams, resolve_kl_weight


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


def reconstruction(out: torch.Tensor, target: torch.Tensor, mask: torch.Tensor, tp: TrainParams) -> torch.Tensor:
    """L1 per pixel, `hole_weight` times heavier inside the hole; optionally plus (1 - SSIM) of
    the pasted-back image."""
    weight = 1.0 + (tp.hole_weight - 1.0) * mask
    recon = (weight * (out - target).abs()).mean()
    if tp.ssim_weight > 0:
        pasted = target * (1 - mask) + out * mask
        recon = recon + tp.ssim_weight * (1.0 - ssim_map(pasted, target).mean())
    return recon


def inpainting_loss(out, target, mask, mu, logvar, tp: TrainParams, *prior) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """(loss, reconstruction, kl). Reconstruction: `reconstruction`. KL: per image, summed over
    the latent, divided by the pixel count so `kl_weight` is relative to the per-pixel
    reconstruction (`auto`: by the prior, `params.resolve_kl_weight`).

    `prior`: what a learned prior's model returns after (out, mu, logvar) given the whole
    image: (p_mu, p_logvar[, generated]). Then `mu`, `logvar` are the posterior's, the KL is
    KL(q || p) (`learned_kl`), and `generated` (the decoder on the prior's mean) adds
    `generative_weight` times its own reconstruction."""
    out, target = out.float(), target.float()
    recon = reconstruction(out, target, mask, tp)
    if not prior:
        kl = kl_divergence(mu.float(), logvar.float()).mean() / target[0].numel()
        return recon + resolve_kl_weight(tp.kl_weight, "standard") * kl, recon.detach(), kl.detach()
    p_mu, p_logvar, *generated = prior
    if generated and tp.generative_weight > 0:
        recon = recon + tp.generative_weight * reconstruction(generated[0].float(), target, mask, tp)
    kl_loss, kl = learned_kl(mu.float(), logvar.float(), p_mu.float(), p_logvar.float(), tp.free_bits)
    pixels = target[0].numel()
    return recon + resolve_kl_weight(tp.kl_weight, "learned") * kl_loss / pixels, recon.detach(), kl.detach() / pixels


def learned_kl(q_mu, q_logvar, p_mu, p_logvar, free_bits: float) -> tuple[torch.Tensor, torch.Tensor]:
    """(the KL term to minimise, KL(q || p) itself), both per image, summed over the latent and
    averaged over the batch. With `free_bits` > 0 (nats), a latent dimension whose KL, averaged
    over the batch, is below it does not pull the posterior towards the prior (Kingma et al.
    2016's free bits: a posterior that carries little is not pushed to carry nothing), but the
    prior still follows the posterior there (the KL with the posterior held fixed): free bits
    never make the prior lag. The term's value is the KL either way."""
    per_dim = gaussian_kl(q_mu, q_logvar, p_mu, p_logvar).mean(0)
    kl = per_dim.sum()
    if free_bits <= 0:
        return kl, kl
    prior_side = gaussian_kl(q_mu.detach(), q_logvar.detach(), p_mu, p_logvar).mean(0)
    return torch.where(per_dim.detach() >= free_bits, per_dim, prior_side).sum(), kl
