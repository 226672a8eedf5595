"""Colour (`prepare.color: rgb`) from prepare to scores, and any size from 32 to 512."""

from __future__ import annotations

import numpy as np
import pytest
import torch
import yaml
from PIL import Image
from skimage.metrics import structural_similarity

from vaeinpaint.apps.inpaint import inpaint
from vaeinpaint.data.dataset import read_images, write_prepared
from vaeinpaint.data.images import prepare_folder
from vaeinpaint.data.split import assign_split
from vaeinpaint.errors import DataError, ParamError
from vaeinpaint.evaluation import metrics
from vaeinpaint.evaluation.baselines import fill
from vaeinpaint.evaluation.diversity import diversity
from vaeinpaint.evaluation.evaluate import restore, sample_grid, score, score_model
from vaeinpaint.inference.engine import completions, enlarge, model_mask, model_view
from vaeinpaint.masks.generator import occlude
from vaeinpaint.modeling.checkpoint import check_fits_pipeline, load_checkpoint, model_config, model_from_checkpoint, save_checkpoint
from vaeinpaint.modeling.model import build_model
from vaeinpaint.modeling.train import ssim_map, train_model
from vaeinpaint.params import ModelParams, SplitParams, load_params

from _samples import encode
from conftest import synthetic_images, tiny_params

RED, GREEN, BLUE, GRAY = (220, 20, 30), (10, 200, 40), (25, 35, 210), (128, 128, 128)


def quadrants(size: int) -> np.ndarray:
    """uint8 [size, size, 3]: red, green / blue, gray quadrants (top-left, top-right / bottom)."""
    half = size // 2
    image = np.empty((size, size, 3), np.uint8)
    image[:half, :half], image[:half, half:], image[half:, :half], image[half:, half:] = RED, GREEN, BLUE, GRAY
    return image


def colour_images(n: int, size: int) -> np.ndarray:
    """uint8 [n, size, size, 3]: three different smooth images as R, G and B."""
    return np.stack([synthetic_images(n, size, seed=s) for s in range(3)], axis=-1)


def tinted_images(n: int, size: int) -> np.ndarray:
    """uint8 [n, size, size, 3]: smooth images, each in its own colour (as photos are)."""
    rng = np.random.default_rng(1)
    tint, offset = rng.uniform(0.5, 1.0, (n, 1, 1, 3)), rng.uniform(0, 60, (n, 1, 1, 3))
    return np.clip(synthetic_images(n, size)[..., None] * tint + offset, 0, 255).astype(np.uint8)


# --- prepare ----------------------------------------------------------------------------


def test_rgb_png_round_trips_through_prepare_with_its_channels_in_order(tmp_path):
    raw = tmp_path / "raw"
    raw.mkdir()
    Image.fromarray(quadrants(32)).save(raw / "a.png")
    prepared = prepare_folder(raw, 32, "stretch", workers=1, color="rgb")
    assert prepared.images.shape == (1, 32, 32, 3) and prepared.images.dtype == np.uint8
    assert np.array_equal(prepared.images[0], quadrants(32))  # same size: no resize, exact
    write_prepared(prepared.images, prepared.index, tmp_path / "prepared")
    assert np.array_equal(read_images(tmp_path / "prepared/images.npy"), prepared.images)
    assert prepared.stats["color"] == "rgb"


def test_large_rgb_jpeg_keeps_its_colours(tmp_path):
    """JPEGs are decoded in draft mode (reduced DCT) in colour too: still R, G, B in order."""
    raw = tmp_path / "raw"
    raw.mkdir()
    (raw / "big.jpg").write_bytes(encode(Image.fromarray(quadrants(512)), "JPEG", quality=95))
    image = prepare_folder(raw, 64, "stretch", workers=1, color="rgb").images[0].astype(int)
    for (y, x), colour in zip([(8, 8), (8, 56), (56, 8), (56, 56)], [RED, GREEN, BLUE, GRAY]):
        assert np.abs(image[y, x] - colour).max() <= 12, (y, x, image[y, x], colour)


def test_gray_and_transparent_files_in_rgb(tmp_path):
    """A gray file becomes three equal channels; transparency is composited onto white,
    the rule the gray path follows."""
    raw = tmp_path / "raw"
    raw.mkdir()
    gray = np.tile(np.linspace(0, 255, 32).astype(np.uint8), (32, 1))
    Image.fromarray(gray).save(raw / "gray.png")
    rgba = np.zeros((32, 32, 4), np.uint8)
    rgba[..., :3], rgba[:16, ..., 3], rgba[16:, ..., 3] = RED, 255, 0  # bottom half transparent
    Image.fromarray(rgba).save(raw / "rgba.png")
    prepared = prepare_folder(raw, 32, "stretch", workers=1, color="rgb")
    rows = prepared.index.set_index("path")["row"]
    assert np.array_equal(prepared.images[rows["gray.png"]], np.stack([gray] * 3, -1))
    transparent = prepared.images[rows["rgba.png"]]
    assert (transparent[:16] == RED).all() and (transparent[16:] == 255).all()


def test_the_split_does_not_change_with_colour(tmp_path):
    raw = tmp_path / "raw"
    raw.mkdir()
    rng = np.random.default_rng(0)
    for i in range(20):
        Image.fromarray(rng.integers(0, 256, (24 + i, 40, 3), dtype=np.uint8)).save(raw / f"{i:02d}.png")
    gray = prepare_folder(raw, 32, "stretch", workers=1, color="gray")
    rgb = prepare_folder(raw, 32, "stretch", workers=1, color="rgb")
    assert gray.images.shape == (20, 32, 32) and rgb.images.shape == (20, 32, 32, 3)
    assert gray.index.equals(rgb.index)  # the index, and so the split, is by the files' sha256
    params = SplitParams(train=0.7, test=0.3, seed=4)
    assert assign_split(gray.index, params).equals(assign_split(rgb.index, params))


# --- params -----------------------------------------------------------------------------


@pytest.mark.parametrize(
    "blocks, message",
    [
        ({"prepare": {"color": "cmyk"}}, "prepare.color: unknown value 'cmyk' (expected one of: gray, rgb)"),
        ({"prepare": {"size": 16}}, "prepare.size: must be between 32 and 512 pixels, got 16"),
        ({"prepare": {"size": 1024}}, "prepare.size: must be between 32 and 512 pixels, got 1024"),
        (
            {"model": {"arch": "paper"}, "prepare": {"color": "rgb"}},
            "model.arch: 'paper' takes gray images only, but prepare.color is 'rgb'",
        ),
    ],
)
def test_colour_and_size_params_are_checked(tmp_path, blocks, message):
    path = tmp_path / "params.yaml"
    path.write_text(yaml.safe_dump(blocks))
    with pytest.raises(ParamError) as err:
        load_params(path, base=tmp_path)
    assert str(err.value).startswith(message) and "\n" not in str(err.value)


@pytest.mark.parametrize("size", [32, 257, 512])
def test_any_size_in_range_is_valid(tmp_path, size):
    path = tmp_path / "params.yaml"
    path.write_text(yaml.safe_dump({"prepare": {"size": size, "color": "rgb"}}))
    assert load_params(path, base=tmp_path).prepare.size == size


# --- the model --------------------------------------------------------------------------


@pytest.mark.parametrize("channels", [1, 3])
@pytest.mark.parametrize("size", [32, 100, 128, 257])
def test_model_takes_and_returns_its_channels_at_any_size(channels, size):
    torch.manual_seed(0)
    model = build_model(ModelParams(width=4, latent_channels=2), channels).eval()
    x = torch.rand(2, channels, size, size)
    m = torch.zeros(2, 1, size, size)
    m[..., size // 4 : size // 2, size // 3 : size // 2] = 1
    with torch.no_grad():
        out, mu, _ = model(x * (1 - m), m, sample=False)
    assert out.shape == (2, channels, size, size)
    assert 0 <= out.min() and out.max() <= 1
    assert mu.shape[-1] == -(-size // 16)  # four stride-2 stages, each rounding up


def test_paper_architecture_refuses_colour():
    with pytest.raises(ValueError, match="gray images only"):
        build_model(ModelParams(arch="paper", fc_width=16, latent_dim=4), channels=3)


def test_colour_model_trains_and_its_checkpoint_records_colour_and_size(tmp_path):
    n = 32
    images = tinted_images(n, 32)
    ids = [f"{i:016x}" for i in range(n)]
    params = tiny_params(train={"epochs": 6, "lr": 1e-2})
    masks = occlude(ids, 32, params.occlusion).masks
    result = train_model(params, images, masks, ids)
    losses = [r["train_loss"] for r in result.history]
    assert losses[-1] < 0.8 * losses[0]
    assert result.state["config"]["color"] == "rgb" and result.state["config"]["size"] == 32

    path = tmp_path / "colour.pt"
    save_checkpoint(path, result.state)
    state = load_checkpoint(path)
    model, size = model_from_checkpoint(state)
    raw = restore(model, images, masks)
    assert raw.shape == images.shape and raw.dtype == np.float32  # [n, s, s, 3], as stored
    assert all(torch.equal(v, result.model.state_dict()[k]) for k, v in model.state_dict().items())
    check_fits_pipeline(state, path, 32, "rgb")
    with pytest.raises(DataError) as err:
        check_fits_pipeline(state, path, 32, "gray")
    assert str(err.value).startswith(f"checkpoint: {path} was trained on rgb images, but prepare.color is 'gray' here")
    with pytest.raises(DataError, match=rf"^checkpoint: {path} was trained on 32x32 images, but prepare.size is 64 here"):
        check_fits_pipeline(state, path, 64, "rgb")


def test_checkpoint_without_colour_is_gray(tmp_path):
    """Checkpoints written before colour existed record no colour: they load as gray."""
    params = ModelParams(width=4, latent_channels=2)
    config = model_config(params, 32)
    del config["color"]
    state = {"model": build_model(params).state_dict(), "config": config}
    model, size = model_from_checkpoint(state)
    assert model.channels == 1 and size == 32
    check_fits_pipeline(state, "old.pt", 32, "gray")
    with pytest.raises(DataError, match="^checkpoint: old.pt was trained on gray images, but prepare.color is 'rgb'"):
        check_fits_pipeline(state, "old.pt", 32, "rgb")


# --- metrics, baselines, the sample grid ------------------------------------------------

WANG = {"data_range": 1.0, "gaussian_weights": True, "sigma": 1.5, "use_sample_covariance": False}


def test_colour_ssim_is_the_mean_of_the_channels_ssim():
    rng = np.random.default_rng(0)
    x = colour_images(1, 40)[0] / 255.0
    y = np.clip(x + 0.05 * rng.standard_normal(x.shape), 0, 1)
    per_channel = [structural_similarity(x[..., c], y[..., c], **WANG) for c in range(3)]
    assert len(set(np.round(per_channel, 6))) == 3  # channels differ, so the mean is a real test
    assert metrics.ssim(x, y) == pytest.approx(np.mean(per_channel), abs=1e-12)
    assert metrics.ssim(x[..., 1], y[..., 1]) == pytest.approx(per_channel[1], abs=1e-12)


def test_colour_ssim_of_flat_images_by_hand():
    """Flat channels have no variance: each channel's SSIM is (2ab + C1) / (a^2 + b^2 + C1)."""
    a, b, c1 = np.array([0.5, 0.2, 0.9]), np.array([0.25, 0.2, 0.6]), 1e-4
    expected = np.mean((2 * a * b + c1) / (a * a + b * b + c1))
    x, y = np.ones((32, 32, 3)) * a, np.ones((32, 32, 3)) * b
    assert metrics.ssim(x, y) == pytest.approx(expected, abs=1e-9)


def test_colour_ssim_loss_term_matches_the_metric():
    rng = np.random.default_rng(1)
    a = colour_images(2, 40) / 255.0
    b = np.clip(a + 0.1 * rng.standard_normal(a.shape), 0, 1)
    maps = ssim_map(torch.from_numpy(a).permute(0, 3, 1, 2), torch.from_numpy(b).permute(0, 3, 1, 2))
    for i in range(2):
        assert maps[i].mean().item() == pytest.approx(metrics.ssim(a[i], b[i]), abs=1e-6)


def test_hole_metrics_count_every_channel_of_the_missing_pixels():
    reference = np.full((1, 20, 20, 3), 0.5)
    masks = np.zeros((1, 20, 20), np.uint8)
    masks[:, 5:10, 5:10] = 1
    restored = reference.copy()
    restored[0, 5:10, 5:10, 0] += 0.3  # red off by 0.3 in the hole; green and blue exact
    restored[0, 0, 0] = 0.0  # outside the hole: ignored
    assert metrics.hole_l1(reference, restored, masks)[0] == pytest.approx(0.1)
    assert metrics.hole_psnr(reference, restored, masks)[0] == pytest.approx(10 * np.log10(1 / 0.03))


def colour_ramp(size=48) -> np.ndarray:
    """Each channel a different linear ramp: biharmonic continuation reproduces all three."""
    x = np.linspace(0, 1, size)
    r, g = np.tile(40 + 160 * x, (size, 1)), np.tile(200 - 150 * x, (size, 1)).T
    b = (np.add.outer(x, x) * 100 + 20).clip(0, 255)
    return np.stack([r, g, b], -1).round().astype(np.uint8)


def test_colour_baselines():
    image, mask = colour_ramp(), np.zeros((48, 48), np.uint8)
    mask[14:34, 10:30] = 1
    corrupted = fill("corrupted", image, mask)
    assert corrupted.shape == image.shape and np.all(corrupted[mask == 1] == 0)
    assert np.allclose(corrupted[mask == 0], image[mask == 0] / 255.0)
    biharmonic = score(image[None], mask[None], fill("biharmonic", image, mask)[None])
    assert biharmonic["hole_psnr"][0] > 45 and biharmonic["ssim"][0] > 0.999

    flat = np.empty((48, 48, 3), np.uint8)
    flat[...] = RED
    telea = fill("telea", flat, mask) * 255
    assert telea.shape == flat.shape
    assert np.abs(telea[mask == 1] - np.array(RED)).max() <= 3  # each channel continued on its own


def test_colour_sample_grid_and_scores():
    images = colour_images(3, 32)
    masks = np.zeros((3, 32, 32), np.uint8)
    masks[:, 8:20, 8:20] = 1
    raw = np.zeros(images.shape, np.float32)
    raw[..., 1] = 1.0  # the "model" paints the hole pure green
    grid = sample_grid(images, masks, raw)
    assert grid.mode == "RGB"
    pasted = np.asarray(grid)[16 + 4 + 10, 3 * 36 + 4 + 10]  # row 0, last column, inside the hole
    assert tuple(pasted) == (0, 255, 0)
    table = score_model(images, masks, raw)
    assert list(table.columns) == ["ssim", "raw_ssim", "hole_psnr", "hole_l1"] and len(table) == 3


# --- stages: bad input is one line, exit 2, nothing written -----------------------------


@pytest.mark.parametrize(
    "prepare, message",
    [
        ({"color": "cmyk"}, "error: prepare.color: unknown value 'cmyk' (expected one of: gray, rgb)"),
        ({"size": 640}, "error: prepare.size: must be between 32 and 512 pixels, got 640"),
    ],
)
def test_prepare_refuses_bad_colour_and_size(tiny_project, prepare, message):
    (tiny_project.root / "data/raw").mkdir(parents=True)
    Image.fromarray(quadrants(40)).save(tiny_project.root / "data/raw/a.png")
    before = tiny_project.tree()
    out = tiny_project.params({"prepare": prepare}).run("prepare")
    assert out.returncode == 2 and out.stderr.strip() == message
    assert tiny_project.tree() == sorted(before + ["params.yaml"])


def test_evaluate_refuses_a_colour_checkpoint_in_a_gray_pipeline(tiny_project):
    """The pipeline's prepared images are gray; a colour model put in data/model is refused
    before anything is restored or written."""
    tmp_path = tiny_project.root
    n, size = 10, 32
    (tmp_path / "data/prepared").mkdir(parents=True)
    np.save(tmp_path / "data/prepared/images.npy", synthetic_images(n, size))
    tiny_project.split(8, 2)
    (tmp_path / "data/masks").mkdir(parents=True)
    np.savez(tmp_path / "data/masks/masks.npz", train=np.zeros((8, size, size), np.uint8), test=np.zeros((2, size, size), np.uint8))
    params = ModelParams(width=4, latent_channels=2)
    save_checkpoint(
        tmp_path / "data/model/checkpoint.pt", {"model": build_model(params, 3).state_dict(), "config": model_config(params, size, "rgb")}
    )
    before = tiny_project.tree()
    out = tiny_project.params({"prepare": {"size": size}, "model": {"width": 4, "latent_channels": 2}}).run("evaluate")
    assert out.returncode == 2
    assert out.stderr.strip().startswith(
        "error: checkpoint: data/model/checkpoint.pt was trained on rgb images, but prepare.color is 'gray' here"
    ), out.stderr
    assert out.stderr.count("\n") == 1
    assert tiny_project.tree() == sorted(before + ["params.yaml"])  # no metrics/, no data/eval


# --- vaeinpaint inpaint with a colour checkpoint ----------------------------------------


@pytest.fixture(scope="module")
def colour_checkpoint(tmp_path_factory):
    """An untrained colour model at 32 px, He-initialised so its output depends on its input."""
    torch.manual_seed(0)
    params = ModelParams(width=8, latent_channels=4)
    model = build_model(params, 3)
    for module in model.modules():
        if isinstance(module, (torch.nn.Conv2d, torch.nn.ConvTranspose2d)):
            torch.nn.init.kaiming_normal_(module.weight, a=0.2, nonlinearity="leaky_relu")
    path = tmp_path_factory.mktemp("model") / "colour.pt"
    save_checkpoint(path, {"model": model.state_dict(), "config": model_config(params, 32, "rgb")})
    return path


def test_colour_checkpoint_fills_colour_photos_directly(tmp_path, colour_checkpoint):
    """The hole gets the colour model's own RGB (resized back), not Telea's chroma; every
    pixel outside it stays as it was."""
    rng = np.random.default_rng(0)
    photo = rng.integers(0, 256, (70, 90, 3), dtype=np.uint8)
    Image.fromarray(photo).save(tmp_path / "photo.png")
    inpaint(tmp_path / "photo.png", tmp_path / "out.png", colour_checkpoint, box="20,10,30,40", strategy="resize")
    out = np.asarray(Image.open(tmp_path / "out.png"))
    hole = np.zeros((70, 90), bool)
    hole[10:50, 20:50] = True
    assert out.shape == photo.shape and np.array_equal(out[~hole], photo[~hole])

    state = load_checkpoint(colour_checkpoint)
    model, size = model_from_checkpoint(state)
    view = model_view(Image.fromarray(photo), size, "rgb")
    (fill_small,) = completions(model, view, model_mask(hole, size), 1, 0, torch.device("cpu"))
    expected = np.rint(enlarge(fill_small, (90, 70)) * 255).astype(np.uint8)
    assert np.array_equal(out[hole], expected[hole])
    assert (np.ptp(out[hole].astype(int), axis=-1) > 10).mean() > 0.5  # colour, not gray


def test_colour_checkpoint_on_a_gray_photo_fills_its_luma(tmp_path, colour_checkpoint):
    photo = np.random.default_rng(1).integers(0, 256, (50, 60), dtype=np.uint8)
    Image.fromarray(photo).save(tmp_path / "photo.png")
    inpaint(tmp_path / "photo.png", tmp_path / "out.png", colour_checkpoint, box="5,5,20,20")
    with Image.open(tmp_path / "out.png") as image:
        assert image.mode == "L"
        out = np.asarray(image)
    hole = np.zeros(photo.shape, bool)
    hole[5:25, 5:25] = True
    assert np.array_equal(out[~hole], photo[~hole]) and (out[hole] != photo[hole]).mean() > 0.9


def test_diversity_of_a_colour_model_counts_every_channel():
    torch.manual_seed(0)
    model = build_model(ModelParams(width=8, latent_channels=4), 3).eval()
    with torch.no_grad():  # a wide posterior: draws differ visibly
        model.to_latent.bias[4:] = 6.0
    images = colour_images(4, 32)
    masks = np.zeros((4, 32, 32), np.uint8)
    masks[:, 8:20, 10:22] = 1
    figures = diversity(model, images, masks, k=2, seed=0)
    draws = [restore(model, images, masks, sample=True, generator=torch.Generator().manual_seed(j)) for j in range(2)]
    assert figures["samples_hole_l1_pairwise"] == pytest.approx(metrics.hole_l1(draws[0], draws[1], masks).mean(), abs=1e-6)
    assert figures["samples_hole_l1_pairwise"] > 1e-4
