"""DVC stage `occlude`: square masks for every train and test image."""

from pathlib import Path

import pandas as pd

from vaeinpaint import paths
from vaeinpaint.cli import run_stage
from vaeinpaint.data.dataset import read_split, write_masks
from vaeinpaint.data.split import SUBSETS, ids_of
from vaeinpaint.masks.boxes import boxes_table, occlude
from vaeinpaint.params import load_params, square_side


def main(params_file: Path = paths.PARAMS) -> None:
    params = load_params(params_file)
    size, occlusion = params.prepare.size, params.occlusion
    side = square_side(size, occlusion.ratio, occlusion.ratio_of)
    split = read_split()
    masks, boxes = {}, []
    for subset in SUBSETS:
        ids = ids_of(split, subset)
        masks[subset], corners = occlude(ids, size, occlusion)
        boxes.append(boxes_table(ids, subset, corners, side))
    write_masks(masks, pd.concat(boxes, ignore_index=True))


if __name__ == "__main__":
    run_stage(main)
