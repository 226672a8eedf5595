"""DVC stage `occlude`: a mask for every train and test image (`occlusion.shape`), and the
share of each image it hides."""

from pathlib import Path

import pandas as pd

from vaeinpaint import paths
from vaeinpaint.console import run_stage
from vaeinpaint.data.dataset import read_split, write_masks
from vaeinpaint.data.sources import resolve
from vaeinpaint.data.split import SUBSETS, ids_of
from vaeinpaint.files import write_json
from vaeinpaint.masks.files import read_mask_files
from vaeinpaint.masks.generator import check_shares, occlude, occlude_summary
from vaeinpaint.params import load_params


def main(params_file: Path = paths.PARAMS) -> None:
    params = load_params(params_file)
    size, occlusion = params.prepare.size, params.occlusion
    split = read_split()
    files = None
    if occlusion.shape == "files":
        files = read_mask_files(resolve(occlusion.path, paths.project_root()), size, size, shown=occlusion.path)
    results = {subset: occlude(ids_of(split, subset), size, occlusion, files) for subset in SUBSETS}
    check_shares(occlusion, results)  # before anything is written
    masks = {subset: result.masks for subset, result in results.items()}
    per_image = pd.concat([r.per_image.assign(subset=s) for s, r in results.items()], ignore_index=True)
    boxes = pd.concat([r.boxes.assign(subset=s) for s, r in results.items()], ignore_index=True)
    write_masks(
        masks,
        boxes[["id", "subset", "box", "x", "y", "w", "h"]],
        per_image[["id", "subset", "kind", "share", "mask_file"]],
    )
    write_json(paths.OCCLUDE_METRICS, occlude_summary(occlusion, results, files))


if __name__ == "__main__":
    run_stage(main)
