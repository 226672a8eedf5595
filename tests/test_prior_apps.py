"""Where a user sees samples (`vaeinpaint inpaint --samples K`, the page's API, the MLflow pyfunc
model), a checkpoint with a learned prior draws from it: its completions depend on the visible
pixels only, repeat with the seed, and say where they came from."""

from __future__ import annotations

import io
import zipfile

import numpy as np
import pandas as pd
import pytest
from fastapi.testclient import TestClient
from PIL import Image
from typer.testing import CliRunner

from vaeinpaint.apps.server import ServerSettings, create_app
from vaeinpaint.cli import app
from vaeinpaint.inference.loading import load_model_file

from conftest import save_tiny_checkpoint

SIZE = 48
HOLE = (slice(10, 30), slice(12, 36))


@pytest.fixture(scope="module")
def learned(tmp_path_factory):
    return save_tiny_checkpoint(tmp_path_factory.mktemp("learned") / "checkpoint.pt", prior="learned")


def photos(tmp_path) -> tuple:
    """Two photos alike but for what is under the hole, and the hole's mask."""
    rng = np.random.default_rng(0)
    a = rng.integers(0, 256, (SIZE, SIZE), dtype=np.uint8)
    b = a.copy()
    b[HOLE] = 255 - b[HOLE]
    mask = np.zeros((SIZE, SIZE), np.uint8)
    mask[HOLE] = 255
    for name, pixels in (("a.png", a), ("b.png", b), ("mask.png", mask)):
        Image.fromarray(pixels).save(tmp_path / name)
    return a, b, mask > 0


def png(path) -> bytes:
    return path.read_bytes()


def test_the_command_draws_from_the_prior_which_never_sees_the_hole(tmp_path, learned):
    a, _, hole = photos(tmp_path)
    args = ["--mask", tmp_path / "mask.png", "--samples", "3", "--seed", "4", "--strategy", "original", "--checkpoint", learned]
    for name in ("a", "b"):
        result = CliRunner().invoke(
            app, ["inpaint", str(tmp_path / f"{name}.png"), "-o", str(tmp_path / f"{name}_out.png"), *map(str, args)]
        )
        assert result.exit_code == 0, result.output
    for k in (1, 2, 3):  # the same draws whatever was under the hole
        assert png(tmp_path / f"a_out_{k}.png") == png(tmp_path / f"b_out_{k}.png")
    drawn = [np.asarray(Image.open(tmp_path / f"a_out_{k}.png")) for k in (1, 2, 3)]
    assert all(np.array_equal(d[~hole], a[~hole]) for d in drawn)
    assert (drawn[0][hole] != drawn[1][hole]).mean() > 0.5  # draws differ
    assert load_model_file(learned).prior == "learned"


def test_the_api_says_where_the_draws_came_from(tmp_path, learned, tiny_checkpoint):
    photos(tmp_path)
    files = {"image": ("a.png", png(tmp_path / "a.png")), "mask": ("mask.png", png(tmp_path / "mask.png"))}
    for checkpoint, prior in ((learned, "learned"), (tiny_checkpoint, "standard")):
        client = TestClient(create_app(ServerSettings(model=str(checkpoint), device="cpu")))
        assert client.get("/api/health").json()["prior"] == prior
        answer = client.post("/api/inpaint", files=files, data={"samples": "2", "seed": "1"})
        assert answer.status_code == 200 and answer.headers["x-vaeinpaint-prior"] == prior
        with zipfile.ZipFile(io.BytesIO(answer.content)) as archive:
            assert archive.namelist() == ["sample_1.png", "sample_2.png"]
        one = client.post("/api/inpaint", files=files)
        assert one.headers["content-type"] == "image/png" and one.headers["x-vaeinpaint-prior"] == prior


def test_the_pyfunc_model_draws_from_the_prior(tmp_path, learned):
    from vaeinpaint.tracking.pyfunc import InpaintModel

    photos(tmp_path)
    model = InpaintModel()
    model.model = load_model_file(learned)
    rows = pd.DataFrame({"image": [png(tmp_path / "a.png"), png(tmp_path / "b.png")], "mask": [png(tmp_path / "mask.png")] * 2})
    drawn = model.predict(None, rows, {"sample": True, "seed": 3, "strategy": "original"})["image"]
    assert drawn[0] == drawn[1]  # the hole's content changes nothing
    assert drawn[0] == model.predict(None, rows[:1], {"sample": True, "seed": 3, "strategy": "original"})["image"][0]
    mean = model.predict(None, rows[:1], {"strategy": "original"})["image"][0]
    assert mean != drawn[0] and mean == model.predict(None, rows[:1], {"strategy": "original"})["image"][0]
    # `vaeinpaint inpaint --samples K --seed 3` writes the same draw as its first file.
    result = CliRunner().invoke(
        app,
        ["inpaint", str(tmp_path / "a.png"), "-o", str(tmp_path / "out.png"), "--mask", str(tmp_path / "mask.png")]
        + ["--samples", "2", "--seed", "3", "--strategy", "original", "--checkpoint", str(learned)],
    )
    assert result.exit_code == 0, result.output
    assert np.array_equal(np.asarray(Image.open(io.BytesIO(drawn[0]))), np.asarray(Image.open(tmp_path / "out_1.png")))
