"""The report's markdown, in named fragments: the study's table beside ours, every other
experiment, training, realism and diversity, the figure and the grids. results.md is made of
them, and the README and docs embed them between `<!-- report:NAME -->` markers
(`report.markers`), so that every number in the project's prose is generated from
experiments.json, never typed. Numbers are formatted one way everywhere (SSIM 4 decimals,
PSNR 2), so a regenerated fragment changes only when a result does."""

from __future__ import annotations

import posixpath
from collections.abc import Callable
from typing import Any

from vaeinpaint.presets import Presets
from vaeinpaint.report.records import better_fill

DASH = "–"
NOT_RUN = "not run"
FIGURE = "quality_by_minute.png"
GRID_COLUMNS = "original, damaged, raw output, pasted back"


def ssim(value: Any, std: Any = None) -> str:
    if value is None:
        return DASH
    return f"{value:.4f} ± {std:.4f}" if std is not None else f"{value:.4f}"


def psnr(value: Any) -> str:
    return DASH if value is None else f"{value:.2f} dB"


def share(value: Any) -> str:
    return DASH if value is None else f"{100 * value:.1f}%"


def published(study: Any) -> str:
    """The study's number as it published it (its std has 3 decimals, its means 4)."""
    return f"{study.ssim:g} ± {study.std:g}" if study.std is not None else f"{study.ssim:g}"


def cell(text: Any) -> str:
    return str(text).replace("|", "\\|").replace("\n", " ")


def table(headers: list[str], rows: list[list[Any]]) -> str:
    lines = ["| " + " | ".join(headers) + " |", "|" + "---|" * len(headers)]
    lines += ["| " + " | ".join(cell(c) for c in row) + " |" for row in rows]
    return "\n".join(lines)


def short(value: Any) -> str:
    """A param's value for a table cell: a path or URL by its file name, a long string (a
    SHA-256) cut to 12 characters. experiments.json keeps the whole value."""
    if isinstance(value, str) and "/" in value:
        return "…/" + posixpath.basename(value.rstrip("/"))
    if isinstance(value, str) and len(value) > 24:
        return value[:12] + "…"
    return str(value).lower() if isinstance(value, bool) else str(value)


def changed(record: dict[str, Any]) -> str:
    params = record.get("changed_params") or {}
    return ", ".join(f"`{key}={short(value)}`" for key, value in params.items()) or "none"


def data(record: dict[str, Any]) -> str:
    d = record.get("data") or {}
    if not any(d.values()):
        return DASH
    where = d.get("archive") or d.get("source") or DASH
    sizes = f"{d['n_train']} + {d['n_test']}" if d.get("n_train") is not None else DASH
    pixels = f"{d['size']} px {d.get('color') or ''}".strip() if d.get("size") else DASH
    return f"{where}, {sizes}, {pixels}"


def fill(record: dict[str, Any]) -> str:
    best = better_fill(record)
    if best is None:
        return DASH
    name, scores = best
    return f"{name} {ssim(scores['ssim_mean'])} / {psnr(scores.get('hole_psnr'))}"


def training(record: dict[str, Any]) -> str:
    t = record.get("train") or {}
    if t.get("epochs") is None:
        return DASH
    minutes = f", {t['training_minutes']:.1f} min" if t.get("training_minutes") is not None else ""
    return f"{t['epochs']} epochs{minutes}" + (" (budget reached)" if t.get("stopped_early") else "")


def machine(record: dict[str, Any]) -> str:
    t = record.get("train") or {}
    if t.get("machine"):
        return t["machine"]
    return f"{t['device']} (machine not recorded)" if t.get("device") else DASH


def ours(record: dict[str, Any]) -> list[str]:
    """The columns every results table shares: SSIM, hole PSNR, the better fill, the hole share,
    the data, the training budget and the machine."""
    test = record.get("test") or {}
    masks = record.get("masks") or {}
    return [
        ssim(test.get("ssim_mean"), test.get("ssim_std")),
        psnr(test.get("hole_psnr")),
        fill(record),
        share(masks.get("hole_share")),
        data(record),
        training(record),
        machine(record),
    ]


OURS = ["SSIM (ours)", "Hole PSNR (ours)", "Better classical fill (SSIM / hole PSNR)", "Hole share", "Data", "Training", "Machine"]


def study_table(records: list[dict[str, Any]], presets: Presets) -> str:
    by_name = {r["name"]: r for r in records}
    rows = []
    for name, experiment in presets.experiments.items():
        if experiment.study is None:
            continue
        record = by_name.get(name)
        mine = ours(record) if record is not None else [NOT_RUN] * len(OURS)
        rows.append([experiment.study.row, f"`{name}`", published(experiment.study), *mine])
    return table(["Study's row", "Experiment", "SSIM (study)", *OURS], rows)


def study_names(presets: Presets) -> set[str]:
    return {name for name, experiment in presets.experiments.items() if experiment.study is not None}


def others(records: list[dict[str, Any]], presets: Presets) -> list[dict[str, Any]]:
    return [r for r in records if r["name"] not in study_names(presets)]


def experiments_table(records: list[dict[str, Any]], presets: Presets) -> str:
    rest = others(records, presets)
    if not rest:
        return "No experiment beyond the study's rows."
    rows = []
    for record in rest:
        preset = presets.experiments.get(record["name"])
        rows.append([f"`{record['name']}`", preset.about if preset else DASH, changed(record), *ours(record)])
    return table(["Experiment", "About", "Changed params", *OURS], rows)


def training_table(records: list[dict[str, Any]]) -> str:
    rows = []
    for record in records:
        t = record.get("train") or {}
        speed = f"{t['step_images_per_s']:.1f}" if t.get("step_images_per_s") is not None else DASH
        minutes = f"{t['training_minutes']:.2f}" if t.get("training_minutes") is not None else DASH
        budget = DASH if t.get("stopped_early") is None else ("yes" if t["stopped_early"] else "no")
        row = [t.get("epochs", DASH), minutes, budget, speed, t.get("batch_size", DASH), t.get("precision", DASH)]
        rows.append([f"`{record['name']}`", *row, t.get("device", DASH), machine(record)])
    headers = ["Experiment", "Epochs", "Minutes", "Stopped by the budget", "Step images/s", "Batch", "Precision", "Device", "Machine"]
    return table(headers, rows) if rows else "No experiment."


def realism_table(records: list[dict[str, Any]]) -> str:
    rows = []
    for record in records:
        swd = record.get("hole_swd") or {}
        fills = {k: v for k, v in swd.items() if k not in ("model", "model_samples", "corrupted")}
        closest = min(sorted(fills.items()), key=lambda item: item[1]) if fills else None
        d = record.get("diversity") or {}
        number = lambda v, places: DASH if v is None else f"{v:.{places}f}"  # noqa: E731
        rows.append(
            [
                f"`{record['name']}`",
                number(swd.get("model"), 1),
                number(swd.get("model_samples"), 1),
                f"{closest[0]} {closest[1]:.1f}" if closest else DASH,
                d.get("samples", DASH),
                number(d.get("samples_hole_l1_pairwise"), 4),
                ssim(d.get("best_of_k_ssim_mean")),
            ]
        )
    headers = ["Experiment", "Hole SWD (model)", "Hole SWD (draws)", "Closest classical fill (SWD)"]
    headers += ["Draws K", "Hole L1 between draws", "Best of K SSIM"]
    return table(headers, rows) if rows else "No experiment."


def link(base: str, path: str) -> str:
    """`path` (relative to the report's folder) as seen from a file whose folder is `base` away."""
    return path if base in ("", ".") else posixpath.join(base, path)


def quality_figure_text(records: list[dict[str, Any]], base: str) -> str:
    if not any((r.get("quality_by_minute") or {}).get("model") for r in records):
        return "No experiment has a probe of quality against minutes (train.probe_points: 0, or no metrics/quality_by_minute.csv)."
    return f"![Test SSIM against minutes of training, one line per experiment]({link(base, FIGURE)})"


def grids(records: list[dict[str, Any]], base: str) -> str:
    parts = []
    for record in records:
        if record.get("grid"):
            parts.append(f"**`{record['name']}`** ({GRID_COLUMNS}):\n\n![Restorations of {record['name']}]({link(base, record['grid'])})")
        else:
            parts.append(f"**`{record['name']}`**: no sample grid.")
    return "\n\n".join(parts) or "No experiment."


def headline(records: list[dict[str, Any]], presets: Presets) -> str:
    """One sentence for the README's first screen: the first of the study's rows that has been
    run (in the presets' order), ours against the better fill, with the training and machine."""
    by_name = {r["name"]: r for r in records}
    for name, experiment in presets.experiments.items():
        record = by_name.get(name)
        test = (record or {}).get("test") or {}
        if experiment.study is None or test.get("ssim_mean") is None:
            continue
        best = better_fill(record)
        versus = f", against {best[0]}'s {ssim(best[1]['ssim_mean'])} and {psnr(best[1].get('hole_psnr'))}" if best else ""
        return (
            f"`{name}` ({experiment.about}): test SSIM **{ssim(test['ssim_mean'], test.get('ssim_std'))}** and "
            f"{psnr(test.get('hole_psnr'))} in the hole{versus} on the same masks, after {training(record)} on {machine(record)} "
            f"(the study: {published(experiment.study)} after 30 GPU-hours)."
        )
    return "None of the study's rows has been run yet (`vaeinpaint experiments queue --study`)."


def teaser_text(records: list[dict[str, Any]], presets: Presets, base: str) -> str:
    """The teaser's image, if any experiment it shows has a showcase (`report.pictures`)."""
    shown = [name for name in presets.teaser if any(r["name"] == name and r.get("showcase") for r in records)]
    if not shown:
        return "No experiment of the teaser's list has been run (presets/experiments.yaml, `teaser`)."
    about = ", ".join(f"`{name}`" for name in shown)
    return (
        f"![The hole, ours, biharmonic, Telea and the truth, on test images of {about}]({link(base, 'teaser.png')})\n\n"
        f"Test images of {about}, under the experiment's own square and under free-form strokes: "
        "the hole, our model's most likely completion, biharmonic, Telea, the truth."
    )


def completions_text(records: list[dict[str, Any]], base: str) -> str:
    parts = [
        f"**`{r['name']}`**: K completions drawn from its learned prior, its most likely one and the truth.\n\n"
        f"![K completions of {r['name']}]({link(base, r['completions'])})"
        for r in records
        if r.get("completions")
    ]
    return "\n\n".join(parts) or "No experiment with a learned prior (model.prior: learned) has been run."


def notes(records: list[dict[str, Any]]) -> str:
    lines = [f"- `{r['name']}`: {note}" for r in records for note in r.get("notes") or []]
    return "\n".join(lines) or "None."


def fragments(data: dict[str, Any], presets: Presets, base: str = "") -> dict[str, str]:
    """Every fragment by name. `base`: the report's folder (experiments.json's, where the
    figure and grids/ are) as seen from the file the fragments go into ("" for results.md)."""
    records = data["experiments"]
    makers: dict[str, Callable[[], str]] = {
        "study-table": lambda: study_table(records, presets),
        "experiments-table": lambda: experiments_table(records, presets),
        "training-table": lambda: training_table(records),
        "realism-table": lambda: realism_table(records),
        "quality-figure": lambda: quality_figure_text(records, base),
        "grids": lambda: grids(records, base),
        "headline": lambda: headline(records, presets),
        "teaser": lambda: teaser_text(records, presets, base),
        "completions": lambda: completions_text(records, base),
        "notes": lambda: notes(records),
    }
    return {name: make() for name, make in makers.items()}
