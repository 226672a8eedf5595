import numpy as np
import pytest
from scipy.ndimage import gaussian_filter

from vaeinpaint.evaluation import metrics


def ssim_by_hand(x: np.ndarray, y: np.ndarray) -> float:
    """Wang et al. (2004), written out: Gaussian-weighted local means, variances and
    covariance (sigma 1.5, window truncated at 3.5 sigma = 11 x 11), C1 = (0.01 L)^2,
    C2 = (0.03 L)^2 with L = 1, averaged over the pixels whose window fits in the image."""
    f = lambda a: gaussian_filter(a, sigma=1.5, truncate=3.5, mode="reflect")  # noqa: E731
    mx, my = f(x), f(y)
    vx, vy, cxy = f(x * x) - mx * mx, f(y * y) - my * my, f(x * y) - mx * my
    c1, c2 = 0.01**2, 0.03**2
    s = ((2 * mx * my + c1) * (2 * cxy + c2)) / ((mx**2 + my**2 + c1) * (vx + vy + c2))
    return float(s[5:-5, 5:-5].mean())


def test_ssim_of_two_flat_images_is_the_luminance_term():
    # Flat images have no variance, so SSIM = (2ab + C1) / (a^2 + b^2 + C1).
    a, b, c1 = 0.5, 0.25, 1e-4
    expected = (2 * a * b + c1) / (a * a + b * b + c1)
    assert metrics.ssim(np.full((32, 32), a), np.full((32, 32), b)) == pytest.approx(expected, abs=1e-9)
    assert expected == pytest.approx(0.80006, abs=1e-5)


def test_ssim_matches_wang_et_al_written_out():
    rng = np.random.default_rng(0)
    x = gaussian_filter(rng.random((40, 40)), 2)
    y = np.clip(x + 0.05 * rng.standard_normal(x.shape), 0, 1)
    assert metrics.ssim(x, y) == pytest.approx(ssim_by_hand(x, y), abs=1e-9)
    assert metrics.ssim(x, x) == pytest.approx(1.0)


def test_hole_metrics_ignore_pixels_outside_the_mask():
    rng = np.random.default_rng(1)
    reference = rng.random((1, 20, 20))
    masks = np.zeros((1, 20, 20), np.uint8)
    masks[:, 5:10, 5:10] = 1
    restored = reference + 0.1 * masks  # error 0.1 inside the hole only
    assert metrics.hole_psnr(reference, restored, masks)[0] == pytest.approx(20.0)  # MSE 0.01
    assert metrics.hole_l1(reference, restored, masks)[0] == pytest.approx(0.1)
    garbage_outside = np.where(masks == 1, restored, rng.random(restored.shape))
    assert metrics.hole_psnr(reference, garbage_outside, masks)[0] == pytest.approx(20.0)
    assert metrics.hole_l1(reference, garbage_outside, masks)[0] == pytest.approx(0.1)


def test_perfect_fill_is_capped_not_infinite():
    reference = np.random.default_rng(2).random((2, 8, 8))
    masks = np.ones((2, 8, 8), np.uint8)
    assert np.all(metrics.hole_psnr(reference, reference, masks) == 100.0)


def test_paste_back_keeps_known_pixels():
    original, output = np.full((4, 4), 0.3), np.full((4, 4), 0.9)
    mask = np.zeros((4, 4))
    mask[1:3, 1:3] = 1
    pasted = metrics.paste_back(original, output, mask)
    assert np.all(pasted[mask == 0] == 0.3) and np.all(pasted[mask == 1] == 0.9)


def test_summary_is_population_mean_and_std():
    assert metrics.summary(np.array([0.5, 0.7])) == {"mean": 0.6, "std": 0.1}
