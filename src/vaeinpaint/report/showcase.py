"""A few test images restored by a trained model and by the classical fills, under the
experiment's own square (its stored test mask) and under free-form strokes drawn for them:
what the README's teaser and the docs' figure of K completions are made of.

The arrays are small (uint8, a handful of images) so that `vaeinpaint report` can commit
them beside the figures and redraw the figures without the experiment's data or model."""

from __future__ import annotations

import numpy as np
import torch

from vaeinpaint.evaluation.baselines import evenly_spaced, fill
from vaeinpaint.evaluation.diversity import draw_batch
from vaeinpaint.evaluation.evaluate import restore
from vaeinpaint.evaluation.metrics import paste_back
from vaeinpaint.inference.holes import random_hole

COLUMNS = ("hole", "ours", "biharmonic", "telea", "truth")  # the teaser's order, left to right
HOLES = ("square", "strokes")
STROKES_SHARE = 0.2  # strokes covering 20% of the image, as occlusion.shape strokes draws by default


def to_u8(values: np.ndarray) -> np.ndarray:
    return np.clip(np.rint(values * 255.0), 0, 255).astype(np.uint8)


def strokes_masks(n: int, size: int, seed: int) -> np.ndarray:
    """One free-form hole per image, the pipeline's stroke generator seeded `seed + i`."""
    return np.stack([random_hole((size, size), "strokes", STROKES_SHARE, 1, seed + i) for i in range(n)]).astype(np.uint8)


def columns(model: torch.nn.Module, truth: np.ndarray, masks: np.ndarray) -> dict[str, np.ndarray]:
    """COLUMNS for uint8 images `truth` under `masks`: the damaged image (the hole black), the
    model's most likely completion and each fill, known pixels pasted back, and the truth."""
    reference = truth.astype(np.float64) / 255.0
    hole = masks if truth.ndim == 3 else masks[..., None]
    ours = paste_back(reference, restore(model, truth, masks).astype(np.float64), masks)
    fills = {m: np.stack([fill(m, image, mask) for image, mask in zip(truth, masks)]) for m in ("biharmonic", "telea")}
    return {
        "hole": to_u8(reference * (1 - hole)),
        "ours": to_u8(ours),
        "biharmonic": to_u8(fills["biharmonic"]),
        "telea": to_u8(fills["telea"]),
        "truth": truth.astype(np.uint8),
    }


def showcase(
    model: torch.nn.Module, test_images: np.ndarray, test_masks: np.ndarray, count: int = 4, seed: int = 0
) -> dict[str, np.ndarray]:
    """`count` test images spread over the set: {"square_hole": ..., "strokes_ours": ..., ...}
    (hole kind _ column), uint8 [count, h, w(, 3)]."""
    chosen = evenly_spaced(len(test_images), count)
    truth = np.asarray(test_images[chosen])
    holes = {"square": np.asarray(test_masks[chosen]).astype(np.uint8), "strokes": strokes_masks(len(chosen), truth.shape[1], seed)}
    return {f"{kind}_{name}": values for kind, masks in holes.items() for name, values in columns(model, truth, masks).items()}


def completions(
    model: torch.nn.Module, test_images: np.ndarray, test_masks: np.ndarray, k: int, count: int = 3, seed: int = 0
) -> dict[str, np.ndarray]:
    """K draws from the model's latent (a learned prior's where it has one) for `count` test
    images under their square: {"hole", "draws" [k, count, ...], "mean", "truth"}, uint8,
    draw j seeded `seed + j` as `evaluate` draws them."""
    chosen = evenly_spaced(len(test_images), count)
    truth = np.asarray(test_images[chosen])
    masks = np.asarray(test_masks[chosen]).astype(np.uint8)
    reference = truth.astype(np.float64) / 255.0
    generators = [torch.Generator().manual_seed(seed + j) for j in range(k)]
    draws = draw_batch(model, truth, masks, generators, torch.device("cpu"))
    pasted = np.stack([paste_back(reference, d.astype(np.float64), masks) for d in draws])
    mean = paste_back(reference, restore(model, truth, masks).astype(np.float64), masks)
    hole = masks if truth.ndim == 3 else masks[..., None]
    return {"hole": to_u8(reference * (1 - hole)), "draws": to_u8(pasted), "mean": to_u8(mean), "truth": truth.astype(np.uint8)}


def npz_bytes(arrays: dict[str, np.ndarray]) -> bytes:
    """`arrays` as an .npz file's bytes, the same bytes for the same arrays (numpy's savez
    stamps each member with the time of writing)."""
    import io
    import zipfile

    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w", compression=zipfile.ZIP_DEFLATED) as archive:
        for name in sorted(arrays):
            member = io.BytesIO()
            np.lib.format.write_array(member, np.ascontiguousarray(arrays[name]), allow_pickle=False)
            info = zipfile.ZipInfo(f"{name}.npy", date_time=(1980, 1, 1, 0, 0, 0))
            info.compress_type = zipfile.ZIP_DEFLATED
            archive.writestr(info, member.getvalue())
    return buffer.getvalue()


def read_npz(path) -> dict[str, np.ndarray]:
    with np.load(path, allow_pickle=False) as archive:
        return {name: archive[name] for name in archive.files}
