"""One experiment as `experiments.json` keeps it: the few figures the report shows, taken from
the metrics files an experiment's stages wrote (as `dvc exp show` gives them) and its params.
Plain data, so that the report can be re-rendered, and its fragments checked, anywhere,
without DVC, the data or the model; and so that a hand-built record is easy to write."""

from __future__ import annotations

import io
import posixpath
from typing import Any

from vaeinpaint import paths

SCORES = ("ssim_mean", "ssim_std", "hole_psnr", "n")
TRAIN = (
    "epochs",
    "training_minutes",
    "stopped_early",
    "step_images_per_s",
    "batch_size",
    "precision",
    "device",
    "machine",
)
DIVERSITY = (
    "samples",
    "samples_hole_l1_pairwise",
    "samples_hole_ssim_pairwise",
    "sample_ssim_mean",
    "best_of_k_ssim_mean",
)
NOT_A_FILL = "corrupted"  # the damaged input itself: the floor, not a way of filling the hole


def flatten(tree: Any, prefix: str = "") -> dict[str, Any]:
    """A nested params tree as `block.key: value`, as `dvc exp run -S` names params."""
    if not isinstance(tree, dict):
        return {prefix: tree}
    flat: dict[str, Any] = {}
    for key, value in tree.items():
        flat.update(flatten(value, f"{prefix}.{key}" if prefix else str(key)))
    return flat


def changed_params(params: dict[str, Any], baseline: dict[str, Any]) -> dict[str, Any]:
    """The params (flat) whose value differs from the baseline commit's, sorted by name."""
    return {key: params[key] for key in sorted(params) if key not in baseline or baseline[key] != params[key]}


def _pick(source: Any, keys: tuple[str, ...]) -> dict[str, Any] | None:
    if not isinstance(source, dict):
        return None
    picked = {key: source[key] for key in keys if key in source}
    return picked or None


def _data(params: dict[str, Any], split: dict | None, prepare: dict | None) -> dict[str, Any]:
    """Which images: the source, the archive or folder by its file name, the split's sizes, the
    pixels. The archive's name tells the stand-ins (CelebA, Imagenette) from the study's sets."""
    where = params.get("data.url") or params.get("data.path") or ""
    return {
        "source": params.get("data.source"),
        "archive": posixpath.basename(str(where).rstrip("/")) or None,
        "n_train": (split or {}).get("n_train"),
        "n_test": (split or {}).get("n_test"),
        "size": (prepare or {}).get("size", params.get("prepare.size")),
        "color": (prepare or {}).get("color", params.get("prepare.color")),
    }


def quality_rows(csv: bytes | None) -> dict[str, Any] | None:
    """metrics/quality_by_minute.csv's model rows (minutes, epoch, ssim, hole_psnr) and the
    number of probe images; None for no file or no model rows."""
    if not csv:
        return None
    import pandas as pd

    table = pd.read_csv(io.BytesIO(csv))
    model = table[table["method"] == "model"] if "method" in table else table.iloc[0:0]
    if model.empty:
        return None
    rows = [
        {"minutes": float(row.minutes), "epoch": int(row.epoch), "ssim": float(row.ssim), "hole_psnr": float(row.hole_psnr)}
        for row in model.itertuples()
    ]
    return {"n": int(model["n"].iloc[0]) if "n" in model else None, "model": rows}


def experiment_record(
    name: str,
    rev: str,
    baseline: str,
    params: dict[str, Any],
    baseline_params: dict[str, Any],
    metrics: dict[str, Any],
    quality_csv: bytes | None = None,
    grid: str | None = None,
    notes: list[str] | None = None,
) -> dict[str, Any]:
    """The record of one experiment. `params` and `baseline_params` are flat; `metrics` maps a
    metrics file (metrics/evaluate.json, ...) to its content; `grid` is the sample grid's path
    relative to the report's folder."""
    evaluate = metrics.get(paths.EVAL_METRICS.as_posix()) or {}
    occlude = metrics.get(paths.OCCLUDE_METRICS.as_posix()) or {}
    fills = evaluate.get("baselines") or {}
    hole_swd = evaluate.get("hole_swd")
    return {
        "name": name,
        "rev": rev,
        "baseline": baseline,
        "changed_params": changed_params(params, baseline_params),
        "data": _data(params, metrics.get(paths.SPLIT_METRICS.as_posix()), metrics.get(paths.PREPARE_METRICS.as_posix())),
        "masks": {"shape": occlude.get("shape"), "hole_share": (occlude.get("test") or {}).get("share_mean")},
        "test": _pick(evaluate.get("test"), SCORES),
        "baselines": {method: _pick(scores.get("test"), SCORES) for method, scores in sorted(fills.items()) if isinstance(scores, dict)},
        "hole_swd": {k: v for k, v in sorted(hole_swd.items()) if isinstance(v, (int, float))} if isinstance(hole_swd, dict) else None,
        "diversity": _pick(evaluate.get("test"), DIVERSITY) if (evaluate.get("test") or {}).get("samples") else None,
        "train": _pick(metrics.get(paths.TRAIN_METRICS.as_posix()), TRAIN),
        "quality_by_minute": quality_rows(quality_csv),
        "grid": grid,
        "notes": list(notes or []),
    }


def better_fill(record: dict[str, Any]) -> tuple[str, dict[str, Any]] | None:
    """The classical fill that did better on the experiment's test masks: the higher test SSIM,
    ties by hole PSNR; the damaged input itself (`corrupted`) is no fill. None without any."""
    fills = [
        (name, scores)
        for name, scores in sorted((record.get("baselines") or {}).items())
        if name != NOT_A_FILL and scores and scores.get("ssim_mean") is not None
    ]
    if not fills:
        return None
    return max(fills, key=lambda item: (item[1]["ssim_mean"], item[1].get("hole_psnr") or float("-inf")))
