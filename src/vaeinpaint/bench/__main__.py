"""`python -m vaeinpaint.bench`: the same as `vaeinpaint bench`."""

from vaeinpaint.bench.command import bench
from vaeinpaint.console import run_stage

if __name__ == "__main__":
    run_stage(bench)
