"""What a run was made from, in MLflow's terms: its standard source tags (beside the DVC
ones) and the prepared train and test sets as datasets. Plain data, no mlflow import."""

from __future__ import annotations

import getpass
import json
import os
import subprocess
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

from vaeinpaint.files import file_hash
from vaeinpaint.params import DataParams
from vaeinpaint.paths import project_root

DATASET_CONTEXTS = {"train": "training", "test": "testing"}


def git(*args: str, root: Path | None = None) -> str:
    try:
        out = subprocess.run(["git", *args], cwd=root or Path.cwd(), capture_output=True, text=True, timeout=10)
    except (OSError, subprocess.SubprocessError):
        return ""
    return out.stdout.strip() if out.returncode == 0 else ""


def git_commit(root: Path | None = None) -> str:
    return git("rev-parse", "HEAD", root=root)


def source_name(script: str | Path) -> str:
    """The stage script as the project names it (`stages/train.py`), not a temporary copy's path."""
    path = Path(script).resolve()
    for base in (Path.cwd().resolve(), project_root()):
        try:
            return path.relative_to(base).as_posix()
        except ValueError:
            continue
    return str(path)


def run_tags(data_files: Mapping[str, str | Path], script: str | Path | None = None) -> dict[str, str]:
    """Tags every run carries: MLflow's source tags (what the runs table's Source column
    shows), the DVC experiment, the git commit, and the MD5 of its inputs."""
    commit = git_commit()
    tags = {
        "mlflow.source.type": "LOCAL",
        "mlflow.source.name": source_name(script) if script else "",
        "mlflow.source.git.commit": commit,
        "mlflow.source.git.repoURL": git("remote", "get-url", "origin"),
        "mlflow.user": user(),
        "dvc.exp_name": os.environ.get("DVC_EXP_NAME", ""),
        "dvc.baseline_rev": os.environ.get("DVC_EXP_BASELINE_REV", ""),
        "git.commit": commit,
    }
    for name, path in data_files.items():
        if Path(path).exists():
            tags[f"data.{name}.md5"] = file_hash(path)
    return {k: v for k, v in tags.items() if v}


def user() -> str:
    try:
        return getpass.getuser()
    except (KeyError, OSError):
        return ""


def run_name() -> str | None:
    """The DVC experiment's name when `dvc exp run` drives us (MLflow picks one otherwise)."""
    return os.environ.get("DVC_EXP_NAME") or None


@dataclass(frozen=True)
class DatasetRecord:
    """One prepared subset as MLflow records a dataset (mlflow.entities.Dataset's fields)."""

    name: str
    digest: str
    source_type: str
    source: str  # JSON
    profile: str  # JSON
    context: str  # mlflow.data.context: training | testing


def dataset_source(data: DataParams) -> tuple[str, dict]:
    """(MLflow source type, source) for where `download` took the raw images: the provenance."""
    if data.url and data.source in ("url", "ffhq", "animals10"):
        return "http", {"url": data.url}
    if data.path and data.source in ("folder", "ffhq", "animals10"):
        path = Path(data.path).expanduser()
        return "local", {"uri": (path if path.is_absolute() else project_root() / path).resolve().as_uri()}
    if data.source == "animals10":
        return "http", {"url": "https://www.kaggle.com/datasets/alessiocorrado99/animals10"}
    return "code", {"tags": {"data.source": data.source, "data.builtin_count": str(data.builtin_count), "data.seed": str(data.seed)}}


def prepared_datasets(data: DataParams, images: Path, split: Path, masks: Path, sizes: Mapping[str, int], size: int) -> list[DatasetRecord]:
    """The prepared train and test sets. Each is the rows of images.npy that split.csv gives
    it, so its digest is the first 16 hex digits of the MD5 of each of those two files, as
    DVC records them (`dvc.lock`); the profile has the full hashes and the counts."""
    hashes = {"images.npy": file_hash(images), "split.csv": file_hash(split)}
    if Path(masks).exists():
        hashes["masks.npz"] = file_hash(masks)
    source_type, source = dataset_source(data)
    digest = hashes["images.npy"][:16] + hashes["split.csv"][:16]
    records = []
    for subset, context in DATASET_CONTEXTS.items():
        profile = {"images": int(sizes.get(subset, 0)), "size": f"{size}x{size}", "md5": hashes}
        records.append(DatasetRecord(f"{data.source}-{subset}", digest, source_type, json.dumps(source), json.dumps(profile), context))
    return records
