"""Stage scripts as DVC runs them: bad input -> one line naming the problem, exit 2, nothing written."""

import numpy as np
import pandas as pd


def test_bad_param_is_one_line_and_writes_nothing(tiny_project):
    before = tiny_project.tree()
    out = tiny_project.params({"occlusion": {"ratio": 1.5}}).run("download")
    assert out.returncode == 2
    assert out.stderr.strip() == "error: occlusion.ratio: must be in (0, 1), got 1.5"
    assert tiny_project.tree() == sorted(before + ["params.yaml"])  # no data/, no metrics/


def test_missing_folder_source(tiny_project):
    out = tiny_project.params({"data": {"source": "folder", "path": "holiday-photos"}}).run("download")
    assert out.returncode == 2
    assert out.stderr.strip() == "error: data.path: holiday-photos does not exist"
    assert not (tiny_project.root / "data").exists()


def test_split_larger_than_the_data_is_refused_before_writing(tiny_project):
    tmp_path = tiny_project.root
    prepared = tmp_path / "data/prepared"
    prepared.mkdir(parents=True)
    np.save(prepared / "images.npy", np.zeros((10, 8, 8), np.uint8))
    pd.DataFrame({"id": [f"{i:016x}" for i in range(10)], "row": range(10), "sha256": [f"{i:064x}" for i in range(10)]}).to_csv(
        prepared / "index.csv", index=False
    )
    out = tiny_project.params({"split": {"train": 25000, "test": 2000}}).run("split")
    assert out.returncode == 2
    assert out.stderr.strip().startswith("error: split.train + split.test: 25000 + 2000 = 27000 images asked for")
    assert not (tmp_path / "data/split").exists() and not (tmp_path / "metrics").exists()


def test_missing_upstream_output_names_the_stage_to_run(tiny_project):
    out = tiny_project.params({}).run("occlude")
    assert out.returncode == 2
    assert out.stderr.strip() == "error: data/split/split.csv: missing (run `dvc repro split` first)"
