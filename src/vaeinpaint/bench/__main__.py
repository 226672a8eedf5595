"""`python -m vaeinpaint.bench`: the same as `vaeinpaint bench` (`speed.py` measures)."""

from vaeinpaint.bench.speed import main
from vaeinpaint.cli import run_stage

if __name__ == "__main__":
    run_stage(main)
