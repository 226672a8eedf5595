"""`acquire()` for every archive source, end to end into data/raw and through prepare."""

from __future__ import annotations

import hashlib
import json
import sys
import types
from pathlib import Path

import pytest

from vaeinpaint.data import downloads, sources
from vaeinpaint.data.images import prepare_folder
from vaeinpaint.data.sources import acquire
from vaeinpaint.errors import DataError, ParamError
from vaeinpaint.params import DataParams, Params, from_dict, validate

from _samples import cmyk_jpeg, encode, exif_rotated_jpeg, jpeg, make_zip, photo, png16, rgba_png, truncated_jpeg
from conftest import sha256


@pytest.fixture(autouse=True)
def cache(tmp_path, monkeypatch) -> Path:
    folder = tmp_path / "cache"
    monkeypatch.setenv(downloads.CACHE_ENV, str(folder))
    return folder


@pytest.fixture
def project(tmp_path) -> Path:
    folder = tmp_path / "project"
    folder.mkdir()
    return folder


def files_under(folder: Path) -> list[str]:
    return sorted(p.relative_to(folder).as_posix() for p in folder.rglob("*") if p.is_file()) if folder.exists() else []


def source_json(raw: Path) -> dict:
    return json.loads((raw / "SOURCE.json").read_text())


MESSY = {
    "photos/good.jpg": jpeg(seed=1),
    "photos/same-bytes.jpg": jpeg(seed=1),
    "photos/cmyk.jpg": cmyk_jpeg(),
    "photos/alpha.png": rgba_png(),
    "photos/deep.png": png16(),
    "photos/rotated.jpg": exif_rotated_jpeg(8),
    "photos/truncated.jpg": truncated_jpeg(),
    "photos/text.jpg": b"just text, named like a photo\n",
    "photos/README.txt": b"about these photos\n",
}


def test_url_source_end_to_end(served, project, cache):
    archive = make_zip(served.root / "messy.zip", MESSY)
    params = DataParams(source="url", url=served.url("messy.zip"), sha256=sha256(archive).upper())
    raw = project / "data" / "raw"
    summary = acquire(params, raw, base=project)
    assert summary["images"] == 8 and summary["sha256"] == sha256(archive)
    assert files_under(project / "data") == sorted(["raw/SOURCE.json", *(f"raw/{n}" for n in MESSY if n.endswith((".jpg", ".png")))])
    assert files_under(cache) and not any("data" in p for p in files_under(cache))

    prepared = prepare_folder(raw, 32, "stretch", workers=1)
    stats = prepared.stats
    assert (stats["n_images"], stats["n_skipped"], stats["n_duplicates"]) == (5, 2, 1)
    assert stats["skipped_reasons"] == {"not an image": 1, "truncated image": 1}
    rows = prepared.index.set_index("path")
    image = {path: prepared.images[row] for path, row in rows["row"].items()}
    assert abs(image["photos/cmyk.jpg"][:, 18:30].mean() - 127) < 8
    assert image["photos/alpha.png"][:, 28:].min() >= 253  # transparent right side -> white
    assert image["photos/deep.png"][28:].min() >= 254  # 65535 -> 255
    assert image["photos/rotated.jpg"][2:14, 2:14].mean() < 40 < 215 < image["photos/rotated.jpg"][18:30, 18:30].mean()
    assert (rows.loc["photos/rotated.jpg", "width"], rows.loc["photos/rotated.jpg", "height"]) == (256, 128)
    assert set(rows["label_en"]) == {"photos"}


def test_wrong_checksum_leaves_nothing_under_data(served, project, cache):
    archive = make_zip(served.root / "a.zip", {"a/1.jpg": jpeg()})
    params = DataParams(source="url", url=served.url("a.zip"), sha256="ab" * 32)
    with pytest.raises(DataError) as err:
        acquire(params, project / "data" / "raw", base=project)
    assert f"expected {'ab' * 32}" in str(err.value) and sha256(archive) in str(err.value)
    assert files_under(project / "data") == [] and list((project / "data").iterdir()) == []
    assert [p for p in files_under(cache) if not p.endswith(".lock")] == []


def test_zip_slip_archive_writes_nothing_anywhere(served, project):
    archive = make_zip(served.root / "slip.zip", {"imgs/ok.jpg": jpeg(), "imgs/../../../escaped.jpg": jpeg(seed=2)})
    params = DataParams(source="url", url=served.url("slip.zip"), sha256=sha256(archive))
    with pytest.raises(DataError, match=r"'imgs/\.\./\.\./\.\./escaped\.jpg': '\.\.' in its path"):
        acquire(params, project / "data" / "raw", base=project)
    assert files_under(project / "data") == []
    assert not list(project.parent.rglob("escaped.jpg"))


def test_failed_acquire_keeps_the_previous_raw_folder(served, project):
    raw = project / "data" / "raw"
    raw.mkdir(parents=True)
    (raw / "old.jpg").write_bytes(jpeg())
    make_zip(served.root / "a.zip", {"a/1.jpg": jpeg()})
    with pytest.raises(DataError):
        acquire(DataParams(source="url", url=served.url("a.zip"), sha256="0" * 64), raw, base=project)
    assert files_under(project / "data") == ["raw/old.jpg"]


def test_url_limit_keeps_a_seeded_subset(served, project):
    archive = make_zip(served.root / "a.zip", {f"{c}/{i}.jpg": jpeg(seed=i) for c in "abc" for i in range(10)})
    params = DataParams(source="url", url=served.url("a.zip"), sha256=sha256(archive), limit=9, seed=3)
    summary = acquire(params, project / "data" / "raw", base=project)
    kept = [n for n in files_under(project / "data" / "raw") if n.endswith(".jpg")]
    assert summary["images"] == len(kept) == 9 and {n.split("/")[0] for n in kept} == {"a", "b", "c"}


# ------------------------------------------------------------------------------- ffhq


def ffhq_files(folder: str, count: int, pixels: int = 16) -> dict[str, bytes]:
    """Laid out like NVlabs' archives: <folder>/<thousands>/<number>.png, plus LICENSE.txt."""
    files = {
        f"{folder}/{i - i % 1000:05d}/{i:05d}.png": encode(photo(pixels, pixels, seed=i), "PNG") for i in (*range(count - 2), 1000, 1001)
    }
    files[f"{folder}/LICENSE.txt"] = b"Creative Commons BY-NC-SA 4.0\n"
    return files


def fake_metadata(files: dict[str, bytes], key: str) -> bytes:
    items = {}
    for name, data in files.items():
        number = sources.ffhq_index(name)
        if number is not None:
            items[str(number)] = {key: {"file_path": name, "file_size": len(data), "file_md5": hashlib.md5(data).hexdigest()}}
    return json.dumps(items).encode()


def trust_metadata(monkeypatch, path: Path) -> None:
    """Make the test's metadata file pass for the published one."""
    monkeypatch.setattr(sources, "FFHQ_METADATA_SIZE", path.stat().st_size)
    monkeypatch.setattr(sources, "FFHQ_METADATA_MD5", hashlib.md5(path.read_bytes()).hexdigest())


def test_ffhq_from_a_local_archive(tmp_path, project):
    archive = make_zip(tmp_path / "thumbnails128x128.zip", ffhq_files("thumbnails128x128", 6))
    raw = project / "data" / "raw"
    summary = acquire(DataParams(source="ffhq", path=str(archive)), raw, base=project)
    assert summary["images"] == 6 and summary["label"] == "face" and summary["sha256"] == sha256(archive)
    assert summary["verified"].startswith("file names only")
    assert "CC BY-NC-SA 4.0" in summary["license"]
    assert "thumbnails128x128/01000/01001.png" in files_under(raw)
    index = prepare_folder(raw, 16, "stretch", workers=1).index
    assert set(index["label"]) == set(index["label_en"]) == {"face"}


def test_ffhq_checked_against_published_metadata(tmp_path, project, monkeypatch):
    files = ffhq_files("thumbnails128x128", 5)
    archive = make_zip(tmp_path / "thumbnails128x128.zip", files)
    metadata = tmp_path / sources.FFHQ_METADATA_NAME
    metadata.write_bytes(fake_metadata(files, "thumbnail"))
    trust_metadata(monkeypatch, metadata)
    summary = acquire(DataParams(source="ffhq", path=str(archive)), project / "data" / "raw", base=project)
    assert summary["verified"].startswith("size and MD5 of every image")

    files["thumbnails128x128/00000/00002.png"] = encode(photo(16, 16, seed=99), "PNG")  # not the published bytes
    make_zip(archive, files)
    with pytest.raises(DataError, match="thumbnails128x128/00000/00002.png: differs from the published FFHQ file"):
        acquire(DataParams(source="ffhq", path=str(archive)), project / "data" / "raw", base=project)


def test_ffhq_refuses_metadata_that_is_not_the_published_file(tmp_path, project):
    files = ffhq_files("thumbnails128x128", 3)
    archive = make_zip(tmp_path / "thumbnails128x128.zip", files)
    (tmp_path / sources.FFHQ_METADATA_NAME).write_bytes(fake_metadata(files, "thumbnail"))
    with pytest.raises(DataError, match="not the published ffhq-dataset-v2.json"):
        acquire(DataParams(source="ffhq", path=str(archive)), project / "data" / "raw", base=project)


def test_ffhq_variant_picks_its_folder(tmp_path, project):
    files = {**ffhq_files("thumbnails128x128", 3), **ffhq_files("images1024x1024", 4, pixels=32)}
    archive = make_zip(tmp_path / "ffhq-dataset.zip", files)
    raw = project / "data" / "raw"
    summary = acquire(DataParams(source="ffhq", path=str(archive), variant="images1024"), raw, base=project)
    assert summary["images"] == 4
    assert all(n.startswith("images1024x1024/") for n in files_under(raw) if n.endswith(".png"))


def test_ffhq_variant_mismatch_is_refused(tmp_path, project):
    archive = make_zip(tmp_path / "thumbnails128x128.zip", ffhq_files("thumbnails128x128", 3))
    with pytest.raises(DataError, match="data.variant: images1024 wants images1024x1024/"):
        acquire(DataParams(source="ffhq", path=str(archive), variant="images1024"), project / "data" / "raw", base=project)


def test_ffhq_refuses_files_that_are_not_ffhq(tmp_path, project):
    archive = make_zip(tmp_path / "faces.zip", {"faces/00001.png": encode(photo(), "PNG"), "faces/selfie.jpg": jpeg()})
    with pytest.raises(DataError, match="faces/selfie.jpg: not an FFHQ file name"):
        acquire(DataParams(source="ffhq", path=str(archive)), project / "data" / "raw", base=project)


def test_ffhq_from_a_mirror_url_records_the_hash(served, project):
    archive = make_zip(served.root / "thumbnails128x128.zip", ffhq_files("thumbnails128x128", 4))
    summary = acquire(DataParams(source="ffhq", url=served.url("thumbnails128x128.zip")), project / "data" / "raw", base=project)
    assert summary["images"] == 4 and summary["sha256"] == sha256(archive) and summary["url"].startswith("http://127.0.0.1")


def test_ffhq_relative_path_is_taken_from_the_project_root(project, monkeypatch, tmp_path):
    folder = project / "downloads" / "thumbnails128x128"
    for name, data in ffhq_files("thumbnails128x128", 3).items():
        (project / "downloads" / name).parent.mkdir(parents=True, exist_ok=True)
        (project / "downloads" / name).write_bytes(data)
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    monkeypatch.chdir(elsewhere)
    params = DataParams(source="ffhq", path="downloads/thumbnails128x128")
    validate(Params(data=params), base=project)
    summary = acquire(params, project / "data" / "raw", base=project)
    assert summary["images"] == 3 and summary["path"] == str(folder)
    assert "00000/00000.png" in files_under(project / "data" / "raw")


# -------------------------------------------------------------------------- animals10

ANIMALS = {f"raw-img/{c}/OIP-{c}{i}.jpeg": jpeg(seed=k * 10 + i) for k, c in enumerate(sources.ANIMALS10_CLASSES) for i in range(2)}
ANIMALS["translate.py"] = b'translate = {"cane": "dog"}\n'


def check_animals(raw: Path) -> None:
    index = prepare_folder(raw, 16, "stretch", workers=1).index
    pairs = set(zip(index["label"], index["label_en"], strict=True))
    assert pairs == set(sources.ANIMALS10_CLASSES.items())
    assert ("cane", "dog") in pairs and ("scoiattolo", "squirrel") in pairs


def test_animals10_from_a_local_zip(tmp_path, project):
    archive = make_zip(tmp_path / "animals10.zip", ANIMALS)
    raw = project / "data" / "raw"
    summary = acquire(DataParams(source="animals10", path=str(archive)), raw, base=project)
    assert summary["images"] == 20 and source_json(raw)["label_en"]["gatto"] == "cat"
    assert "translate.py" not in files_under(raw)
    check_animals(raw)


def test_animals10_from_a_local_folder(tmp_path, project):
    folder = tmp_path / "animals10"
    for name, data in ANIMALS.items():
        (folder / name).parent.mkdir(parents=True, exist_ok=True)
        (folder / name).write_bytes(data)
    raw = project / "data" / "raw"
    assert acquire(DataParams(source="animals10", path=str(folder), limit=10), raw, base=project)["images"] == 10
    assert len([n for n in files_under(raw) if n.endswith(".jpeg")]) == 10


def test_animals10_refuses_unknown_class_folders(tmp_path, project):
    archive = make_zip(tmp_path / "animals10.zip", {**ANIMALS, "raw-img/unicorno/1.jpeg": jpeg()})
    with pytest.raises(DataError, match="raw-img/unicorno/1.jpeg: not in an Animals-10 class folder"):
        acquire(DataParams(source="animals10", path=str(archive)), project / "data" / "raw", base=project)


def fake_kaggle(monkeypatch, archive: Path, calls: list) -> None:
    class KaggleApi:
        def authenticate(self):
            calls.append("authenticate")

        def dataset_download_files(self, dataset, path=None, force=False, quiet=True, unzip=False):
            calls.append((dataset, unzip))
            Path(path, "animals10.zip").write_bytes(archive.read_bytes())

    module = types.ModuleType("kaggle.api.kaggle_api_extended")
    module.KaggleApi = KaggleApi
    monkeypatch.setitem(sys.modules, "kaggle", types.ModuleType("kaggle"))
    monkeypatch.setitem(sys.modules, "kaggle.api", types.ModuleType("kaggle.api"))
    monkeypatch.setitem(sys.modules, "kaggle.api.kaggle_api_extended", module)


def test_animals10_from_kaggle_is_extracted_safely(tmp_path, project, cache, monkeypatch):
    calls: list = []
    fake_kaggle(monkeypatch, make_zip(tmp_path / "animals10.zip", ANIMALS), calls)
    raw = project / "data" / "raw"
    summary = acquire(DataParams(source="animals10"), raw, base=project)
    assert calls == ["authenticate", ("alessiocorrado99/animals10", False)]  # we unzip, not kaggle
    assert summary["kaggle"] == "alessiocorrado99/animals10" and summary["images"] == 20
    assert (cache / "kaggle" / "alessiocorrado99-animals10" / "animals10.zip").is_file()
    check_animals(raw)


def test_animals10_from_kaggle_refuses_a_zip_slip(tmp_path, project, monkeypatch):
    fake_kaggle(monkeypatch, make_zip(tmp_path / "animals10.zip", {**ANIMALS, "../../x.jpeg": jpeg()}), [])
    with pytest.raises(DataError, match="'../../x.jpeg': '..' in its path"):
        acquire(DataParams(source="animals10"), project / "data" / "raw", base=project)
    assert files_under(project / "data") == []


def test_animals10_without_the_kaggle_package(project, monkeypatch):
    monkeypatch.setitem(sys.modules, "kaggle", None)  # import kaggle -> ImportError
    with pytest.raises(DataError, match=r"pip install 'vaeinpaint\[kaggle\]'.*data.path"):
        acquire(DataParams(source="animals10"), project / "data" / "raw", base=project)


def test_animals10_without_kaggle_credentials(project, monkeypatch):
    class KaggleApi:
        def authenticate(self):
            raise OSError("Could not find kaggle.json")

    module = types.ModuleType("kaggle.api.kaggle_api_extended")
    module.KaggleApi = KaggleApi
    monkeypatch.setitem(sys.modules, "kaggle", types.ModuleType("kaggle"))
    monkeypatch.setitem(sys.modules, "kaggle.api", types.ModuleType("kaggle.api"))
    monkeypatch.setitem(sys.modules, "kaggle.api.kaggle_api_extended", module)
    with pytest.raises(DataError, match="Kaggle credentials missing or invalid .*kaggle.json"):
        acquire(DataParams(source="animals10"), project / "data" / "raw", base=project)


# ----------------------------------------------------------------------- folder, params


def test_folder_limit_spreads_over_class_folders(tmp_path, project):
    folder = tmp_path / "mine"
    for c in ("a", "b", "c", "d"):
        for i in range(25):
            (folder / c).mkdir(parents=True, exist_ok=True)
            (folder / c / f"{i:02d}.png").write_bytes(b"x")
    raw = project / "data" / "raw"
    acquire(DataParams(source="folder", path=str(folder), limit=12), raw, base=project)
    kept = [n for n in files_under(raw) if n.endswith(".png")]
    assert len(kept) == 12 and {n[0] for n in kept} == {"a", "b", "c", "d"}


@pytest.mark.parametrize(
    ("data", "message"),
    [
        ({"source": "ffhq"}, "data.path: the ffhq source needs a local copy"),
        ({"source": "url", "url": "ftp://host/a.zip", "sha256": "a" * 64}, "data.url: expected an http://, https:// or file:/// URL"),
        ({"source": "url", "url": "/data/a.zip", "sha256": "a" * 64}, "data.url: expected an http://"),
        (
            {"source": "url", "url": "file:///no/such/archive.zip", "sha256": "a" * 64},
            "data.url: file:///no/such/archive.zip does not exist",
        ),
        ({"source": "url", "url": "https://host/a.zip"}, "data.sha256: required"),
        ({"source": "ffhq", "url": "https://host/a.zip", "sha256": "xyz"}, "data.sha256: expected 64 hex digits"),
    ],
)
def test_data_params_are_checked(data, message):
    with pytest.raises(ParamError, match=message):
        from_dict({"data": data}, check_paths=True)


@pytest.mark.parametrize(
    "data",
    [
        {"source": "ffhq", "url": "https://mirror.example/thumbnails128x128.zip"},  # a mirror instead of data.path
        {"source": "ffhq", "url": "https://mirror.example/images1024x1024.zip", "variant": "images1024"},
        {"source": "animals10"},  # Kaggle credentials are looked for when downloading, not here
        {"source": "url", "url": "ARCHIVE", "sha256": "a" * 64},
    ],
)
def test_valid_source_params_pass_validate_and_reach_the_stage_unchanged(tmp_path, data):
    from typer.testing import CliRunner

    from vaeinpaint.cli import app
    from vaeinpaint.params import load_params

    if data.get("url") == "ARCHIVE":
        data = {**data, "url": make_zip(tmp_path / "a.zip", {"a.jpg": jpeg()}).as_uri()}
    path = tmp_path / "params.yaml"
    path.write_text(json.dumps({"data": data}))  # JSON is YAML
    params = load_params(path, base=tmp_path)
    assert {key: getattr(params.data, key) for key in data} == data
    out = CliRunner().invoke(app, ["validate", "--params", str(path)])
    assert out.exit_code == 0, out.output
    assert all(f"data.{key}: {value}" in out.output.splitlines() for key, value in data.items())
