"""`python -m vaeinpaint.bench`: the mask rows (strokes and mixed beside squares)."""

from dataclasses import replace

import pytest
import torch

from vaeinpaint.bench.__main__ import mask_shapes
from vaeinpaint.masks import generator
from vaeinpaint.params import Params


def test_bench_times_stroke_and_mixed_masks_beside_squares(monkeypatch):
    monkeypatch.setattr(generator, "BANK_SIZE", 64)  # the bank's size does not change a step's cost
    defaults = Params()
    defaults = replace(defaults, model=replace(defaults.model, width=8, latent_channels=4))  # a tiny model: fast, same masks
    train = replace(defaults.train, batch_size=4, precision="fp32")
    cpu = torch.device("cpu")
    squares = {"img_per_s": 250.0, "mask_ms_per_batch": 1.5}  # as measure_training reports them for squares
    result = mask_shapes(defaults, train, cpu, 2, 1, squares["img_per_s"], squares["mask_ms_per_batch"])
    assert result["mask_ms_per_batch_squares"] == 1.5
    assert set(result) == {
        "mask_ms_per_batch_squares",
        "train_img_per_s_strokes",
        "strokes_vs_squares",
        "mask_ms_per_batch_strokes",
        "stroke_bank_s",
        "train_img_per_s_mixed",
        "mixed_vs_squares",
        "mask_ms_per_batch_mixed",
    }
    for shape in ("strokes", "mixed"):
        assert result[f"train_img_per_s_{shape}"] > 0 and result[f"mask_ms_per_batch_{shape}"] > 0
        ratio = result[f"train_img_per_s_{shape}"] / squares["img_per_s"]
        assert result[f"{shape}_vs_squares"] == pytest.approx(ratio, rel=0.05, abs=6e-4)  # rounded to 3 decimals
    assert result["stroke_bank_s"] > 0
