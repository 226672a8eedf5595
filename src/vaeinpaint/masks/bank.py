"""A bank of masks kept on the training device, sampled with random flips, turns and shifts.

Stroke masks are drawn on the CPU with OpenCV (about a millisecond each at 100 px), too
slow to draw afresh for every image of every batch without starving a GPU, and file masks
are a fixed set anyway. So training draws them once into a bank on the device and, for
each image of a batch, takes one at random and applies one of the 8 symmetries of the
square (flips and a transpose; flips only on a non-square canvas) and a random cyclic shift
on both axes. Each is a gather on the device: no host round trip, and the hole share of
every mask is kept exactly (a shift wraps around instead of pushing the hole out). A bank
of B masks gives 8 x B x height x width distinct masks.
"""

from __future__ import annotations

import torch


class MaskBank:
    def __init__(self, masks: torch.Tensor):
        """`masks`: uint8 or bool [k, height, width] on the training device."""
        if masks.ndim != 3 or len(masks) == 0:
            raise ValueError(f"a mask bank needs masks [k, height, width], got shape {tuple(masks.shape)}")
        self.masks = masks.to(torch.uint8)
        self.height, self.width = masks.shape[1:]

    def __len__(self) -> int:
        return len(self.masks)

    def sample(self, n: int, generator: torch.Generator) -> torch.Tensor:
        """float masks [n, 1, height, width]."""
        device = self.masks.device
        h, w = self.height, self.width
        pick = torch.randint(0, len(self.masks), (n,), generator=generator, device=device)
        flips = torch.randint(0, 2, (n, 3), generator=generator, device=device).bool()
        shift_y = torch.randint(0, h, (n, 1), generator=generator, device=device)
        shift_x = torch.randint(0, w, (n, 1), generator=generator, device=device)
        masks = self.masks[pick]
        if h == w:
            masks = torch.where(flips[:, 2, None, None], masks.transpose(1, 2), masks)
        rows = torch.arange(h, device=device)[None, :].expand(n, h)
        cols = torch.arange(w, device=device)[None, :].expand(n, w)
        rows = (torch.where(flips[:, 0, None], h - 1 - rows, rows) + shift_y) % h
        cols = (torch.where(flips[:, 1, None], w - 1 - cols, cols) + shift_x) % w
        masks = masks.gather(1, rows[:, :, None].expand(n, h, w))
        masks = masks.gather(2, cols[:, None, :].expand(n, h, w))
        return masks.unsqueeze(1).float()
