"""`vaeinpaint report`: collect finished experiments from DVC and render the report's folder, or
re-render it from experiments.json, or check (and update) the generated blocks of the README
and docs against the committed results/experiments.json."""

from __future__ import annotations

import os
from collections.abc import Callable
from pathlib import Path

from vaeinpaint import paths
from vaeinpaint.errors import ParamError
from vaeinpaint.files import atomic_path
from vaeinpaint.presets import Presets, load_presets
from vaeinpaint.report.fragments import fragments
from vaeinpaint.report.markers import drift, read, update
from vaeinpaint.report.render import EXPERIMENTS, load_experiments, render

COMMITTED = Path("results") / EXPERIMENTS  # the report the README and docs embed, committed


def presets_here() -> Presets:
    """presets/experiments.yaml of the project this runs in (found upwards, as stages find it)."""
    return load_presets(paths.project_root() / paths.PRESETS)


def base_from(file: Path, source: Path) -> str:
    """The folder of `source` (experiments.json, its grids and figure) as a link from `file`."""
    return Path(os.path.relpath(source.parent.resolve(), file.parent.resolve())).as_posix()


def check_files(files: list[Path], source: Path, presets: Presets) -> list[str]:
    """One line per file whose marked blocks differ from what `source` gives; none: all agree."""
    data = load_experiments(source)
    lines = []
    for file in files:
        line = drift(file, fragments(data, presets, base_from(file, source)), str(source))
        if line:
            lines.append(line)
    return lines


def update_files(files: list[Path], source: Path, presets: Presets) -> list[Path]:
    """Rewrite the marked blocks of `files` from `source`; the files that changed."""
    data = load_experiments(source)
    changed = []
    for file in files:
        text = read(file)
        new = update(text, fragments(data, presets, base_from(file, source)))
        if new != text:
            with atomic_path(file) as tmp:
                tmp.write_text(new)
            changed.append(file)
    return changed


def run_report(
    files: list[Path],
    output: Path | None,
    source: Path | None,
    check: bool,
    update_: bool,
    project: Path,
    all_commits: bool,
    echo: Callable[..., None],
) -> int:
    """The command; its exit status (1: blocks differ under --check)."""
    if check and update_:
        raise ParamError("--check and --update: give one of them")
    presets = presets_here()
    if check or update_:
        if not files:
            raise ParamError(f"--{'check' if check else 'update'}: name the files with report markers (README.md docs/*.md)")
        source = source or COMMITTED
        if check:
            lines = check_files(files, source, presets)
            for line in lines:
                echo(line)
            return 1 if lines else 0
        for file in update_files(files, source, presets):
            echo(f"updated {file}")
        return 0
    if files:
        raise ParamError(f"{files[0]}: files are for --check or --update")
    if output is None:
        raise ParamError("-o DIR: where to write the report (results.md, experiments.json, grids/, the figure)")
    if source is not None:
        written = render(load_experiments(source), output, presets, source=source.parent)
    else:
        from vaeinpaint.report.collect import collect

        data, files = collect(project, all_commits)
        written = render(data, output, presets, files=files)
    echo(f"wrote {output / 'results.md'} ({len(written)} files)")
    return 0
