"""DVC stage `download`: acquire raw images for `data.source` into data/raw/."""

from pathlib import Path

from vaeinpaint import paths
from vaeinpaint.console import run_stage
from vaeinpaint.data.sources import acquire
from vaeinpaint.params import load_params


def main(params_file: Path = paths.PARAMS) -> None:
    params = load_params(params_file)
    acquire(params.data, paths.RAW_DIR, base=paths.project_root())


if __name__ == "__main__":
    run_stage(main)
