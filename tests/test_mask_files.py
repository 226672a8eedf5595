"""Masks read from files (`occlusion.shape: files`): any size or format, bad files counted, the occlude stage."""

import importlib.util
import json
import subprocess

import numpy as np
import pandas as pd
import pytest
import yaml
from PIL import Image

from vaeinpaint.errors import DataError
from vaeinpaint.masks.files import assign, read_mask_files
from vaeinpaint.masks.generator import occlude
from vaeinpaint.params import OcclusionParams

from _samples import encode, make_zip, truncated_jpeg
from conftest import ROOT, TinyProject


def stripes(width: int, height: int) -> np.ndarray:
    """bool [height, width]: the left third missing."""
    hole = np.zeros((height, width), bool)
    hole[:, : width // 3] = True
    return hole


def mask_files() -> dict[str, bytes]:
    """One of every awkward kind, named by what it is. Every usable one hides the left third."""
    hole = stripes(90, 60)
    rgba = np.zeros((60, 90, 4), np.uint8)
    rgba[hole] = 255  # white strokes on a transparent layer
    palette = Image.fromarray(np.where(hole, 1, 0).astype(np.uint8), "P")
    palette.putpalette([0, 0, 0, 255, 255, 255])
    return {
        "odd_size.png": encode(Image.fromarray(np.where(stripes(37, 53), 255, 0).astype(np.uint8)), "PNG"),
        "big.jpg": encode(Image.fromarray(np.where(stripes(300, 200), 255, 0).astype(np.uint8)), "JPEG", quality=95),
        "layer_rgba.png": encode(Image.fromarray(rgba, "RGBA"), "PNG"),
        "sixteen_bit.png": encode(Image.fromarray(np.where(hole, 65535, 0).astype(np.uint16)), "PNG"),
        "palette.gif": encode(palette, "GIF"),
        "sub/rgb.bmp": encode(Image.fromarray(np.where(hole[..., None], 255, 0).astype(np.uint8).repeat(3, axis=2)), "BMP"),
        "not_an_image.png": b"this is text, not a PNG",
        "truncated.jpg": truncated_jpeg(),
        "all_black.png": encode(Image.new("L", (20, 20), 0), "PNG"),
        "empty.png": b"",
        "README.txt": b"masks for the test",  # not an image name: ignored, not counted
    }


USABLE = ["big.jpg", "layer_rgba.png", "odd_size.png", "palette.gif", "sixteen_bit.png", "sub/rgb.bmp"]
SKIPPED = {"not an image": 1, "truncated image": 1, "no missing pixels": 1, "empty file": 1}


def write_folder(folder, files):
    for name, data in files.items():
        (folder / name).parent.mkdir(parents=True, exist_ok=True)
        (folder / name).write_bytes(data)
    return folder


def test_every_kind_of_mask_file_is_read_or_counted(tmp_path):
    found = read_mask_files(write_folder(tmp_path / "masks", mask_files()), 24, 24)
    assert found.names == USABLE
    assert dict(found.skipped) == SKIPPED
    assert found.summary() == {"read": 6, "skipped": 4, "skipped_reasons": dict(sorted(SKIPPED.items()))}
    assert found.masks.shape == (6, 24, 24) and found.masks.dtype == np.uint8
    expected = np.zeros((24, 24), np.uint8)
    expected[:, :8] = 1  # the left third, resized nearest-neighbour: no grey edge, nothing lost
    for name, mask in zip(found.names, found.masks):
        assert np.array_equal(mask, expected), name


def test_an_archive_of_masks_reads_as_its_folder(tmp_path):
    archive = make_zip(tmp_path / "masks.zip", mask_files())
    from_zip = read_mask_files(archive, 24, 24)
    from_folder = read_mask_files(write_folder(tmp_path / "masks", mask_files()), 24, 24)
    assert from_zip.names == from_folder.names and np.array_equal(from_zip.masks, from_folder.masks)
    assert from_zip.skipped == from_folder.skipped
    assert not list(tmp_path.glob("vaeinpaint-masks-*"))


def test_unsafe_archive_is_refused_naming_the_param(tmp_path):
    archive = make_zip(tmp_path / "masks.zip", {"../escape.png": encode(Image.new("L", (8, 8), 255), "PNG")})
    with pytest.raises(DataError, match=r"^occlusion\.path: unsafe archive member '\.\./escape\.png'"):
        read_mask_files(archive, 24, 24)


@pytest.mark.parametrize(
    "files", [{}, {"bad.png": b"nope", "black.png": encode(Image.new("L", (9, 9), 0), "PNG")}], ids=["empty", "unusable"]
)
def test_a_folder_without_usable_masks_is_an_error(tmp_path, files):
    folder = write_folder(tmp_path / "masks", {"notes.txt": b"x", **files})
    with pytest.raises(DataError, match=r"^occlusion\.path: no usable mask images in masks \(") as err:
        read_mask_files(folder, 24, 24, shown="masks")
    assert ("1 not an image, 1 no missing pixels" if files else "no image files") in str(err.value)


def test_each_image_keeps_its_mask_and_masks_are_shared_evenly():
    ids = [f"{i:016x}" for i in range(3000)]
    chosen = assign(ids, 7, seed=0)
    assert np.array_equal(chosen, assign(ids, 7, seed=0))
    assert np.array_equal(assign(ids[100:] + ["ffffffffffffffff"], 7, seed=0)[:-1], chosen[100:])  # stable when images are added
    counts = np.bincount(chosen, minlength=7)
    assert counts.min() > 0.8 * 3000 / 7  # fewer masks than images: each is used, about equally
    assert not np.array_equal(assign(ids, 7, seed=1), chosen)


def test_occlude_assigns_file_masks(tmp_path):
    found = read_mask_files(write_folder(tmp_path / "masks", mask_files()), 24, 24)
    ids = [f"{i:016x}" for i in range(40)]
    result = occlude(ids, 24, OcclusionParams(shape="files", path="masks"), found)
    assert set(result.per_image["kind"]) == {"file"}
    assert set(result.per_image["mask_file"]) <= set(USABLE) and len(set(result.per_image["mask_file"])) > 3
    assert np.allclose(result.per_image["share"], 8 / 24)
    assert result.boxes.empty


def run_occlude(project, occlusion: dict) -> subprocess.CompletedProcess:
    return TinyProject(project).params({"prepare": {"size": 32}, "occlusion": occlusion}).run("occlude")


@pytest.fixture
def project(tiny_project):
    """A project folder with a split of 30 images, ready for the occlude stage."""
    tiny_project.split(24, 6)
    return tiny_project.root


def load_stage(name: str):
    spec = importlib.util.spec_from_file_location(f"stage_{name}", ROOT / "stages" / f"{name}.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_occlude_stage_records_shares_and_skipped_files(project, monkeypatch):
    write_folder(project / "masks", mask_files())
    (project / "params.yaml").write_text(yaml.safe_dump({"prepare": {"size": 32}, "occlusion": {"shape": "files", "path": "masks"}}))
    monkeypatch.chdir(project)
    load_stage("occlude").main(project / "params.yaml")
    summary = json.loads((project / "metrics/occlude.json").read_text())
    assert summary["shape"] == "files" and summary["target_share"] is None
    assert summary["train"]["n"] == 24 and summary["test"]["n"] == 6
    assert 0.3 < summary["train"]["share_mean"] < 0.36  # each usable mask hides about its left third
    assert summary["mask_files"] == {"read": 6, "skipped": 4, "skipped_reasons": dict(sorted(SKIPPED.items()))}
    table = pd.read_csv(project / "data/masks/per_image.csv", dtype=str, keep_default_na=False)
    assert list(table.columns) == ["id", "subset", "kind", "share", "mask_file"] and len(table) == 30
    with np.load(project / "data/masks/masks.npz") as masks:
        assert masks["train"].shape == (24, 32, 32) and masks["test"].shape == (6, 32, 32)


def test_occlude_stage_records_stroke_shares(project, monkeypatch):
    (project / "params.yaml").write_text(yaml.safe_dump({"prepare": {"size": 32}, "occlusion": {"shape": "strokes", "ratio": 0.3}}))
    monkeypatch.chdir(project)
    load_stage("occlude").main(project / "params.yaml")
    summary = json.loads((project / "metrics/occlude.json").read_text())
    assert summary["target_share"] == 0.3
    assert abs(summary["train"]["share_mean"] - 0.3) < 0.03 and summary["train"]["share_min"] > 0.15
    table = pd.read_csv(project / "data/masks/per_image.csv")
    with np.load(project / "data/masks/masks.npz") as masks:
        shares = np.concatenate([masks["train"].mean(axis=(1, 2)), masks["test"].mean(axis=(1, 2))])
    assert np.allclose(table["share"], shares)
    assert set(table["kind"]) == {"strokes"}


def test_occlude_stage_refuses_an_empty_mask_folder_in_one_line_and_writes_nothing(project):
    (project / "masks").mkdir()
    out = run_occlude(project, {"shape": "files", "path": "masks"})
    assert out.returncode == 2, out.stderr
    assert out.stderr == "error: occlusion.path: no usable mask images in masks (no image files)\n"
    assert not (project / "data/masks").exists() and not (project / "metrics").exists()


def test_occlude_stage_refuses_a_ratio_strokes_cannot_reach(project, monkeypatch):
    from vaeinpaint.errors import ParamError

    (project / "params.yaml").write_text(yaml.safe_dump({"prepare": {"size": 32}, "occlusion": {"shape": "strokes", "ratio": 0.7}}))
    monkeypatch.chdir(project)
    with pytest.raises(ParamError, match=r"^occlusion\.ratio: strokes reach only 0\.\d\d of a 32x32 image on average"):
        load_stage("occlude").main(project / "params.yaml")
    assert not (project / "data/masks").exists() and not (project / "metrics").exists()
