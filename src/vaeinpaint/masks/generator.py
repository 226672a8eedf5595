"""The one mask generator: every hole the project makes comes from here.

- `occlude`: the stored masks of the `occlude` stage, one per image, each drawn from
  generators seeded by (occlusion.seed, the image's id), so an image keeps its mask when
  others are added; `files` assigns each image one of the user's masks the same way.
- `TrainingMasks`: fresh masks for every training batch (`train.masks: random`), on the
  training device, from one generator per epoch, so a resumed training draws what an
  unbroken one would. Boxes are drawn directly on the device (sync-free on a GPU); strokes
  and file masks come from a bank on the device (`bank.py`).
- `draw`: one mask for any key at any height x width (`vaeinpaint inpaint --random`).

Shapes (`occlusion.shape`): `square` (`boxes.py`, the study's), `rectangle`
(`rectangles.py`), `strokes` (`strokes.py`), `mixed` (each image gets strokes or one
rectangle, half and half, as LaMa mixes its mask kinds), `files` (`files.py`). With
`occlusion.position: center` the one square or rectangle sits in the middle.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
import pandas as pd
import torch

from vaeinpaint.masks.bank import MaskBank
from vaeinpaint.masks.boxes import Canvas, boxes_to_masks, canvas, centred_box, image_generator, sample_boxes, with_sizes
from vaeinpaint.masks.files import MaskFiles, assign
from vaeinpaint.masks.rectangles import centred_rectangles, sample_rectangles
from vaeinpaint.masks.strokes import Brush, stroke_mask, stroke_rng
from vaeinpaint.params import OcclusionParams, square_side

MIXED_STROKES = 0.5  # `mixed`: the share of images that get strokes; the others get a rectangle
BANK_SIZE = 2048  # stroke masks pre-drawn for training...
BANK_BYTES = 256 << 20  # ...but at most this much device memory (1024 masks at 512 px)
NO_BOXES = np.zeros((0, 4), dtype=np.int64)


@dataclass(frozen=True)
class Drawn:
    mask: np.ndarray  # bool [height, width], True = missing
    kind: str  # square, rectangle, strokes or file
    boxes: np.ndarray = field(default_factory=lambda: NO_BOXES)  # int64 [k, 4]: x, y, w, h of each box (none for strokes)


def box_side(params: OcclusionParams, height: int, width: int) -> int:
    """The side of one square (and of the squares rectangles fall back to)."""
    return square_side(height, params.ratio, params.ratio_of, width)


def boxes(n: int, params: OcclusionParams, size: Canvas, generator: torch.Generator, device="cpu", sync_free=False) -> torch.Tensor:
    """Boxes of a `square` or `rectangle` occlusion for `n` images: int64 [n, count, 4] (x, y, w, h)."""
    height, width = canvas(size)
    side = box_side(params, height, width)
    if params.shape == "square":
        if params.position == "center":
            x, y = centred_box(height, width, side, side)
            # Filled on the device: a tensor built from Python values would be a host-to-device copy.
            return torch.stack([torch.full((n, 1), v, dtype=torch.long, device=device) for v in (x, y, side, side)], dim=-1)
        corners = sample_boxes(n, (height, width), side, params.count, params.overlap, generator, device, sync_free)
        return with_sizes(corners, side)
    if params.position == "center":
        return centred_rectangles(n, (height, width), params.ratio, params.aspect, generator, device)
    return sample_rectangles(
        n, (height, width), params.ratio, params.count, params.aspect, params.overlap, generator, device, sync_free, fallback_side=side
    )


def draw(params: OcclusionParams, height: int, width: int, key: str) -> Drawn:
    """The mask for `key` (an image id) on a height x width image: the same key, params and
    size always give the same mask."""
    shape = params.shape
    if shape == "files":
        raise ValueError("file masks are assigned to images (occlude), not drawn")
    rng = stroke_rng(params.seed, key) if shape in ("strokes", "mixed") else None
    if shape == "mixed":
        shape = "strokes" if rng.random() < MIXED_STROKES else "rectangle"
        params = params.model_copy(update={"shape": shape})
    if shape == "strokes":
        return Drawn(stroke_mask(height, width, params.ratio, Brush.of(params), rng), "strokes")
    drawn = boxes(1, params, (height, width), image_generator(params.seed, key))
    mask = boxes_to_masks(drawn, (height, width))[0, 0].bool().numpy()
    return Drawn(mask, shape, drawn[0].numpy())


@dataclass
class Occlusion:
    masks: np.ndarray  # uint8 [n, size, size], 1 = missing
    per_image: pd.DataFrame  # id, kind, share, mask_file
    boxes: pd.DataFrame  # id, box, x, y, w, h


def occlude(ids: list[str], size: int, params: OcclusionParams, files: MaskFiles | None = None) -> Occlusion:
    """The stored masks of the images `ids` (size x size), with their hole shares and boxes."""
    mask_file = [""] * len(ids)
    box_rows: list[tuple] = []
    if params.shape == "files":
        if files is None:
            raise ValueError("occlusion.shape files needs the mask files")
        chosen = assign(ids, len(files.masks), params.seed)
        masks = files.masks[chosen] if len(ids) else np.zeros((0, size, size), np.uint8)
        kinds = ["file"] * len(ids)
        mask_file = [files.names[i] for i in chosen]
    else:
        masks = np.zeros((len(ids), size, size), np.uint8)
        kinds = []
        for i, image_id in enumerate(ids):
            drawn = draw(params, size, size, image_id)
            masks[i] = drawn.mask
            kinds.append(drawn.kind)
            box_rows.extend((image_id, k, *map(int, box)) for k, box in enumerate(drawn.boxes))
    per_image = pd.DataFrame({"id": ids, "kind": kinds, "share": hole_share(masks), "mask_file": mask_file})
    boxes_table = pd.DataFrame(box_rows, columns=["id", "box", "x", "y", "w", "h"])
    return Occlusion(masks, per_image, boxes_table)


def hole_share(masks: np.ndarray) -> np.ndarray:
    """The share of each mask's pixels that are missing: float64 [n]."""
    if len(masks) == 0:
        return np.zeros(0)
    return masks.reshape(len(masks), -1).astype(bool).mean(axis=1)


def stroke_bank(height: int, width: int, params: OcclusionParams, seed: int) -> np.ndarray:
    """uint8 [k, height, width]: the stroke masks training samples from, the same for a given seed."""
    k = max(64, min(BANK_SIZE, BANK_BYTES // (height * width)))
    brush = Brush.of(params)
    return np.stack(
        [stroke_mask(height, width, params.ratio, brush, stroke_rng(params.seed, f"bank:{seed}:{j}")) for j in range(k)]
    ).astype(np.uint8)


class TrainingMasks:
    """Fresh masks for training batches, drawn on the training device.

    One generator per epoch, seeded from (seed, epoch): an epoch's masks do not depend on
    what ran before, so a resumed training draws exactly what an unbroken one would. On the
    CPU boxes are drawn row by row, exactly as the `occlude` stage draws them; elsewhere
    sync-free (see `boxes.py`). Strokes come from a bank drawn once from `seed` (`bank.py`);
    file masks from a bank of the stored training masks (`stored`).
    """

    def __init__(self, size: int, params: OcclusionParams, seed: int, device: torch.device | str, stored: np.ndarray | None = None):
        self.size, self.params, self.seed, self.device = size, params, seed, torch.device(device)
        self.sync_free = self.device.type != "cpu"
        self.bank: MaskBank | None = None
        if params.shape in ("strokes", "mixed"):
            self.bank = MaskBank(torch.from_numpy(stroke_bank(size, size, params, seed)).to(self.device))
        elif params.shape == "files":
            if stored is None or len(stored) == 0:
                raise ValueError("training with file masks needs the stored training masks")
            self.bank = MaskBank(torch.from_numpy(np.ascontiguousarray(stored)).to(self.device))

    def for_epoch(self, epoch: int, device: torch.device | None = None) -> torch.Generator:
        """The epoch's generator, on the training device unless `device` says otherwise."""
        return torch.Generator(device=device or self.device).manual_seed(self.seed * 1_000_003 + epoch)

    def draw(self, n: int, generator: torch.Generator) -> torch.Tensor:
        """float masks [n, 1, size, size]."""
        shape = self.params.shape
        if shape in ("square", "rectangle"):
            return boxes_to_masks(boxes(n, self.params, self.size, generator, self.device, self.sync_free), self.size)
        strokes = self.bank.sample(n, generator)
        if shape != "mixed":
            return strokes
        rectangle = self.params.model_copy(update={"shape": "rectangle"})
        boxed = boxes_to_masks(boxes(n, rectangle, self.size, generator, self.device, self.sync_free), self.size)
        use_strokes = torch.rand(n, generator=generator, device=self.device) < MIXED_STROKES
        return torch.where(use_strokes[:, None, None, None], strokes, boxed)


SHARE_TOLERANCE = 0.02  # strokes: how far the mean hole share may fall short of occlusion.ratio


def target_share(params: OcclusionParams, size: int) -> float | None:
    """The hole share the params ask for: each box's share times the boxes (squares: exactly,
    after rounding the side), the strokes' target; None for file masks."""
    if params.shape == "files":
        return None
    if params.shape == "square":
        return params.count * box_side(params, size, size) ** 2 / (size * size)
    return params.ratio * (params.count if params.shape == "rectangle" else 1)


def check_shares(params: OcclusionParams, results: dict[str, Occlusion]) -> None:
    """Strokes and mixed masks must cover occlusion.ratio on average (within SHARE_TOLERANCE)."""
    if params.shape not in ("strokes", "mixed"):
        return
    shares = np.concatenate([r.per_image["share"].to_numpy() for r in results.values()])
    if len(shares) and shares.mean() < params.ratio - SHARE_TOLERANCE:
        from vaeinpaint.errors import ParamError

        raise ParamError(
            f"occlusion.ratio: the strokes cover {shares.mean():.3f} of the image on average, short of {params.ratio} by more than "
            f"{SHARE_TOLERANCE}; lower the ratio or raise occlusion.strokes, stroke_vertices or stroke_width"
        )


def occlude_summary(params: OcclusionParams, results: dict[str, Occlusion], files: MaskFiles | None = None) -> dict:
    """What metrics/occlude.json holds: the hole shares per subset, and the mask files read and skipped."""
    size = next((r.masks.shape[-1] for r in results.values() if len(r.masks)), 0)
    summary: dict = {"shape": params.shape, "target_share": None}
    if size:
        target = target_share(params, size)
        summary["target_share"] = None if target is None else round(target, 6)
    for subset, result in results.items():
        shares = result.per_image["share"].to_numpy()
        summary[subset] = {
            "n": int(len(shares)),
            "share_mean": round(float(shares.mean()), 6) if len(shares) else None,
            "share_min": round(float(shares.min()), 6) if len(shares) else None,
            "share_max": round(float(shares.max()), 6) if len(shares) else None,
        }
    if files is not None:
        summary["mask_files"] = files.summary()
    return summary
