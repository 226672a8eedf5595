"""Scores by hole size: every method's metrics in bins of the share of the image hidden.

With free-form or file masks the hole varies from image to image, and a mean over the test
set hides how a method degrades as the hole grows. LaMa (`bin/evaluate_predicts.py`,
`InpaintingEvaluator` with `area_grouping`) reports its scores in ten bins of hole share,
0-10%, 10-20%, ..., 90-100%; so does this table, for the model and every baseline on the
same images and masks. Bin k holds shares in [k/10, (k+1)/10), a full mask the last one;
empty bins are left out. The share of each image is the one the `occlude` stage recorded.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

BINS = 10
COLUMNS = ["bin", "hole_share", "method", "n", "ssim", "hole_psnr"]


def bin_of(shares: np.ndarray) -> np.ndarray:
    """Bin index (0 .. BINS - 1) of each hole share. Rounded first, so that 0.3 counts as 30%
    even where 0.3 * 10 comes out as 2.9999999999999996."""
    return np.clip(np.floor(np.round(np.asarray(shares, dtype=np.float64) * BINS, 9)).astype(int), 0, BINS - 1)


def bin_name(k: int) -> str:
    return f"{100 * k // BINS}-{100 * (k + 1) // BINS}%"


def scores_by_method(
    model: pd.DataFrame, baselines: pd.DataFrame | None, shares: pd.Series, subset: str = "test", name: str = "model"
) -> pd.DataFrame:
    """One row per image and method of `subset` (method, share, ssim, hole_psnr): the model's
    per-image scores (id, subset, ssim, hole_psnr) as `name`, then each baseline's (id,
    subset, method, ...), with each image's hole share looked up in `shares` (by id)."""
    tables = [model[model["subset"] == subset].assign(method=name)]
    if baselines is not None:
        tables.append(baselines[baselines["subset"] == subset])
    table = pd.concat(tables, ignore_index=True)
    table["share"] = table["id"].map(shares).to_numpy()
    if table["share"].isna().any():
        from vaeinpaint.errors import DataError

        missing = table.loc[table["share"].isna(), "id"].iloc[0]
        raise DataError(f"no hole share recorded for image {missing} (re-run `dvc repro occlude`)")
    return table[["method", "share", "ssim", "hole_psnr"]]


def by_hole_size(per_image: pd.DataFrame) -> pd.DataFrame:
    """`per_image` (method, share, ssim, hole_psnr: one row per image and method) -> one row
    per method and non-empty bin: bin name, the bin's middle share, n, mean SSIM and mean hole
    PSNR. Methods keep their order of appearance; bins go from small holes to large."""
    table = per_image.assign(_bin=bin_of(per_image["share"].to_numpy()))
    methods = list(dict.fromkeys(table["method"]))
    grouped = table.groupby(["method", "_bin"], sort=False)[["ssim", "hole_psnr"]].agg(["mean", "size"])
    rows = []
    for method in methods:
        for k in range(BINS):
            if (method, k) not in grouped.index:
                continue
            values = grouped.loc[(method, k)]
            rows.append(
                {
                    "bin": bin_name(k),
                    "hole_share": round((k + 0.5) / BINS, 3),
                    "method": method,
                    "n": int(values[("ssim", "size")]),
                    "ssim": round(float(values[("ssim", "mean")]), 6),
                    "hole_psnr": round(float(values[("hole_psnr", "mean")]), 4),
                }
            )
    return pd.DataFrame(rows, columns=COLUMNS)


def bin_metrics(table: pd.DataFrame, subset: str = "test", model: str = "model") -> dict[str, float]:
    """The table as MLflow metrics, named like the overall ones: `test_ssim_bin_10_20` for the
    model, `test_biharmonic_hole_psnr_bin_10_20` for a baseline."""
    metrics = {}
    for row in table.itertuples():
        low, high = row.bin.rstrip("%").split("-")
        prefix = f"{subset}_" if row.method == model else f"{subset}_{row.method}_"
        metrics[f"{prefix}ssim_bin_{low}_{high}"] = row.ssim
        metrics[f"{prefix}hole_psnr_bin_{low}_{high}"] = row.hole_psnr
    return metrics
