"""DVC stage `baselines`: classical fills (corrupted, biharmonic, telea) on the same masks."""

from pathlib import Path

import numpy as np
import pandas as pd

from vaeinpaint import paths
from vaeinpaint.console import run_stage
from vaeinpaint.data.dataset import load_subset, read_images, read_masks, read_split
from vaeinpaint.data.split import SUBSETS
from vaeinpaint.evaluation.baselines import evenly_spaced, fill_all
from vaeinpaint.evaluation.evaluate import score, summarize
from vaeinpaint.files import write_csv, write_json
from vaeinpaint.params import load_params


def main(params_file: Path = paths.PARAMS) -> None:
    p = load_params(params_file).baselines
    images, split, masks = read_images(), read_split(), read_masks()
    results: dict[str, dict] = {method: {} for method in p.methods}
    tables = []
    for subset_name in SUBSETS:
        subset = load_subset(subset_name, images, split, masks)
        chosen = np.arange(len(subset.ids))
        if subset_name == "train" and p.train_limit:
            chosen = evenly_spaced(len(chosen), p.train_limit)  # biharmonic is ~10 ms an image
        images_, masks_ = subset.images[chosen], subset.masks[chosen]
        for method in p.methods:
            table = score(images_, masks_, fill_all(method, images_, masks_, p.workers))
            results[method][subset_name] = summarize(table)
            tables.append(table.assign(id=[subset.ids[i] for i in chosen], subset=subset_name, method=method))
    per_image = pd.concat(tables, ignore_index=True)
    write_csv(paths.BASELINES_PER_IMAGE, per_image[["id", "subset", "method", "ssim", "hole_psnr", "hole_l1"]])
    write_json(paths.BASELINES_METRICS, results)


if __name__ == "__main__":
    run_stage(main)
