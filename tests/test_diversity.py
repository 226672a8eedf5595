import numpy as np
import pytest
import torch

from vaeinpaint.evaluation.diversity import diversity
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


def test_pairwise_hole_ssim_is_scikit_images_ssim_map_over_the_hole():
    from skimage.metrics import structural_similarity

    from vaeinpaint.evaluation.diversity import hole_ssim_pairs
    from vaeinpaint.evaluation.metrics import SSIM_SETTINGS

    rng = np.random.default_rng(1)
    masks = np.zeros((2, 32, 32), np.uint8)
    masks[0, 0:12, 20:32] = 1  # at the border: the reflected edge as scikit-image has it
    masks[1, 10:20, 5:15] = 1
    for shape, channels in (((2, 32, 32), {}), ((2, 32, 32, 3), {"channel_axis": -1})):
        draws = rng.random((3, *shape))
        expected = []
        for i in range(2):
            hole = masks[i].astype(bool)
            pairs = []
            for a, b in ((0, 1), (0, 2), (1, 2)):
                _, full = structural_similarity(draws[a, i], draws[b, i], full=True, **SSIM_SETTINGS, **channels)
                pairs.append(full[hole].mean())
            expected.append(np.mean(pairs))
        assert hole_ssim_pairs(draws, masks) == pytest.approx(expected, abs=1e-12)


def test_the_figures_of_draws_and_their_bins_of_hole_size():
    from vaeinpaint.evaluation.diversity import PER_IMAGE, by_hole_size, sample

    images, masks = _data(n=6)
    masks[3:] = 0
    masks[3:, 0:24, 0:24] = 1  # three images with a larger hole
    table, figures, _ = sample(_model(collapse=False), images, masks, k=3, seed=0, batch_size=4)
    assert list(table.columns) == PER_IMAGE and len(table) == 6
    assert (table["best_of_k_ssim"] >= table["sample_ssim"]).all() and (table["best_of_k_hole_psnr"] >= table["sample_hole_psnr"]).all()
    assert figures["samples_hole_ssim_pairwise"] < 1 and figures["best_of_k_hole_psnr"] >= figures["sample_hole_psnr"]
    assert figures == sample(_model(collapse=False), images, masks, k=3, seed=0, batch_size=6)[1]  # batches do not matter
    shares = masks.reshape(6, -1).mean(1)
    bins = by_hole_size(table, shares, 3)
    assert list(bins["bin"]) == ["10-20%", "50-60%"] and list(bins["n"]) == [3, 3] and (bins["samples"] == 3).all()
    assert bins["hole_l1_pairwise"].iloc[0] == pytest.approx(table["hole_l1_pairwise"][:3].mean(), abs=1e-6)


def test_a_collapsed_learned_prior_has_no_diversity():
    torch.manual_seed(0)
    model = InpaintVAE(width=8, latent_channels=4, prior="learned")
    with torch.no_grad():
        model.to_latent.bias[4:] = -30.0  # the prior's log-variance: every draw is its mean
        model.posterior.to_latent.bias[4:] = 6.0  # a wide posterior changes nothing: draws come from the prior
    images, masks = _data()
    figures = diversity(model.eval(), images, masks, k=4, seed=0)
    assert figures["samples_hole_l1_pairwise"] == pytest.approx(0.0, abs=1e-6)
    assert figures["samples_hole_ssim_pairwise"] == pytest.approx(1.0, abs=1e-6)
    assert figures["best_of_k_ssim_mean"] == pytest.approx(figures["sample_ssim_mean"], abs=1e-6)
