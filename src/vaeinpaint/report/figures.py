"""The report's picture of quality against minutes of training: test SSIM (train's probe, pasted
back) against the minutes each experiment trained, one line per experiment, from
experiments.json alone. The same records give the same bytes: a fixed size and resolution,
no backend chosen for the whole process (a Figure with its own Agg canvas, no pyplot), and
no software version or date in the PNG's metadata, so a regenerated figure changes only
when the results do."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from vaeinpaint.files import atomic_path

SIZE_INCHES = (7.0, 4.5)
DPI = 100
DASHES = ("-", "--", ":", "-.")


def quality_curves(records: list[dict[str, Any]]) -> list[tuple[str, list[float], list[float]]]:
    """(name, minutes, SSIM) of every experiment with a probe of quality against minutes."""
    curves = []
    for record in records:
        rows = (record.get("quality_by_minute") or {}).get("model") or []
        if rows:
            curves.append((record["name"], [row["minutes"] for row in rows], [row["ssim"] for row in rows]))
    return curves


def quality_figure(records: list[dict[str, Any]], path: Path) -> bool:
    """Write the figure to `path` (PNG); False, and nothing written, when no experiment has a probe."""
    curves = quality_curves(records)
    if not curves:
        return False
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    figure = Figure(figsize=SIZE_INCHES, dpi=DPI)
    FigureCanvasAgg(figure)
    axes = figure.add_subplot()
    for i, (name, minutes, ssim) in enumerate(curves):
        axes.plot(minutes, ssim, DASHES[i // 10 % len(DASHES)], color=f"C{i % 10}", marker="o", ms=3, label=name)
    axes.set_xlabel("minutes of training")
    axes.set_ylabel("SSIM (test probe, pasted back)")
    axes.grid(alpha=0.3)
    axes.legend(loc="lower right", fontsize=8)
    figure.tight_layout()
    with atomic_path(path) as tmp:
        figure.savefig(tmp, format="png", dpi=DPI, metadata={"Software": None})
    return True
