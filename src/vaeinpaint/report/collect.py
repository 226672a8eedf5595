"""What the report is made from, collected from DVC: the workspace and every finished experiment
that `dvc exp show` knows, each with its params (changed from its baseline commit), the
metrics files its stages wrote, its probe of quality against minutes and its sample grid.
This is the only part of the report that needs DVC and the project; everything after it
reads the plain `experiments.json` it produces."""

from __future__ import annotations

import json
import re
import subprocess
import sys
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from vaeinpaint import paths
from vaeinpaint.errors import DataError, ParamError, one_line
from vaeinpaint.report.records import experiment_record, flatten
from vaeinpaint.report.render import PNG_SIGNATURE

WORKSPACE = "workspace"


@dataclass
class Found:
    """One experiment as `dvc exp show --json` lists it."""

    name: str
    rev: str  # a commit, or "workspace"
    baseline: str  # the commit it was run on
    params: dict[str, Any]  # flat
    baseline_params: dict[str, Any]  # flat
    metrics: dict[str, Any]  # metrics file -> its content
    notes: list[str] = field(default_factory=list)


def exp_show(project: Path, all_commits: bool = False) -> list[dict]:
    """`dvc exp show --json` of `project`, queued and failed experiments left out."""
    if not (project / ".dvc").is_dir():
        raise ParamError(
            f"{project.resolve()}: not a DVC repository (no .dvc folder): run `vaeinpaint report` in the project, "
            "or re-render with --from DIR/experiments.json"
        )
    command = [sys.executable, "-m", "dvc", "exp", "show", "--json", "--hide-queued", "--hide-failed"]
    shown = subprocess.run([*command, *(["--all-commits"] if all_commits else [])], cwd=project, capture_output=True, text=True)
    if shown.returncode != 0:
        last = (shown.stderr.strip().splitlines() or ["no message"])[-1]
        raise DataError(f"dvc exp show failed in {project.resolve()}: {last}")
    try:
        return json.loads(shown.stdout)
    except json.JSONDecodeError as error:
        raise DataError(f"dvc exp show --json in {project.resolve()}: not JSON ({one_line(error)})") from error


def _params(state: dict) -> dict[str, Any]:
    """The flat params of an experiment state: params.yaml's by key, any other params file's as FILE:key."""
    flat: dict[str, Any] = {}
    for file, content in sorted(((state.get("data") or {}).get("params") or {}).items()):
        for key, value in flatten((content or {}).get("data") or {}).items():
            flat[key if file == paths.PARAMS.as_posix() else f"{file}:{key}"] = value
    return flat


def _metrics(state: dict) -> dict[str, Any]:
    metrics = (state.get("data") or {}).get("metrics") or {}
    return {file: content["data"] for file, content in sorted(metrics.items()) if isinstance(content, dict) and "data" in content}


def found_experiments(show: list[dict]) -> list[Found]:
    """The workspace (against HEAD, the first commit listed) and every finished experiment of
    every commit listed (against that commit). A queued, running or failed experiment, or one
    without data, is left out."""
    commits = [state for state in show if state.get("rev") != WORKSPACE]
    found: list[Found] = []
    for state in show:
        if state.get("rev") == WORKSPACE and state.get("data"):
            head = commits[0] if commits else {}
            found.append(Found(WORKSPACE, WORKSPACE, head.get("rev", ""), _params(state), _params(head), _metrics(state)))
    for commit in commits:
        for run in commit.get("experiments") or []:
            state = (run.get("executor") or {}).get("state", "success")
            last = (run.get("revs") or [{}])[0]
            if state != "success" or not last.get("data"):
                continue
            name = run.get("name") or last.get("name") or last["rev"][:7]
            found.append(Found(name, last["rev"], commit["rev"], _params(last), _params(commit), _metrics(last)))
    return _unique(found)


def _unique(found: list[Found]) -> list[Found]:
    """One name per experiment: a name used twice (the same name on two commits, with
    --all-commits) gets its commit's first 7 characters."""
    seen: dict[str, int] = {}
    for item in found:
        seen[item.name] = seen.get(item.name, 0) + 1
    for item in found:
        if seen[item.name] > 1 and item.rev != WORKSPACE:
            item.name = f"{item.name}@{item.rev[:7]}"
    return found


def read_at(project: Path, rev: str, path: Path) -> tuple[bytes | None, str]:
    """A file (git- or DVC-tracked) as it is in experiment `rev` (the workspace: on disk), or
    (None, why not): a DVC output of an experiment whose cache is gone, or that never ran the
    stage, cannot be read."""
    if rev == WORKSPACE:
        file = project / path
        return (file.read_bytes(), "") if file.is_file() else (None, f"{path} is not in the workspace")
    import dvc.api

    try:
        return dvc.api.read(path.as_posix(), repo=str(project), rev=rev, mode="rb"), ""
    except Exception as error:  # DVC raises many kinds (no such path, no cache, checkout): each means "unavailable"
        return None, f"{path} of {rev[:7]} cannot be read: {one_line(error)}"


def grid_name(name: str) -> str:
    """A file name for an experiment's grid: its name with anything but letters, digits, `.`,
    `_` and `-` as `_`."""
    return re.sub(r"[^A-Za-z0-9._-]", "_", name) + ".png"


def collect(project: Path, all_commits: bool = False) -> tuple[dict[str, Any], dict[str, bytes]]:
    """(experiments.json's content, the files to put beside it by path: the grids under grids/,
    the showcases under showcase/). The workspace comes first, then the experiments by name."""
    from vaeinpaint.report.pictures import SHOWCASES, completions_path, showcase_of
    from vaeinpaint.report.showcase import npz_bytes

    found = found_experiments(exp_show(project, all_commits))
    found = [f for f in found if f.rev == WORKSPACE] + sorted((f for f in found if f.rev != WORKSPACE), key=lambda f: f.name)
    records, files = [], {}
    for item in found:
        notes = list(item.notes)
        quality, why = read_at(project, item.rev, paths.QUALITY_BY_MINUTE)
        if quality is None:
            notes.append(f"no quality against minutes: {why}")
        grid, why = read_at(project, item.rev, paths.SAMPLES)
        if grid is not None and not grid.startswith(PNG_SIGNATURE):
            grid, why = None, f"{paths.SAMPLES} of {item.name} is not a PNG"
        grid_path = None
        if grid is None:
            notes.append(f"no sample grid: {why}")
        else:
            grid_path = f"grids/{grid_name(item.name)}"
            files[grid_path] = grid
        arrays, why = showcase_of(lambda rev, path: read_at(project, rev, path), item.rev)
        showcase_path = None
        if arrays is None:
            notes.append(f"no showcase: {why}")
        else:
            showcase_path = f"{SHOWCASES}/{grid_name(item.name).removesuffix('.png')}.npz"
            files[showcase_path] = npz_bytes(arrays)
        records.append(
            experiment_record(
                item.name, item.rev, item.baseline, item.params, item.baseline_params, item.metrics, quality, grid_path, notes
            )
            | {"showcase": showcase_path, "completions": completions_path(item.name) if arrays and "completion_draws" in arrays else None}
        )
    return {"experiments": records}, files
