import numpy as np
import pytest
import torch

from vaeinpaint.evaluation.evaluate import diversity
from vaeinpaint.modeling.model import InpaintVAE


def _data(n=6, size=32):
    rng = np.random.default_rng(0)
    images = rng.integers(0, 256, (n, size, size), dtype=np.uint8)
    masks = np.zeros((n, size, size), np.uint8)
    masks[:, 8:20, 10:22] = 1
    return images, masks


def _model(collapse: bool) -> InpaintVAE:
    torch.manual_seed(0)
    model = InpaintVAE(width=8, latent_channels=4)
    with torch.no_grad():
        # Log-variance +6 (a wide posterior, every draw visibly different) or -30 (every draw is the mean).
        model.to_latent.weight[4:] = 0.0
        model.to_latent.bias[4:] = -30.0 if collapse else 6.0
    return model.eval()


def test_draws_differ_inside_the_hole_and_best_of_k_is_an_upper_bound():
    images, masks = _data()
    figures = diversity(_model(collapse=False), images, masks, k=4, seed=0)
    assert figures["samples"] == 4
    assert figures["samples_hole_l1_pairwise"] > 1e-4  # against < 1e-6 with a collapsed latent (below)
    assert figures["best_of_k_ssim_mean"] >= figures["sample_ssim_mean"]
    assert diversity(_model(collapse=False), images, masks, k=4, seed=0) == figures  # seeded: reproducible
    assert diversity(_model(collapse=False), images, masks, k=4, seed=1) != figures


def test_a_collapsed_latent_has_no_diversity_and_best_equals_one_draw():
    images, masks = _data()
    figures = diversity(_model(collapse=True), images, masks, k=3, seed=0)
    assert figures["samples_hole_l1_pairwise"] == pytest.approx(0.0, abs=1e-6)
    assert figures["best_of_k_ssim_mean"] == pytest.approx(figures["sample_ssim_mean"], abs=1e-6)


def test_diversity_needs_two_samples():
    images, masks = _data(2)
    with pytest.raises(ValueError):
        diversity(_model(collapse=False), images, masks, k=1, seed=0)
