"""The report's pictures of restorations: each experiment's showcase (a few test images under
its square and under strokes, restored by its model and by the fills; K completions where it
has a learned prior), collected from the experiment's model and data, kept as small .npz
files beside experiments.json, and drawn into the README's teaser and the K-completions
figures."""

from __future__ import annotations

import io
from pathlib import Path
from typing import Any

import numpy as np

from vaeinpaint import paths
from vaeinpaint.errors import one_line

SHOWCASES = "showcase"
TEASER = "teaser.png"
COMPLETIONS = "completions"
K_SHOWN = 6  # draws in the K-completions figure


def completions_path(name: str) -> str:
    """Where experiment `name`'s K-completions figure goes, relative to the report's folder."""
    return f"{COMPLETIONS}/{name}.png"


def showcase_of(read, rev: str) -> tuple[dict[str, np.ndarray] | None, str]:
    """The showcase arrays of experiment `rev` (`read(rev, path)` -> (bytes or None, why)), or
    (None, why not). Keys: `report.showcase.showcase`'s, and with a learned prior
    `completion_*` (`report.showcase.completions`'s, draws included)."""
    import pandas as pd
    import torch

    from vaeinpaint.data.dataset import load_subset
    from vaeinpaint.modeling.checkpoint import checkpoint_prior, model_from_checkpoint
    from vaeinpaint.report.showcase import completions, showcase

    files = {}
    for key, path in {"checkpoint": paths.CHECKPOINT, "images": paths.IMAGES, "split": paths.SPLIT, "masks": paths.MASKS}.items():
        content, why = read(rev, path)
        if content is None:
            return None, why
        files[key] = io.BytesIO(content)
    try:
        state = torch.load(files["checkpoint"], map_location="cpu", weights_only=True)
        model, _ = model_from_checkpoint(state)
        with np.load(files["masks"]) as stored:
            test = load_subset("test", np.load(files["images"]), pd.read_csv(files["split"]), dict(stored))
        arrays = showcase(model, test.images, test.masks)
        if checkpoint_prior(state) == "learned":
            arrays.update({f"completion_{k}": v for k, v in completions(model, test.images, test.masks, k=K_SHOWN).items()})
    except Exception as error:  # a foreign checkpoint or data of another shape: the report goes on without it
        return None, f"no showcase: {one_line(error)}"
    return arrays, ""


def draw_pictures(records: list[dict[str, Any]], out: Path, teaser_names: list[str]) -> list[Path]:
    """teaser.png from the showcases of `teaser_names` (in that order; those without one are
    left out) and completions/NAME.png for every experiment with K completions; the files
    written. Every picture comes from the .npz files under out/showcase."""
    from vaeinpaint.files import atomic_path
    from vaeinpaint.report.panels import completions_figure, teaser
    from vaeinpaint.report.showcase import read_npz

    shown = {r["name"]: read_npz(out / r["showcase"]) for r in records if r.get("showcase") and (out / r["showcase"]).is_file()}
    written = []
    chosen = [(name, shown[name]) for name in teaser_names if name in shown]
    if chosen:
        with atomic_path(out / TEASER) as tmp:
            teaser(chosen).save(tmp, format="PNG")
        written.append(out / TEASER)
    for name, arrays in shown.items():
        if "completion_draws" in arrays:
            target = out / completions_path(name)
            target.parent.mkdir(parents=True, exist_ok=True)
            figure = completions_figure({k.removeprefix("completion_"): v for k, v in arrays.items() if k.startswith("completion_")}, name)
            with atomic_path(target) as tmp:
                figure.save(tmp, format="PNG")
            written.append(target)
    return written
