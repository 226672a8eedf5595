"""`python -m vaeinpaint.bench`: speed and size figures, as ratios from one run."""
