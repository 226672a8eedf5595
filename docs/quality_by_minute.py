"""The picture of test quality against minutes of training in docs/metrics.md (docs/quality_by_minute.png).

Each argument is LABEL=PATH of a `metrics/quality_by_minute.csv` that an experiment's
`evaluate` stage wrote (`dvc exp show` / `dvc plots` read the same file); each becomes one
column of the figure: SSIM above, hole PSNR below, the model's probes as a line and every
baseline as a flat line on the same test images.

    python docs/quality_by_minute.py faces=runs/faces/metrics/quality_by_minute.csv \
        mixed=runs/mixed/metrics/quality_by_minute.csv -o docs/quality_by_minute.png
"""

from __future__ import annotations

from pathlib import Path

import matplotlib

matplotlib.use("Agg")  # no screen: render to a file
import matplotlib.pyplot as plt  # noqa: E402
import pandas as pd  # noqa: E402
import typer  # noqa: E402

STYLE = {"model": ("C0", "-"), "biharmonic": ("C1", "--"), "telea": ("C2", ":"), "corrupted": ("0.6", "-.")}


def main(
    curves: list[str] = typer.Argument(..., help="LABEL=PATH of a quality_by_minute.csv"),
    out: Path = typer.Option(Path("docs/quality_by_minute.png"), "-o"),
):
    pairs = [c.split("=", 1) for c in curves]
    fig, axes = plt.subplots(2, len(pairs), figsize=(4.2 * len(pairs), 6), squeeze=False, sharex="col")
    for col, (label, path) in enumerate(pairs):
        table = pd.read_csv(path)
        for row, (metric, name) in enumerate((("ssim", "SSIM"), ("hole_psnr", "hole PSNR (dB)"))):
            ax = axes[row][col]
            for method, part in table.groupby("method", sort=False):
                if method == "corrupted":
                    continue  # the black hole sits far below: it would flatten every other line
                colour, dash = STYLE.get(method, ("k", "-"))
                ax.plot(part["minutes"], part[metric], dash, color=colour, marker="o" if method == "model" else None, ms=3, label=method)
            ax.set_ylabel(name)
            ax.grid(alpha=0.3)
            if row == 0:
                n = int(table["n"].iloc[0])
                ax.set_title(f"{label} ({n} test images)")
            else:
                ax.set_xlabel("minutes of training")
    axes[0][0].legend(loc="lower right")
    fig.tight_layout()
    fig.savefig(out, dpi=110)
    print(out)


if __name__ == "__main__":
    typer.run(main)
