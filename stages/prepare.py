"""DVC stage `prepare`: gray or colour (`prepare.color`), resize to `prepare.size`, one array + an index table."""

from pathlib import Path

from vaeinpaint import paths
from vaeinpaint.console import run_stage
from vaeinpaint.data.dataset import write_prepared
from vaeinpaint.data.images import prepare_folder
from vaeinpaint.files import write_json
from vaeinpaint.params import load_params


def main(params_file: Path = paths.PARAMS) -> None:
    p = load_params(params_file).prepare
    prepared = prepare_folder(paths.RAW_DIR, p.size, p.fit, p.workers, p.color)
    write_prepared(prepared.images, prepared.index)
    write_json(paths.PREPARE_METRICS, prepared.stats)


if __name__ == "__main__":
    run_stage(main)
