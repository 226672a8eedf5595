"""Pictures made of restorations (`report.showcase`'s arrays): the README's teaser, one row per
image and hole, hole | ours | biharmonic | Telea | truth, and the figure of K completions.
Drawn with PIL alone, tiles enlarged with nearest-neighbour (every pixel is the model's), so
the same arrays give the same PNG bytes."""

from __future__ import annotations

import numpy as np
from PIL import Image, ImageDraw

from vaeinpaint.report.showcase import COLUMNS, HOLES

HEADERS = {"hole": "the hole", "ours": "ours", "biharmonic": "biharmonic", "telea": "Telea", "truth": "the truth"}
PAD, HEADER, LABEL = 4, 18, 120  # pixels: between tiles, the column titles, the row labels on the left


def rgb(tile: np.ndarray, scale: int) -> Image.Image:
    image = Image.fromarray(tile, "L" if tile.ndim == 2 else "RGB").convert("RGB")
    return image.resize((image.width * scale, image.height * scale), Image.Resampling.NEAREST)


def grid(rows: list[tuple[str, list[np.ndarray]]], titles: list[str], scale: int = 2) -> Image.Image:
    """Tiles in rows, a label left of each row and a title over each column, on white."""
    side = max(t.shape[0] for _, tiles in rows for t in tiles) * scale
    width = LABEL + len(titles) * (side + PAD) + PAD
    picture = Image.new("RGB", (width, HEADER + len(rows) * (side + PAD) + PAD), "white")
    draw = ImageDraw.Draw(picture)
    for c, title in enumerate(titles):
        draw.text((LABEL + PAD + c * (side + PAD) + 2, 3), title, fill="black")
    for r, (label, tiles) in enumerate(rows):
        top = HEADER + PAD + r * (side + PAD)
        for line, text in enumerate(label.split("\n")):
            draw.text((4, top + 4 + 12 * line), text, fill="black")
        for c, tile in enumerate(tiles):
            picture.paste(rgb(tile, scale), (LABEL + PAD + c * (side + PAD), top))
    return picture


def teaser(experiments: list[tuple[str, dict[str, np.ndarray]]], per_hole: int = 1, scale: int = 2) -> Image.Image:
    """For each (label, showcase arrays), `per_hole` images under each hole kind (image i under
    the square, image i + per_hole under strokes, so no image shows twice), in COLUMNS."""
    rows = []
    for label, arrays in experiments:
        for h, kind in enumerate(HOLES):
            for i in range(h * per_hole, (h + 1) * per_hole):
                if i < len(arrays[f"{kind}_truth"]):
                    rows.append((f"{label}\n{kind}", [arrays[f"{kind}_{name}"][i] for name in COLUMNS]))
    return grid(rows, [HEADERS[name] for name in COLUMNS], scale)


def completions_figure(arrays: dict[str, np.ndarray], label: str = "", scale: int = 2) -> Image.Image:
    """One row per image: the hole, K draws, the most likely completion, the truth."""
    k = len(arrays["draws"])
    rows = [
        (label, [arrays["hole"][i], *arrays["draws"][:, i], arrays["mean"][i], arrays["truth"][i]]) for i in range(len(arrays["truth"]))
    ]
    return grid(rows, ["the hole", *[f"draw {j + 1}" for j in range(k)], "most likely", "the truth"], scale)
