"""The realism measure (sliced Wasserstein distance of the holes' Laplacian patches) on hand-built
cases, and the evaluate stage's realism and diversity outputs for a learned-prior checkpoint."""

from __future__ import annotations

import json

import cv2
import numpy as np
import pandas as pd
import pytest
from skimage import data as photos

from vaeinpaint.evaluation.realism import HoleSWD, hole_levels, laplacian_pyramid, levels_for, patch_centres

from conftest import synthetic_images


@pytest.fixture(scope="module")
def crops():
    """60 gray 64 px crops of scikit-image's photos (real texture), each with a 24 px square hole."""
    rng = np.random.default_rng(0)
    images = []
    for photo in (photos.camera(), photos.coins(), photos.moon()):
        for _ in range(20):
            y, x = rng.integers(0, photo.shape[0] - 64), rng.integers(0, photo.shape[1] - 64)
            images.append(photo[y : y + 64, x : x + 64])
    masks = np.zeros((60, 64, 64), np.uint8)
    for i in range(60):
        y, x = rng.integers(0, 40, 2)
        masks[i, y : y + 24, x : x + 24] = 1
    return np.stack(images).astype(np.uint8), masks


def blurred(images: np.ndarray, sigma: float) -> np.ndarray:
    return np.stack([cv2.GaussianBlur(im.astype(np.float32) / 255, (0, 0), sigma) for im in images])


def test_identical_sets_score_zero_and_blur_scores_worse_the_more_it_blurs(crops):
    images, masks = crops
    swd = HoleSWD(images, masks, seed=0)
    assert swd.distance(images / 255.0) == 0.0
    scores = [swd.distance(blurred(images, sigma)) for sigma in (1, 2, 4)]
    assert 0 < scores[0] < scores[1] < scores[2], scores


def test_only_the_hole_counts_and_the_figure_is_seeded(crops):
    images, masks = crops
    swd = HoleSWD(images, masks, seed=0)
    outside = np.where(masks.astype(bool), images / 255.0, blurred(images, 3))  # wrong everywhere but the hole
    assert swd.distance(outside) == 0.0  # the known pixels are pasted back: only the hole's fill is scored
    fill = blurred(images, 2)
    assert HoleSWD(images, masks, seed=0).distance(fill) == swd.distance(fill)
    assert HoleSWD(images, masks, seed=1).distance(fill) != swd.distance(fill)


def test_draws_are_scored_as_one_set_whether_whole_or_in_parts(crops):
    images, masks = crops
    swd = HoleSWD(images, masks, seed=0)
    draws = np.stack([images / 255.0, blurred(images, 1), blurred(images, 2)])
    sources = swd.sources(3)
    whole = swd.distance_of(swd.descriptors(draws, 0, sources))
    parts = [swd.descriptors(draws[:, :25], 0, sources), swd.descriptors(draws[:, 25:], 25, sources)]
    assert swd.distance_of([np.concatenate(level) for level in zip(*parts)]) == whole
    # Patch p comes from draw p mod 3: a third are the truth's, so the set sits between truth and blur.
    assert 0 < whole < swd.distance(blurred(images, 2))
    assert swd.distance_of(swd.descriptors(np.stack([images / 255.0] * 3), 0, sources)) == 0.0


def test_pyramid_levels_holes_and_patch_places():
    assert [levels_for(s) for s in (32, 64, 100, 512)] == [2, 3, 3, 6]
    images = synthetic_images(2, 37)[..., None].astype(np.float32) / 255
    levels = laplacian_pyramid(images, 2)
    assert [lv.shape for lv in levels] == [(2, 1, 37, 37), (2, 1, 19, 19)]
    masks = np.zeros((1, 5, 5), np.uint8)
    masks[0, 4, 4] = 1  # one missing pixel: its coarse pixel is missing (sizes round up)
    assert hole_levels(masks, 2)[1].shape == (1, 3, 3) and hole_levels(masks, 2)[1][0, 2, 2]
    hole = np.zeros((3, 20, 20), bool)
    hole[0, 0, 0] = True  # a corner: the patch is moved in, still holding it
    hole[2, 10:12, 10:12] = True  # image 1 has no hole: no patches
    centres = patch_centres(hole, 4, np.random.default_rng(0))
    assert centres.shape == (8, 3) and set(centres[:, 0]) == {0, 2}
    assert (centres[:4, 1:] == 3).all() and ((centres[4:, 1:] >= 10) & (centres[4:, 1:] <= 11)).all()


def test_no_hole_anywhere_has_no_figure():
    images = synthetic_images(3, 32)
    swd = HoleSWD(images, np.zeros((3, 32, 32), np.uint8))
    assert np.isnan(swd.distance(images / 255.0))


def test_evaluate_reports_realism_and_diversity_of_a_learned_prior(tiny_project):
    import torch

    from vaeinpaint.modeling.checkpoint import model_config, save_checkpoint
    from vaeinpaint.modeling.model import build_model
    from vaeinpaint.params import ModelParams

    root, n, size = tiny_project.root, 24, 32
    (root / "data/prepared").mkdir(parents=True)
    np.save(root / "data/prepared/images.npy", synthetic_images(n, size))
    ids = tiny_project.split(12, 12)
    masks = np.zeros((n, size, size), np.uint8)
    for i in range(n):  # holes from 4% to 48% of the image
        side = 6 + i % 12
        masks[i, 2 : 2 + side, 3 : 3 + side] = 1
    (root / "data/masks").mkdir(parents=True)
    np.savez(root / "data/masks/masks.npz", train=masks[:12], test=masks[12:])
    shares = masks.reshape(n, -1).mean(1)
    pd.DataFrame({"id": ids, "subset": ["train"] * 12 + ["test"] * 12, "kind": "square", "share": shares, "mask_file": ""}).to_csv(
        root / "data/masks/per_image.csv", index=False
    )
    params = ModelParams(width=4, latent_channels=2, prior="learned")
    torch.manual_seed(0)
    model = build_model(params)
    with torch.no_grad():
        model.to_latent.bias[2:] = 2.0  # a wide prior: the draws differ
    save_checkpoint(root / "data/model/checkpoint.pt", {"model": model.state_dict(), "config": model_config(params, size)})
    blocks = {"prepare": {"size": size}, "model": {"width": 4, "latent_channels": 2, "prior": "learned"}}
    out = tiny_project.params({**blocks, "baselines": {"methods": ["corrupted", "telea"]}, "evaluate": {"grid_images": 0}}).run("evaluate")
    assert out.returncode == 0, out.stderr
    results = json.loads((root / "metrics/evaluate.json").read_text())
    assert results["test"]["samples"] == 8  # evaluate.samples: auto, a learned prior's checkpoint
    assert results["test"]["samples_hole_l1_pairwise"] > 0 and 0 < results["test"]["samples_hole_ssim_pairwise"] < 1
    assert results["test"]["best_of_k_ssim_mean"] >= results["test"]["sample_ssim_mean"]
    assert results["test"]["best_of_k_hole_psnr"] >= results["test"]["sample_hole_psnr"]
    realism = results["hole_swd"]
    assert "not FID" in realism["measure"]
    assert set(realism) == {"measure", "model", "model_samples", "corrupted", "telea"}
    assert all(realism[k] > 0 for k in ("model", "model_samples", "corrupted", "telea"))
    bins = pd.read_csv(root / "metrics/diversity_by_hole_size.csv")
    assert bins["n"].sum() == 12 and (bins["samples"] == 8).all() and len(bins) >= 3
    assert (bins["best_of_k_ssim"] >= bins["sample_ssim"]).all()
