"""The results report (`vaeinpaint report`): finished experiments collected from DVC into a plain
experiments.json (`collect`), rendered from it alone into results.md, its figure and the
sample grids (`render`), and as named fragments that the README and docs embed between
markers and that a check keeps in step with the committed results (`fragments`, `markers`)."""

from vaeinpaint.report.command import COMMITTED, check_files, run_report, update_files
from vaeinpaint.report.fragments import fragments
from vaeinpaint.report.render import load_experiments, render

__all__ = ["COMMITTED", "check_files", "fragments", "load_experiments", "render", "run_report", "update_files"]
