"""`vaeinpaint serve`'s HTTP API: the fixed contract, bad input as 4xx (and the server goes on
serving), the token, the limits, uploads kept in memory."""

from __future__ import annotations

import io
import tempfile
import zipfile
from pathlib import Path

import numpy as np
import pytest
from fastapi.testclient import TestClient
from PIL import Image
from typer.testing import CliRunner

from vaeinpaint.apps.server import ServerSettings, create_app
from vaeinpaint.cli import app as cli

SIZE = (150, 100)  # width, height


def png(pixels: np.ndarray, **options) -> bytes:
    buffer = io.BytesIO()
    Image.fromarray(pixels).save(buffer, "PNG", **options)
    return buffer.getvalue()


def noise_rgb(size=SIZE, seed=0) -> np.ndarray:
    return np.random.default_rng(seed).integers(0, 256, (size[1], size[0], 3), dtype=np.uint8)


def box_hole(size=SIZE) -> np.ndarray:
    hole = np.zeros((size[1], size[0]), bool)
    hole[30:60, 40:90] = True
    return hole


PHOTO, HOLE = noise_rgb(), box_hole()
GOOD = {"image": ("photo.png", png(PHOTO)), "mask": ("mask.png", png(np.where(HOLE, 255, 0).astype(np.uint8)))}


@pytest.fixture(scope="module")
def client(tiny_checkpoint):
    return TestClient(create_app(ServerSettings(model=str(tiny_checkpoint), device="cpu")))


def decoded(content: bytes) -> np.ndarray:
    with Image.open(io.BytesIO(content)) as image:
        return np.asarray(image)


def assert_only_hole_changed(after: np.ndarray, before: np.ndarray = PHOTO, hole: np.ndarray = HOLE) -> None:
    assert after.shape == before.shape
    assert np.array_equal(after[~hole], before[~hole])
    assert (after[hole] != before[hole]).any(-1).mean() > 0.9


@pytest.mark.parametrize("strategy", ["resize", "crop", "original"])
def test_inpaint_answers_a_png_with_only_the_hole_changed(client, strategy):
    answer = client.post("/api/inpaint", files=GOOD, data={"strategy": strategy})
    assert answer.status_code == 200, answer.text
    assert answer.headers["content-type"] == "image/png"
    assert_only_hole_changed(decoded(answer.content))


def test_samples_answer_a_zip_of_different_completions_and_seed_repeats(client):
    answer = client.post("/api/inpaint", files=GOOD, data={"samples": "3", "seed": "5"})
    assert answer.status_code == 200 and answer.headers["content-type"] == "application/zip"
    with zipfile.ZipFile(io.BytesIO(answer.content)) as archive:
        assert archive.namelist() == ["sample_1.png", "sample_2.png", "sample_3.png"]
        assert all(info.compress_type == zipfile.ZIP_STORED for info in archive.infolist())  # the page reads stored zips
        drawn = [decoded(archive.read(name)) for name in archive.namelist()]
    for after in drawn:
        assert_only_hole_changed(after)
    assert (drawn[0][HOLE] != drawn[1][HOLE]).any(-1).mean() > 0.5
    again = client.post("/api/inpaint", files=GOOD, data={"samples": "3", "seed": "5"})
    assert again.content == answer.content


@pytest.mark.parametrize("method", ["biharmonic", "telea"])
def test_baselines_fill_the_same_hole_in_colour(client, method):
    smooth = np.zeros((SIZE[1], SIZE[0], 3), np.uint8)
    smooth[...] = (200, 40, 30)  # red all over, a green patch where the hole is
    smooth[HOLE] = (30, 200, 40)
    files = {**GOOD, "image": ("photo.png", png(smooth))}
    answer = client.post("/api/baseline", files=files, data={"method": method})
    assert answer.status_code == 200, answer.text
    after = decoded(answer.content)
    assert np.array_equal(after[~HOLE], smooth[~HOLE])
    assert np.abs(after[HOLE].astype(int) - (200, 40, 30)).max() <= 6  # continued from the red around it


def test_health_models_and_page(client):
    assert client.get("/api/health").json()["status"] == "ok"
    listed = client.get("/api/models").json()
    assert [m["id"] for m in listed["models"]] == ["given", "pipeline"]
    assert not any("/" in m["id"] for m in listed["models"])  # ids, never paths
    assert listed["strategies"] == ["resize", "crop", "original"]
    page = client.get("/")
    assert page.status_code == 200 and 'src="/static/app.js"' in page.text
    assert "http" not in page.text.replace("http-equiv", "")  # nothing from another host
    assert client.get("/static/app.js").status_code == 200


def bomb() -> bytes:
    """A 12000 x 12000 PNG (144 megapixels, over PIL's own bomb limit too) of a few hundred KB."""
    return png(np.zeros((12000, 12000), np.uint8), optimize=False)


# name -> (files/fields to change, expected status, words of the detail)
BAD = {
    "not an image": ({"image": ("photo.png", b"GIF89a but not really")}, 400, "image: not an image"),
    "text file": ({"image": ("photo.png", b"hello")}, 400, "image: not an image"),
    "truncated png": ({"image": ("photo.png", png(PHOTO)[:200])}, 400, "image: cannot be read"),
    "mask of another size": ({"mask": ("mask.png", png(np.full((40, 50), 255, np.uint8)))}, 400, "mask: it is 50x40, the photo is 150x100"),
    "empty mask": ({"mask": ("mask.png", png(np.zeros((100, 150), np.uint8)))}, 400, "mask: no white (missing) pixels"),
    "mask not an image": ({"mask": ("mask.png", b"nope")}, 400, "mask: cannot be read as an image"),
    "no mask": ({"mask": None}, 422, "mask: Field required"),
    "samples not a number": ({"samples": "many"}, 422, "samples: Input should be a valid integer"),
    "samples zero": ({"samples": "0"}, 400, "samples: must be from 1 to 16, got 0"),
    "samples too many": ({"samples": "1000"}, 400, "samples: must be from 1 to 16, got 1000"),
    "seed negative": ({"seed": "-1"}, 400, "seed: must be from 0"),
    "unknown strategy": ({"strategy": "magic"}, 400, "strategy: must be one of resize, crop, original"),
    "model as a path": ({"model": "/etc/passwd"}, 400, "model: unknown id '/etc/passwd'"),
}


@pytest.mark.parametrize("case", list(BAD))
def test_bad_input_is_a_4xx_with_one_line_and_the_server_goes_on(client, case):
    change, status, words = BAD[case]
    files = {key: value for key, value in {**GOOD, **{k: v for k, v in change.items() if k in GOOD}}.items() if value is not None}
    fields = {k: v for k, v in change.items() if k not in GOOD}
    answer = client.post("/api/inpaint", files=files, data=fields)
    assert answer.status_code == status
    detail = answer.json()["detail"]
    assert words in detail and "\n" not in detail
    assert client.post("/api/inpaint", files=GOOD).status_code == 200


@pytest.mark.filterwarnings("ignore::PIL.Image.DecompressionBombWarning")  # PIL warns on opening; we refuse before decoding
def test_decompression_bomb_and_pixel_limit_are_413(tiny_checkpoint):
    client = TestClient(create_app(ServerSettings(model=str(tiny_checkpoint), device="cpu", max_pixels=10_000)))
    data = bomb()
    assert len(data) < 1_000_000
    answer = client.post("/api/inpaint", files={**GOOD, "image": ("bomb.png", data)})
    assert answer.status_code == 413
    assert "12000x12000 is 144 megapixels, over the limit of 0.01" in answer.json()["detail"]
    answer = client.post("/api/inpaint", files=GOOD)  # 150 x 100 = 15,000 px, over 10,000
    assert answer.status_code == 413 and "15000" not in answer.json()["detail"] and "150x100" in answer.json()["detail"]
    assert client.post("/api/baseline", files=GOOD, data={"method": "telea"}).status_code == 413


def test_request_size_limit(tiny_checkpoint):
    client = TestClient(create_app(ServerSettings(model=str(tiny_checkpoint), device="cpu", max_request_bytes=20_000)))
    answer = client.post("/api/inpaint", files={**GOOD, "image": ("photo.png", png(noise_rgb((200, 200))))})
    assert answer.status_code == 413
    assert "over the limit of 0.02 MB" in answer.json()["detail"]

    def chunks():  # no Content-Length: the body is counted as it arrives
        yield b"x" * 15_000
        yield b"x" * 15_000

    answer = client.post("/api/inpaint", content=chunks(), headers={"content-type": "multipart/form-data; boundary=b"})
    assert answer.status_code == 413


def test_missing_model_is_503_and_the_rest_works(tmp_path):
    client = TestClient(create_app(ServerSettings(model=str(tmp_path / "nope.pt"), device="cpu")))
    health = client.get("/api/health")
    assert health.status_code == 503 and "nope.pt not found" in health.json()["detail"]
    answer = client.post("/api/inpaint", files=GOOD)
    assert answer.status_code == 503 and "nope.pt not found" in answer.json()["detail"]
    assert client.post("/api/baseline", files=GOOD, data={"method": "biharmonic"}).status_code == 200


def test_token_on_every_request(tiny_checkpoint):
    client = TestClient(create_app(ServerSettings(model=str(tiny_checkpoint), device="cpu", token="s3cret")))
    for path in ("/", "/static/app.js", "/api/health", "/api/models"):
        assert client.get(path).status_code == 401, path
    assert client.post("/api/inpaint", files=GOOD).status_code == 401
    assert client.get("/api/health", headers={"Authorization": "Bearer wrong"}).status_code == 401
    assert client.get("/?token=wrong", follow_redirects=False).status_code == 401
    bearer = {"Authorization": "Bearer s3cret"}
    assert client.get("/api/health", headers=bearer).status_code == 200
    assert client.post("/api/inpaint", files=GOOD, headers=bearer).status_code == 200

    opened = client.get("/?token=s3cret", follow_redirects=False)  # the page's address, once
    assert opened.status_code == 303 and opened.headers["location"] == "/"
    assert "httponly" in opened.headers["set-cookie"].lower()
    assert client.get("/static/app.js").status_code == 200  # the cookie from now on
    assert client.post("/api/inpaint", files=GOOD).status_code == 200


def test_only_loopback_host_names_when_bound_to_loopback(tiny_checkpoint):
    """A site that rebinds its DNS name to 127.0.0.1 gets nothing: its Host header is refused."""
    settings = ServerSettings(model=str(tiny_checkpoint), device="cpu", allowed_hosts=("127.0.0.1", "localhost"))
    client = TestClient(create_app(settings), base_url="http://127.0.0.1")
    assert client.get("/api/health").status_code == 200
    assert client.get("/api/health", headers={"host": "evil.example:7860"}).status_code == 400


def test_uploads_never_reach_the_file_system(client, monkeypatch):
    """A 1.5 MB upload (over Starlette's default 1 MB spool) is parsed without any temporary file."""

    def no_files(*args, **kwargs):
        raise AssertionError("an upload was written to a temporary file")

    for name in ("TemporaryFile", "NamedTemporaryFile", "mkstemp"):
        monkeypatch.setattr(tempfile, name, no_files)
    big = noise_rgb((800, 650))
    hole = np.zeros((650, 800), bool)
    hole[100:200, 300:400] = True
    files = {"image": ("big.png", png(big)), "mask": ("mask.png", png(np.where(hole, 255, 0).astype(np.uint8)))}
    assert len(files["image"][1]) > 1_500_000
    answer = client.post("/api/inpaint", files=files, data={"strategy": "crop"})
    assert answer.status_code == 200, answer.text
    assert_only_hole_changed(decoded(answer.content), big, hole)


@pytest.mark.parametrize(
    ("host", "warned"),
    [("127.0.0.1", False), ("localhost", False), ("::1", False), ("0.0.0.0", True), ("192.168.1.5", True)],
)
def test_serve_warns_when_reachable_from_other_machines(monkeypatch, tiny_checkpoint, host, warned):
    import uvicorn

    seen = {}
    monkeypatch.setattr(uvicorn.Server, "run", lambda self: seen.setdefault("config", self.config))
    result = CliRunner().invoke(cli, ["serve", "--host", host, "--port", "7999", "--model", str(tiny_checkpoint), "--device", "cpu"])
    assert result.exit_code == 0, result.output
    assert ("warning: listening on" in result.output) == warned
    assert "(set --token)" in result.output if warned else True
    assert (seen["config"].host, seen["config"].port) == (host, 7999)


def test_static_files_are_package_data():
    """The page is served from the installed package: every file of it must be package data."""
    import fnmatch

    from vaeinpaint.apps.server import STATIC_DIR

    tomllib = pytest.importorskip("tomllib")  # Python 3.11+
    project = tomllib.loads((Path(__file__).resolve().parents[1] / "pyproject.toml").read_text())
    patterns = project["tool"]["setuptools"]["package-data"]["vaeinpaint.apps"]
    files = [p.relative_to(STATIC_DIR.parent).as_posix() for p in STATIC_DIR.rglob("*") if p.is_file()]
    assert {"static/index.html", "static/app.js", "static/style.css"} <= set(files)
    assert all(any(fnmatch.fnmatch(name, pattern) for pattern in patterns) for name in files)


def test_model_picker_offers_ids_for_the_given_and_the_pipelines_model(tmp_path, project_dir, tiny_checkpoint):
    from vaeinpaint.apps.models import available_models

    pipeline = project_dir / "data/model/checkpoint.pt"
    assert [(c.id, c.spec) for c in available_models()] == [("pipeline", str(pipeline))]
    assert [(c.id, c.spec) for c in available_models(str(tiny_checkpoint))] == [
        ("given", str(tiny_checkpoint)),
        ("pipeline", str(pipeline)),
    ]
    assert [c.id for c in available_models(str(pipeline))] == ["given"]  # the same file once
