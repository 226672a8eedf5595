"""The two VAEs: `inpaint` (default, small and fast) and `paper` (the study's architecture).

Both take the damaged image (holes set to 0; [n, C, S, S], C = 1 gray or 3 RGB for
`inpaint`, gray only for `paper`) and the mask ([n, 1, S, S], 1 = missing), and return
`(output, mu, logvar)`: `output` in [0, 1] with the input's shape, `mu`/`logvar` the
posterior of the reparameterised latent. With `sample=False` the latent is its mean
(what evaluation uses, so metrics are deterministic); with a `generator`, sampling is
reproducible (what `vaeinpaint inpaint --samples K` uses).

With `model.prior: learned` (inpaint only) the encoder on the damaged image is a prior network,
p(z | visible pixels, mask), and a posterior network sees the whole image and the mask,
q(z | image, mask). Given the whole image (`image=`, training and validation only) the
decoder draws z from q and the model returns both distributions; without it z comes from p
(its mean, or a draw), which is all inference ever sees.
"""

from __future__ import annotations

import torch
import torch.nn as nn
import torch.nn.functional as F

from vaeinpaint.params import ModelParams


def conv_block(c_in: int, c_out: int, stride: int = 1) -> nn.Sequential:
    """VGG's unit: 3x3 conv, batch norm, LeakyReLU."""
    return nn.Sequential(
        nn.Conv2d(c_in, c_out, 3, stride, 1, bias=False),
        nn.BatchNorm2d(c_out),
        nn.LeakyReLU(0.2, inplace=True),
    )


def up_block(c_in: int, c_out: int) -> nn.ConvTranspose2d:
    """DCGAN's unit: a stride-2 transposed conv. Kernel 3 can hit both odd and even sizes
    (7 -> 13, 25 -> 50) through `output_size`, which 100 x 100 images need."""
    return nn.ConvTranspose2d(c_in, c_out, 3, stride=2, padding=1)


def fp32(tensor: torch.Tensor):
    """A block where autocast is off: layers inside run in full precision."""
    return torch.autocast(tensor.device.type, enabled=False)


def reparameterise(mu: torch.Tensor, logvar: torch.Tensor, sample: bool, generator: torch.Generator | None = None) -> torch.Tensor:
    """`mu + noise * exp(logvar / 2)`, the noise drawn and the sum taken in fp32 whatever
    autocast made of `mu` (a bf16 normal has 8 bits of mantissa: coarse, clumped noise), then
    returned in `mu`'s dtype (the next layer casts to it under autocast anyway). In fp32 this
    is the same arithmetic as ever."""
    if not sample:
        return mu
    noise = torch.randn(mu.shape, generator=generator, device=mu.device, dtype=torch.float32)
    return (mu.float() + noise * torch.exp(0.5 * logvar.float())).to(mu.dtype)


class DilatedResidual(nn.Module):
    """A residual 3x3 conv block with dilation `dilation` (GLCIC, DeepFill): it widens what a
    pixel of the hole sees by `2 * dilation` pixels at no extra cost per pixel."""

    def __init__(self, channels: int, dilation: int):
        super().__init__()
        self.conv = nn.Conv2d(channels, channels, 3, padding=dilation, dilation=dilation, bias=False)
        self.norm = nn.BatchNorm2d(channels)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x + F.leaky_relu(self.norm(self.conv(x)), 0.2)


class FourierResidual(nn.Module):
    """LaMa's fast Fourier convolution (Suvorov et al. 2022), in a residual block: the update
    is a local 3x3 conv plus a spectral transform, a 1x1 conv over the real and imaginary
    parts of the feature map's 2-D FFT, through which every position sees every other at once
    (LaMa's point: large holes need an image-wide receptive field early). The FFT runs in
    fp32 (no bf16 FFT on a CPU; the maps are small)."""

    def __init__(self, channels: int):
        super().__init__()
        self.local = nn.Sequential(nn.Conv2d(channels, channels, 3, padding=1, bias=False), nn.BatchNorm2d(channels))
        self.spectral = nn.Sequential(nn.Conv2d(2 * channels, 2 * channels, 1, bias=False), nn.BatchNorm2d(2 * channels), nn.ReLU())

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        h, w = x.shape[-2:]
        with fp32(x):
            spectrum = torch.fft.rfft2(x.float(), norm="ortho")
            mixed = self.spectral(torch.cat([spectrum.real, spectrum.imag], dim=1))
            real, imag = mixed.chunk(2, dim=1)
            y = torch.fft.irfft2(torch.complex(real, imag), s=(h, w), norm="ortho")
        return x + F.leaky_relu(self.local(x) + y.to(x.dtype), 0.2)


class SelfAttention(nn.Module):
    """Multi-head self-attention over the positions of a feature map, with a residual: every
    position of the hole can draw on every visible one (DeepFill v2's contextual attention
    learns the same copying, with patches)."""

    def __init__(self, channels: int, heads: int = 4):
        super().__init__()
        self.heads = heads
        self.norm = nn.GroupNorm(1, channels)
        self.qkv = nn.Conv2d(channels, 3 * channels, 1)
        self.out = nn.Conv2d(channels, channels, 1)
        nn.init.zeros_(self.out.weight)  # starts as the identity: training decides how much to attend
        nn.init.zeros_(self.out.bias)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        n, c, h, w = x.shape
        q, k, v = self.qkv(self.norm(x)).reshape(n, 3, self.heads, c // self.heads, h * w).transpose(-1, -2).unbind(1)
        y = F.scaled_dot_product_attention(q, k, v)  # [n, heads, h*w, c/heads]
        return x + self.out(y.transpose(-1, -2).reshape(n, c, h, w))


class PosteriorEncoder(nn.Module):
    """q(z | image, mask) of the learned prior: the whole image and the mask through four stride-2
    conv blocks, one per stage of the main encoder (the same rounding, so the latents line up
    at any size), at half its width (it only has to say what is in the hole, at 1/16
    resolution, and runs in training only), to the mean and log-variance of the spatial latent."""

    def __init__(self, channels: int, width: int, latent_channels: int):
        super().__init__()
        w = max(width // 2, 1)
        self.features = nn.Sequential(
            conv_block(channels + 1, w, 2), conv_block(w, 2 * w, 2), conv_block(2 * w, 4 * w, 2), conv_block(4 * w, 8 * w, 2)
        )
        self.to_latent = nn.Conv2d(8 * w, 2 * latent_channels, 1)

    def forward(self, image: torch.Tensor, mask: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        mu, logvar = self.to_latent(self.features(torch.cat([image, mask], dim=1))).chunk(2, dim=1)
        return mu, logvar.clamp(-30.0, 20.0)


DILATIONS = (2, 4, 8, 1)  # model.context blocks cycle through these (GLCIC: 2, 4, 8, 16 at a larger size)


class InpaintVAE(nn.Module):
    """A U-Net-shaped VAE for inpainting.

    Encoder: four stages of VGG-style 3x3 conv blocks, each halving the resolution
    (100 -> 50 -> 25 -> 13 -> 7). The bottleneck is a spatial Gaussian latent
    (`latent_channels` x 7 x 7). Decoder: DCGAN-style transposed convs back up, each
    joined by a skip connection from the encoder stage of the same size, so the
    visible context reaches the output directly while the latent carries what the
    context cannot explain. Input is the damaged image's `channels` (1 gray, 3 RGB) plus
    the mask as a channel; the output has `channels`. Any size works: each stride-2 stage
    rounds up (257 -> 129 -> 65 -> 33 -> 17) and each transposed conv is asked for the
    size of its skip (`output_size`).

    The last step to full resolution (`head`): `shuffle` (default) predicts each 2 x 2 block
    of output pixels from the half-resolution features (a 3x3 conv to 4C channels, then
    `pixel_shuffle`); `transpose` (checkpoints from before it) is one more transposed conv
    to full resolution and a 3x3 conv that sees the damaged image again. There are no
    full-resolution conv blocks in either: on a CPU they cost most of the time (the
    `transpose` head is a quarter of a training step) and the known pixels are pasted back.

    Optional context modules in the decoder: `context` residual blocks at 1/4 resolution,
    `context_kind` dilated (GLCIC, DeepFill: wider reach into the hole) or fourier (LaMa's
    fast Fourier convolution: image-wide reach), and `attention` (self-attention at 1/8,
    where a 100 px image is 13 x 13 positions).

    `prior="learned"`: the encoder above gives the prior p(z | visible, mask) and a
    `PosteriorEncoder` the posterior q(z | image, mask) (see the module's docstring).
    """

    def __init__(
        self,
        width: int = 32,
        latent_channels: int = 16,
        skips: bool = True,
        mask_input: bool = True,
        channels: int = 1,
        head: str = "shuffle",
        context: int = 0,
        attention: bool = False,
        context_kind: str = "dilated",
        prior: str = "standard",
    ):
        super().__init__()
        w, self.skips, self.mask_input, self.channels, self.head_kind = width, skips, mask_input, channels, head
        self.prior = prior
        c_in = channels + 1 if mask_input else channels
        s = 1 if skips else 0  # skip connections double the decoder blocks' inputs
        self.enc1 = nn.Sequential(conv_block(c_in, w, 2), conv_block(w, w))  # 1/2
        self.enc2 = nn.Sequential(conv_block(w, 2 * w, 2), conv_block(2 * w, 2 * w))  # 1/4
        self.enc3 = nn.Sequential(conv_block(2 * w, 4 * w, 2), conv_block(4 * w, 4 * w))  # 1/8
        self.enc4 = nn.Sequential(conv_block(4 * w, 8 * w, 2), conv_block(8 * w, 8 * w))  # 1/16
        self.to_latent = nn.Conv2d(8 * w, 2 * latent_channels, 1)
        self.from_latent = nn.Sequential(nn.Conv2d(latent_channels, 8 * w, 1), nn.LeakyReLU(0.2, inplace=True))
        self.up3, self.dec3 = up_block(8 * w, 4 * w), conv_block((4 + 4 * s) * w, 4 * w)
        self.attend = SelfAttention(4 * w) if attention else nn.Identity()
        self.up2, self.dec2 = up_block(4 * w, 2 * w), conv_block((2 + 2 * s) * w, 2 * w)
        if context_kind == "fourier":
            blocks = [FourierResidual(2 * w) for _ in range(context)]
        else:
            blocks = [DilatedResidual(2 * w, DILATIONS[i % len(DILATIONS)]) for i in range(context)]
        self.context = nn.Sequential(*blocks)
        self.up1, self.dec1 = up_block(2 * w, w), conv_block((1 + s) * w, w)
        if head == "transpose":
            self.up0 = up_block(w, max(w // 2, 1))
            self.head = nn.Conv2d(max(w // 2, 1) + c_in * s, channels, 3, padding=1)
        else:
            self.head = nn.Conv2d(w, 4 * channels, 3, padding=1)
        self.posterior = PosteriorEncoder(channels, w, latent_channels) if prior == "learned" else None

    def _join(self, up: torch.Tensor, skip: torch.Tensor) -> torch.Tensor:
        return torch.cat([up, skip], dim=1) if self.skips else up

    def forward(
        self,
        damaged: torch.Tensor,
        mask: torch.Tensor,
        sample: bool = True,
        generator: torch.Generator | None = None,
        image: torch.Tensor | None = None,
        generative: bool = False,
    ):
        """(output, mu, logvar); with a learned prior and the whole `image` (training),
        (output, q_mu, q_logvar, p_mu, p_logvar), and with `generative` also the output decoded
        from the prior's mean (Pluralistic's generative path), in the same decoder pass. A
        standard model ignores `image` and `generative`."""
        x = torch.cat([damaged, mask], dim=1) if self.mask_input else damaged
        h1 = self.enc1(x)
        h2 = self.enc2(h1)
        h3 = self.enc3(h2)
        h4 = self.enc4(h3)
        mu, logvar = self.to_latent(h4).chunk(2, dim=1)
        logvar = logvar.clamp(-30.0, 20.0)
        if image is not None and self.posterior is not None:
            q_mu, q_logvar = self.posterior(image, mask)
            z = reparameterise(q_mu, q_logvar, sample, generator)
            if not generative:
                return self._decode(z, h1, h2, h3, x), q_mu, q_logvar, mu, logvar
            both = self._decode(torch.cat([z, mu]), *(torch.cat([h, h]) for h in (h1, h2, h3, x)))
            out, generated = both.chunk(2)
            return out, q_mu, q_logvar, mu, logvar, generated
        return self._decode(reparameterise(mu, logvar, sample, generator), h1, h2, h3, x), mu, logvar

    def _decode(self, z: torch.Tensor, h1: torch.Tensor, h2: torch.Tensor, h3: torch.Tensor, x: torch.Tensor) -> torch.Tensor:
        """The decoder: latent `z` up to the output, joined by the encoder's maps `h1`-`h3` and
        (the `transpose` head) the input `x`."""
        y = self.from_latent(z)
        y = self.attend(self.dec3(self._join(self.up3(y, output_size=h3.shape[-2:]), h3)))
        y = self.context(self.dec2(self._join(self.up2(y, output_size=h2.shape[-2:]), h2)))
        y = self.dec1(self._join(self.up1(y, output_size=h1.shape[-2:]), h1))
        size = x.shape[-2:]
        if self.head_kind == "transpose":
            y = self.up0(y, output_size=size)
            with fp32(y):  # bf16's step near 1.0 is 1/256: coarser than the 8-bit pixels we predict
                return torch.sigmoid(self.head(self._join(y.float(), x.float())))
        logits = F.pixel_shuffle(self.head(y), 2)[..., : size[0], : size[1]]  # odd sizes: the last row/column cut
        with fp32(logits):  # the sigmoid in fp32: bf16's step near 1.0 (1/256) is coarser than 8-bit pixels
            return torch.sigmoid(logits.float())


class PaperVAE(nn.Module):
    """The study's architecture, as published, for comparison.

    Encoder modelled on VGG16: its 13 3x3 conv layers in five blocks (64, 128, 256,
    512, 512 channels; batch norm, LeakyReLU, max-pooling), then a 3x3 conv to 1024
    channels at 4 x 4, flattened to 16384; fully connected 16384 -> `fc_width` (8000)
    -> mean and log-variance of a `latent_dim` (1500) vector. Decoder modelled on
    DCGAN: fully connected `latent_dim` -> `fc_width` -> 16384, reshaped to 1024 x 4 x 4,
    then transposed convs with batch norm and ReLU up to 100 x 100 and a sigmoid.
    It sees the damaged image only, as the study's model did.
    """

    VGG16_BLOCKS = ((64, 64), (128, 128), (256, 256, 256), (512, 512, 512), (512, 512, 512))
    SIZES = (100, 50, 25, 13, 7, 4)  # spatial size before each pooling, then after the last

    def __init__(self, fc_width: int = 8000, latent_dim: int = 1500):
        super().__init__()
        layers: list[nn.Module] = []
        c_in = 1
        for block in self.VGG16_BLOCKS:
            for c_out in block:
                layers.append(conv_block(c_in, c_out))
                c_in = c_out
            layers.append(nn.MaxPool2d(2, ceil_mode=True))
        layers.append(conv_block(512, 1024))
        self.features = nn.Sequential(*layers)
        flat = 1024 * 4 * 4
        self.fc = nn.Sequential(nn.Linear(flat, fc_width), nn.LeakyReLU(0.2, inplace=True))
        self.fc_mu = nn.Linear(fc_width, latent_dim)
        self.fc_logvar = nn.Linear(fc_width, latent_dim)
        self.fc_dec = nn.Sequential(
            nn.Linear(latent_dim, fc_width), nn.ReLU(inplace=True), nn.Linear(fc_width, flat), nn.ReLU(inplace=True)
        )
        channels = (1024, 512, 256, 128, 64)
        self.ups = nn.ModuleList(up_block(a, b) for a, b in zip(channels[:-1], channels[1:]))
        self.norms = nn.ModuleList(nn.BatchNorm2d(c) for c in channels[1:])
        self.last = up_block(64, 1)

    def forward(
        self,
        damaged: torch.Tensor,
        mask: torch.Tensor,
        sample: bool = True,
        generator: torch.Generator | None = None,
        image: torch.Tensor | None = None,
        generative: bool = False,
    ):
        """(output, mu, logvar); `image` and `generative` are the learned prior's, which this
        architecture does not have: ignored."""
        h = self.fc(self.features(damaged).flatten(1))
        mu, logvar = self.fc_mu(h), self.fc_logvar(h).clamp(-30.0, 20.0)
        y = self.fc_dec(reparameterise(mu, logvar, sample, generator)).view(-1, 1024, 4, 4)
        sizes = self.SIZES[::-1][1:]  # 7, 13, 25, 50, 100
        for up, norm, size in zip(self.ups, self.norms, sizes):
            y = F.relu(norm(up(y, output_size=(size, size))), inplace=True)
        with fp32(y):
            return torch.sigmoid(self.last(y.float(), output_size=damaged.shape[-2:])), mu, logvar


def build_model(params: ModelParams, channels: int = 1) -> nn.Module:
    """The model `params` describe, for images of `channels` (1 gray, 3 RGB; `paper`: 1 only)."""
    if params.arch == "paper":
        if channels != 1:
            raise ValueError(f"the paper architecture takes gray images only, not {channels} channels")
        return PaperVAE(fc_width=params.fc_width, latent_dim=params.latent_dim)
    return InpaintVAE(
        params.width,
        params.latent_channels,
        skips=params.skips,
        mask_input=params.mask_input,
        channels=channels,
        head=params.head,
        context=params.context,
        attention=params.attention,
        context_kind=params.context_kind,
        prior=params.prior,
    )


def count_parameters(model: nn.Module) -> int:
    return sum(p.numel() for p in model.parameters())


def kl_divergence(mu: torch.Tensor, logvar: torch.Tensor) -> torch.Tensor:
    """KL(q(z|x) || N(0, I)) per example, summed over the latent's dimensions."""
    return 0.5 * (mu.pow(2) + logvar.exp() - 1.0 - logvar).flatten(1).sum(1)


def gaussian_kl(q_mu: torch.Tensor, q_logvar: torch.Tensor, p_mu: torch.Tensor, p_logvar: torch.Tensor) -> torch.Tensor:
    """KL(q || p) of two diagonal Gaussians, per latent dimension (the inputs' shape), in nats:
    (log s_p^2 - log s_q^2 + (s_q^2 + (m_q - m_p)^2) / s_p^2 - 1) / 2."""
    log_ratio = q_logvar - p_logvar  # s_q^2 / s_p^2 as one exp: exactly 1 where q = p
    return 0.5 * (log_ratio.exp() - log_ratio + (q_mu - p_mu).pow(2) * torch.exp(-p_logvar) - 1.0)
