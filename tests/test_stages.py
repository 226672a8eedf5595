"""Stage scripts as DVC runs them: bad input -> one line naming the problem, exit 2, nothing written."""

import subprocess
import sys

import numpy as np
import pandas as pd
import yaml

from conftest import ROOT, run_env


def run_stage(name: str, cwd, params: dict | None = None):
    if params is not None:
        (cwd / "params.yaml").write_text(yaml.safe_dump(params))
    return subprocess.run(
        [sys.executable, str(ROOT / "stages" / f"{name}.py")], cwd=cwd, env=run_env(VAEINPAINT_TRACKING="0"), capture_output=True, text=True
    )


def tree(folder):
    return sorted(p.relative_to(folder).as_posix() for p in folder.rglob("*"))


def test_bad_param_is_one_line_and_writes_nothing(tmp_path):
    (tmp_path / "dvc.yaml").write_text("stages: {}\n")
    before = tree(tmp_path)
    out = run_stage("download", tmp_path, {"occlusion": {"ratio": 1.5}})
    assert out.returncode == 2
    assert out.stderr.strip() == "error: occlusion.ratio: must be in (0, 1), got 1.5"
    assert tree(tmp_path) == sorted(before + ["params.yaml"])  # no data/, no metrics/


def test_missing_folder_source(tmp_path):
    (tmp_path / "dvc.yaml").write_text("stages: {}\n")
    out = run_stage("download", tmp_path, {"data": {"source": "folder", "path": "holiday-photos"}})
    assert out.returncode == 2
    assert out.stderr.strip() == "error: data.path: holiday-photos does not exist"
    assert not (tmp_path / "data").exists()


def test_split_larger_than_the_data_is_refused_before_writing(tmp_path):
    (tmp_path / "dvc.yaml").write_text("stages: {}\n")
    prepared = tmp_path / "data/prepared"
    prepared.mkdir(parents=True)
    np.save(prepared / "images.npy", np.zeros((10, 8, 8), np.uint8))
    pd.DataFrame({"id": [f"{i:016x}" for i in range(10)], "row": range(10), "sha256": [f"{i:064x}" for i in range(10)]}).to_csv(
        prepared / "index.csv", index=False
    )
    out = run_stage("split", tmp_path, {"split": {"train": 25000, "test": 2000}})
    assert out.returncode == 2
    assert out.stderr.strip().startswith("error: split.train + split.test: 25000 + 2000 = 27000 images asked for")
    assert not (tmp_path / "data/split").exists() and not (tmp_path / "metrics").exists()


def test_missing_upstream_output_names_the_stage_to_run(tmp_path):
    (tmp_path / "dvc.yaml").write_text("stages: {}\n")
    out = run_stage("occlude", tmp_path, {})
    assert out.returncode == 2
    assert out.stderr.strip() == "error: data/split/split.csv: missing (run `dvc repro split` first)"
