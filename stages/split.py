"""DVC stage `split`: deterministic train/test split by content hash."""

from pathlib import Path

from vaeinpaint import paths
from vaeinpaint.console import run_stage
from vaeinpaint.data.dataset import read_index
from vaeinpaint.data.split import assign_split
from vaeinpaint.files import write_csv, write_json
from vaeinpaint.params import load_params


def main(params_file: Path = paths.PARAMS) -> None:
    params = load_params(params_file)
    split = assign_split(read_index(), params.split)
    write_csv(paths.SPLIT, split)
    counts = split["subset"].value_counts()
    write_json(paths.SPLIT_METRICS, {"n_train": int(counts.get("train", 0)), "n_test": int(counts.get("test", 0))})


if __name__ == "__main__":
    run_stage(main)
