"""`vaeinpaint inpaint`: a photo of any size and mode in, only its hole changed, one-line errors."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch
import torch.nn as nn
from PIL import Image, ImageOps
from typer.testing import CliRunner

from vaeinpaint.apps.inpaint import inpaint
from vaeinpaint.cli import app
from vaeinpaint.inference.engine import model_mask
from vaeinpaint.inference.holes import random_hole
from vaeinpaint.modeling.checkpoint import model_config, save_checkpoint
from vaeinpaint.modeling.model import build_model
from vaeinpaint.params import ModelParams

from conftest import run_env

SIZE = (173, 121)  # neither square nor the model's size
BOX = (30, 20, 50, 40)  # x, y, w, h
CHANNELS = {"L": 1, "LA": 2, "RGB": 3, "RGBA": 4}


@pytest.fixture(scope="module")
def checkpoint(tmp_path_factory) -> Path:
    """An untrained tiny model at 32 px. PyTorch's default init shrinks the signal at every
    layer, so such a model outputs ~0.5 everywhere whatever its latent; He init keeps the
    signal, so that (as with a trained model) the latent matters and samples differ."""
    torch.manual_seed(0)
    params = ModelParams(width=8, latent_channels=4)
    model = build_model(params)
    for module in model.modules():
        if isinstance(module, (nn.Conv2d, nn.ConvTranspose2d)):
            nn.init.kaiming_normal_(module.weight, a=0.2, nonlinearity="leaky_relu")
    path = tmp_path_factory.mktemp("model") / "checkpoint.pt"
    save_checkpoint(path, {"model": model.state_dict(), "config": model_config(params, 32)})
    return path


def noise(mode: str, size: tuple[int, int] = SIZE, seed: int = 0) -> Image.Image:
    """Random pixels (alpha included): a smooth fill changes nearly every hole pixel."""
    rng = np.random.default_rng(seed)
    width, height = size
    if mode == "I;16":
        return Image.fromarray(rng.integers(0, 65536, (height, width), dtype=np.uint16))
    pixels = rng.integers(0, 256, (height, width, CHANNELS[mode]), dtype=np.uint8)
    return Image.fromarray(pixels[..., 0] if mode == "L" else pixels)


def box_hole(size: tuple[int, int] = SIZE, box: tuple[int, int, int, int] = BOX) -> np.ndarray:
    x, y, w, h = box
    hole = np.zeros(size[::-1], dtype=bool)
    hole[y : y + h, x : x + w] = True
    return hole


def pixels(path: Path) -> np.ndarray:
    with Image.open(path) as image:
        return np.asarray(image)


def assert_only_hole_changed(before: np.ndarray, after: np.ndarray, hole: np.ndarray, colour: slice = slice(None)) -> None:
    """Outside the hole: identical. Inside: `colour` channels changed in nearly every pixel."""
    assert after.shape == before.shape and after.dtype == before.dtype
    assert np.array_equal(after[~hole], before[~hole])
    if before.ndim == 2:  # one channel
        before, after = before[..., None], after[..., None]
    changed = after[..., colour] != before[..., colour]
    changed = changed.reshape(*hole.shape, -1).any(-1)
    assert changed[hole].mean() > 0.9


def invoke(*args: str | Path):
    return CliRunner().invoke(app, ["inpaint", *map(str, args)])


def files_in(folder: Path) -> list[str]:
    return sorted(p.name for p in folder.iterdir())  # dot-files too: a leftover temp file shows


@pytest.mark.parametrize("mode", ["L", "LA", "RGB", "RGBA", "I;16"])
def test_box_changes_only_the_hole(tmp_path, checkpoint, mode):
    photo = noise(mode)
    photo.save(tmp_path / "photo.png")
    out = tmp_path / "out.png"
    result = invoke(tmp_path / "photo.png", "-o", out, "--box", ",".join(map(str, BOX)), "--checkpoint", checkpoint)
    assert result.exit_code == 0, result.output
    assert result.stdout == f"wrote {out}\n"
    with Image.open(out) as image:
        assert (image.mode, image.size) == (mode, SIZE)
    before, after = np.asarray(photo), pixels(out)
    colour = slice(0, 1) if mode == "LA" else slice(0, 3)  # the alpha channel is never touched
    assert_only_hole_changed(before, after, box_hole(), colour)
    if mode in ("LA", "RGBA"):
        assert np.array_equal(after[..., -1], before[..., -1])


def test_colour_hole_gets_colour_from_its_surroundings(tmp_path, checkpoint):
    """A red photo with a green square: the filled hole is reddish (Telea chroma), not gray."""
    photo = np.zeros((SIZE[1], SIZE[0], 3), np.uint8)
    photo[...] = (200, 30, 30)
    photo[20:60, 30:80] = (30, 200, 30)
    Image.fromarray(photo).save(tmp_path / "photo.png")
    inpaint(tmp_path / "photo.png", tmp_path / "out.png", checkpoint, box=",".join(map(str, BOX)))
    filled = pixels(tmp_path / "out.png")[box_hole()].astype(int)
    assert (filled[:, 0] > filled[:, 1] + 20).all()


def test_palette_and_exif_rotated_inputs(tmp_path, checkpoint):
    """Palette becomes RGB with the same colours; a JPEG is turned upright as its EXIF says."""
    palette = noise("RGB").quantize(64)
    palette.save(tmp_path / "palette.png")
    inpaint(tmp_path / "palette.png", tmp_path / "palette_out.png", checkpoint, box="30,20,50,40")
    assert_only_hole_changed(np.asarray(palette.convert("RGB")), pixels(tmp_path / "palette_out.png"), box_hole())

    exif = Image.Exif()
    exif[0x0112] = 6  # orientation: shown turned by 90 degrees
    noise("RGB").save(tmp_path / "turned.jpg", exif=exif, quality=95)
    inpaint(tmp_path / "turned.jpg", tmp_path / "turned_out.png", checkpoint, box="20,30,40,50")
    with Image.open(tmp_path / "turned.jpg") as image:
        upright = np.asarray(ImageOps.exif_transpose(image))
    assert upright.shape[:2] == SIZE  # (height, width) of the upright photo = (173, 121)
    assert_only_hole_changed(upright, pixels(tmp_path / "turned_out.png"), box_hole(SIZE[::-1], (20, 30, 40, 50)))


def test_icc_profile_is_kept(tmp_path, checkpoint):
    """Colour-managed viewers must show the output's untouched pixels as they showed the photo's."""
    from PIL import ImageCms

    icc = ImageCms.ImageCmsProfile(ImageCms.createProfile("sRGB")).tobytes()
    noise("RGB").save(tmp_path / "photo.png", icc_profile=icc)
    inpaint(tmp_path / "photo.png", tmp_path / "out.tif", checkpoint, box="30,20,50,40")
    with Image.open(tmp_path / "out.tif") as image:
        assert image.info.get("icc_profile") == icc


def test_mask_file(tmp_path, checkpoint):
    """White (>= 128) is missing, darker is kept; on a transparent layer, transparent is kept."""
    noise("L").save(tmp_path / "photo.png")
    hole = np.zeros(SIZE[::-1], dtype=bool)
    hole[10:30, 100:160] = hole[70:110, 5:25] = True
    gray = np.where(hole, 200, 100).astype(np.uint8)
    Image.fromarray(np.stack([gray] * 3, -1)).save(tmp_path / "mask.png")
    result = invoke(tmp_path / "photo.png", "-o", tmp_path / "out.png", "--mask", tmp_path / "mask.png", "--checkpoint", checkpoint)
    assert result.exit_code == 0, result.output
    assert_only_hole_changed(np.asarray(noise("L")), pixels(tmp_path / "out.png"), hole)

    layer = np.zeros((*hole.shape, 4), np.uint8)
    layer[hole] = 255
    Image.fromarray(layer).save(tmp_path / "layer.png")
    inpaint(tmp_path / "photo.png", tmp_path / "layer_out.png", checkpoint, mask=tmp_path / "layer.png")
    assert np.array_equal(pixels(tmp_path / "layer_out.png"), pixels(tmp_path / "out.png"))


def test_random_squares_and_saved_mask(tmp_path, checkpoint):
    noise("RGB").save(tmp_path / "photo.png")
    args = ["--random", "0.05", "--count", "3", "--seed", "7", "--checkpoint", checkpoint]
    result = invoke(tmp_path / "photo.png", "-o", tmp_path / "out.webp", "--save-mask", tmp_path / "mask.png", *args)
    assert result.exit_code == 0, result.output
    assert result.stdout.splitlines() == [f"wrote {tmp_path / 'out.webp'}", f"wrote {tmp_path / 'mask.png'}"]
    hole = pixels(tmp_path / "mask.png") == 255
    side = round((0.05 * SIZE[0] * SIZE[1]) ** 0.5)  # 32 px
    assert hole.sum() == 3 * side * side  # three squares, none covering another
    assert_only_hole_changed(np.asarray(noise("RGB")), pixels(tmp_path / "out.webp"), hole)

    assert np.array_equal(random_hole(SIZE, "square", 0.05, 3, seed=7), hole)  # what the command drew
    assert not np.array_equal(random_hole(SIZE, "square", 0.05, 3, seed=8), hole)


@pytest.mark.parametrize("shape", ["rectangle", "strokes", "mixed"])
def test_random_shapes_on_a_photo_that_is_not_square(tmp_path, checkpoint, shape):
    """--shape draws with the pipeline's generator on the photo's own W x H canvas: the hole
    covers about --random of it, and the same seed gives the same hole."""
    noise("L").save(tmp_path / "photo.png")
    args = ["--random", "0.15", "--shape", shape, "--seed", "4", "--checkpoint", checkpoint, "--save-mask", tmp_path / "mask.png"]
    result = invoke(tmp_path / "photo.png", "-o", tmp_path / "out.png", *args)
    assert result.exit_code == 0, result.output
    hole = pixels(tmp_path / "mask.png") == 255
    assert hole.shape == SIZE[::-1]
    assert abs(hole.mean() - 0.15) < 0.02
    assert np.array_equal(random_hole(SIZE, shape, 0.15, 1, seed=4), hole)
    assert_only_hole_changed(np.asarray(noise("L")), pixels(tmp_path / "out.png"), hole)


def test_samples_differ_and_one_is_deterministic(tmp_path, checkpoint):
    noise("L").save(tmp_path / "photo.png")
    args = ["--box", "30,20,50,40", "--samples", "3", "--checkpoint", checkpoint]
    result = invoke(tmp_path / "photo.png", "-o", tmp_path / "out.png", *args)
    assert result.exit_code == 0, result.output
    names = ["out_1.png", "out_2.png", "out_3.png"]
    assert result.stdout.splitlines() == [f"wrote {tmp_path / name}" for name in names]
    assert not (tmp_path / "out.png").exists()
    hole, before = box_hole(), np.asarray(noise("L"))
    drawn = [pixels(tmp_path / name) for name in names]
    for after in drawn:
        assert_only_hole_changed(before, after, hole)
    for a, b in ((0, 1), (0, 2), (1, 2)):
        assert (drawn[a][hole] != drawn[b][hole]).mean() > 0.5

    for name in ("mean_a.png", "mean_b.png"):
        inpaint(tmp_path / "photo.png", tmp_path / name, checkpoint, box="30,20,50,40")
    assert (tmp_path / "mean_a.png").read_bytes() == (tmp_path / "mean_b.png").read_bytes()


@pytest.mark.parametrize("size", [SIZE, (20, 15)], ids=["shrunk", "enlarged"])
def test_model_mask_marks_every_partly_missing_pixel(size):
    """Against a direct computation: model pixel j spans [j n / s, (j + 1) n / s) of the
    photo, and is missing iff some hole pixel [c, c + 1) overlaps it."""
    rng = np.random.default_rng(1)
    hole = rng.random(size[::-1]) < 0.01
    s = 32

    def overlaps(n: int) -> np.ndarray:  # [s, n]: does model pixel j overlap photo pixel c?
        j, c = np.arange(s)[:, None], np.arange(n)[None, :]
        return (c < (j + 1) * n / s) & (c + 1 > j * n / s)

    rows, cols = overlaps(size[1]).astype(int), overlaps(size[0]).astype(int)
    expected = (rows @ hole.astype(int) @ cols.T) > 0
    assert np.array_equal(model_mask(hole, s), expected)


# name -> (photo mode, arguments, what the error says). Run in the test's folder after
# `-o out.png --save-mask mask.png --checkpoint <tiny model>`: an option given again wins.
ERRORS = {
    "missing checkpoint": ("L", "photo.png --box 30,20,50,40 --checkpoint nope.pt", "checkpoint: nope.pt not found"),
    "missing photo": ("L", "nope.png --box 30,20,50,40", "nope.png: not found"),
    "mask of another size": ("L", "photo.png --mask small_mask.png", "it is 50x40, the photo is 173x121"),
    "empty mask": ("L", "photo.png --mask black_mask.png", "no white (missing) pixels"),
    "box outside": ("L", "photo.png --box 150,100,40,30", "--box 150,100,40,30: not inside the 173x121 image"),
    "box malformed": ("L", "photo.png --box 1,2,3", "--box 1,2,3: expected x,y,w,h"),
    "no hole option": ("L", "photo.png", "give exactly one of --mask, --box, --random"),
    "two hole options": ("L", "photo.png --box 30,20,50,40 --random 0.1", "(got --box and --random)"),
    "random square too big": ("L", "photo.png --random 0.9", "(137x137 px) does not fit in it"),
    "random squares too many": ("L", "photo.png --random 0.3 --count 3", "3 squares of 79 px do not fit in the 173x121 image"),
    "unknown shape": ("L", "photo.png --random 0.2 --shape blobs", "--shape blobs: must be one of square, rectangle, strokes, mixed"),
    "shape without random": ("L", "photo.png --box 30,20,50,40 --shape strokes", "--shape strokes: only applies to --random"),
    "strokes out of reach": ("L", "photo.png --random 0.9 --shape strokes", "--random 0.9 --shape strokes: the strokes cover only"),
    "lossy output": ("L", "photo.png --box 30,20,50,40 -o out.jpg", ".jpg is lossy and would change the pixels outside the hole"),
    "alpha as bmp": ("RGBA", "photo.png --box 30,20,50,40 -o out.bmp", "BMP cannot store this RGBA image losslessly"),
    "16 bits as webp": ("I;16", "photo.png --box 30,20,50,40 -o out.webp", "WEBP cannot store this I;16 image losslessly"),
    "mask over output": ("L", "photo.png --box 30,20,50,40 --samples 2 --save-mask out_2.png", "--save-mask out_2.png: is also where"),
    "unknown device": ("L", "photo.png --box 30,20,50,40 --device tpu", "--device tpu: must be one of auto, cpu, cuda"),
    "no samples": ("L", "photo.png --box 30,20,50,40 --samples 0", "--samples: must be at least 1, got 0"),
    "negative seed": ("L", "photo.png --box 30,20,50,40 --seed -1", "--seed: must be at least 0, got -1"),
}


@pytest.mark.parametrize("case", list(ERRORS))
def test_errors_are_one_line_and_write_nothing(tmp_path, monkeypatch, checkpoint, case):
    mode, args, message = ERRORS[case]
    monkeypatch.chdir(tmp_path)
    noise(mode).save("photo.png")
    Image.new("L", (50, 40), 255).save("small_mask.png")
    Image.new("L", SIZE, 0).save("black_mask.png")
    before = files_in(tmp_path)
    result = invoke("-o", "out.png", "--save-mask", "mask.png", "--checkpoint", checkpoint, *args.split())
    assert result.exit_code == 2
    assert result.stdout == ""
    assert result.stderr.startswith("error: ") and result.stderr.count("\n") == 1
    assert message in result.stderr
    assert files_in(tmp_path) == before


def test_default_checkpoint_is_the_pipelines(project_dir, monkeypatch):
    """Without --checkpoint, the trained model under the project root (found from a
    subfolder too); its absence says how to get one."""
    noise("L").save(project_dir / "photo.png")
    (project_dir / "sub").mkdir()
    monkeypatch.chdir(project_dir / "sub")
    result = CliRunner().invoke(app, ["inpaint", str(project_dir / "photo.png"), "-o", "out.png", "--box", "1,1,5,5"])
    assert result.exit_code == 2
    expected = project_dir / "data/model/checkpoint.pt"
    assert result.stderr == f"error: checkpoint: {expected} not found (run `dvc repro train` first, or pass --checkpoint)\n"


def test_installed_command(tmp_path, checkpoint):
    """The `vaeinpaint` script itself: exit status 2 and one line on stderr for a box outside."""
    noise("RGB").save(tmp_path / "photo.png")
    script = Path(sys.executable).parent / "vaeinpaint"
    args = [script, "inpaint", "photo.png", "-o", "out.png", "--box", "0,0,174,10", "--checkpoint", checkpoint]
    result = subprocess.run(args, cwd=tmp_path, env=run_env(), capture_output=True, text=True)
    assert result.returncode == 2
    assert result.stderr == "error: --box 0,0,174,10: not inside the 173x121 image (needs x + w <= 173 and y + h <= 121)\n"
    assert not (tmp_path / "out.png").exists()
