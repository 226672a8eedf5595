"""Scores by hole size, on a case worked out by hand."""

import numpy as np
import pandas as pd
import pytest

from vaeinpaint.errors import DataError
from vaeinpaint.evaluation.by_hole_size import bin_metrics, bin_of, by_hole_size, scores_by_method


def test_bins_are_tenths_closed_on_the_left():
    shares = np.array([0.0, 0.05, 0.1, 0.2999, 0.3, 3 / 10, 0.7, 0.95, 1.0])
    assert bin_of(shares).tolist() == [0, 0, 1, 2, 3, 3, 7, 9, 9]
    assert bin_of(np.array([0.1 * 3])).tolist() == [3]  # 0.30000000000000004 and 0.3 alike


def test_table_by_hand():
    per_image = pd.DataFrame(
        {
            "method": ["model"] * 4 + ["telea"] * 4,
            "share": [0.05, 0.08, 0.15, 0.30] * 2,
            "ssim": [0.9, 0.8, 0.7, 0.5, 0.8, 0.6, 0.6, 0.2],
            "hole_psnr": [30.0, 20.0, 18.0, 15.0, 25.0, 15.0, 16.0, 11.0],
        }
    )
    table = by_hole_size(per_image)
    expected = pd.DataFrame(
        {
            "bin": ["0-10%", "10-20%", "30-40%"] * 2,
            "hole_share": [0.05, 0.15, 0.35] * 2,
            "method": ["model"] * 3 + ["telea"] * 3,
            "n": [2, 1, 1] * 2,
            "ssim": [0.85, 0.7, 0.5, 0.7, 0.6, 0.2],
            "hole_psnr": [25.0, 18.0, 15.0, 20.0, 16.0, 11.0],
        }
    )
    pd.testing.assert_frame_equal(table, expected)
    metrics = bin_metrics(table)
    assert metrics["test_ssim_bin_0_10"] == 0.85 and metrics["test_hole_psnr_bin_30_40"] == 15.0
    assert metrics["test_telea_ssim_bin_10_20"] == 0.6 and metrics["test_telea_hole_psnr_bin_0_10"] == 20.0
    assert len(metrics) == 12


def test_model_and_baselines_are_scored_on_the_test_images_with_their_recorded_shares():
    model = pd.DataFrame(
        {"id": ["a", "b", "c"], "subset": ["train", "test", "test"], "ssim": [0.1, 0.2, 0.3], "hole_psnr": [1.0, 2.0, 3.0]}
    )
    baselines = pd.DataFrame(
        {
            "id": ["b", "c", "a"],
            "subset": ["test", "test", "train"],
            "method": ["biharmonic"] * 3,
            "ssim": [0.4, 0.5, 0.6],
            "hole_psnr": [4.0, 5.0, 6.0],
        }
    )
    shares = pd.Series({"a": 0.9, "b": 0.12, "c": 0.55})
    table = scores_by_method(model, baselines, shares)
    assert table.to_dict("list") == {
        "method": ["model", "model", "biharmonic", "biharmonic"],
        "share": [0.12, 0.55, 0.12, 0.55],
        "ssim": [0.2, 0.3, 0.4, 0.5],
        "hole_psnr": [2.0, 3.0, 4.0, 5.0],
    }
    assert by_hole_size(table)["bin"].tolist() == ["10-20%", "50-60%", "10-20%", "50-60%"]
    with pytest.raises(DataError, match="no hole share recorded for image c"):
        scores_by_method(model, None, shares.drop("c"))
