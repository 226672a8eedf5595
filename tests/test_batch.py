"""`vaeinpaint inpaint PHOTOS_DIR -o OUT_DIR`: masks matched by name, skipped photos reported
with their reason, the same guarantees per photo as for one."""

from __future__ import annotations

from pathlib import Path

import numpy as np
from PIL import Image
from typer.testing import CliRunner

from vaeinpaint.cli import app

SIZE = (120, 90)


def noise(size=SIZE, seed=0, mode="RGB") -> Image.Image:
    pixels = np.random.default_rng(seed).integers(0, 256, (size[1], size[0], 3), dtype=np.uint8)
    return Image.fromarray(pixels).convert(mode)


def mask_of(hole: np.ndarray) -> Image.Image:
    return Image.fromarray(np.where(hole, 255, 0).astype(np.uint8))


def hole_at(x: int, y: int, size=SIZE) -> np.ndarray:
    hole = np.zeros(size[::-1], bool)
    hole[y : y + 20, x : x + 30] = True
    return hole


def invoke(*args) -> object:
    return CliRunner().invoke(app, ["inpaint", *map(str, args)])


def pixels(path: Path) -> np.ndarray:
    with Image.open(path) as image:
        return np.asarray(image)


def test_folder_with_masks_by_name(tmp_path, tiny_checkpoint):
    photos, masks, out = tmp_path / "photos", tmp_path / "masks", tmp_path / "out"
    (photos / "trip").mkdir(parents=True)
    (masks / "trip").mkdir(parents=True)
    holes = {"a": hole_at(10, 10), "trip/b": hole_at(50, 40)}
    noise(seed=1).save(photos / "a.png")
    noise(seed=2, mode="L").save(photos / "trip" / "b.jpg", quality=95)
    mask_of(holes["a"]).save(masks / "a.png")
    mask_of(holes["trip/b"]).convert("RGB").save(masks / "trip" / "b.bmp")  # any image extension matches
    noise(seed=3).save(photos / "no_mask.png")
    noise(seed=4).save(photos / "small_mask.png")
    mask_of(hole_at(0, 0, (40, 30))).save(masks / "small_mask.png")
    noise(seed=5).save(photos / "empty.png")
    mask_of(np.zeros(SIZE[::-1], bool)).save(masks / "empty.png")
    (photos / "broken.png").write_bytes(b"\x89PNG\r\n\x1a\nnot really")
    mask_of(holes["a"]).save(masks / "broken.png")
    (photos / "notes.txt").write_text("not a photo: ignored")

    result = invoke(photos, "--mask", masks, "-o", out, "--checkpoint", tiny_checkpoint)
    assert result.exit_code == 1, result.output  # some were skipped
    assert result.stdout == f"inpainted 2 of 6 photos into {out} (2 files written)\n"
    report = result.stderr.splitlines()
    assert report == [
        "skipped 1, empty mask:",
        "  empty.png: no white (missing) pixels, nothing to inpaint",
        "skipped 1, mask of another size:",
        "  small_mask.png: it is 40x30, the photo is 120x90; they must match",
        "skipped 1, no mask:",
        "  no_mask.png",
        "skipped 1, unreadable photo:",
        "  broken.png: cannot be read (" + report[7].split("(", 1)[1],
    ]
    assert sorted(p.relative_to(out).as_posix() for p in out.rglob("*")) == ["a.png", "trip", "trip/b.png"]
    for name, source in (("a", photos / "a.png"), ("trip/b", photos / "trip" / "b.jpg")):
        before, after, hole = pixels(source), pixels(out / f"{name}.png"), holes[name]
        assert after.shape == before.shape
        assert np.array_equal(after[~hole], before[~hole])  # lossless PNG, only the hole changed
        assert (after[hole] != before[hole]).reshape(hole.sum(), -1).any(-1).mean() > 0.9


def test_folder_with_one_box_for_all_samples_and_saved_masks(tmp_path, tiny_checkpoint):
    photos, out, saved = tmp_path / "photos", tmp_path / "out", tmp_path / "masks_used"
    photos.mkdir()
    for seed in range(3):
        noise(seed=seed).save(photos / f"p{seed}.png")
    result = invoke(photos, "--box", "10,10,30,20", "-o", out, "--samples", "2", "--save-mask", saved, "--checkpoint", tiny_checkpoint)
    assert result.exit_code == 0, result.output
    assert result.stdout == f"inpainted 3 of 3 photos into {out} (9 files written)\n" and result.stderr == ""
    assert sorted(p.name for p in out.iterdir()) == ["p0_1.png", "p0_2.png", "p1_1.png", "p1_2.png", "p2_1.png", "p2_2.png"]
    hole = hole_at(10, 10)
    for seed in range(3):
        assert np.array_equal(pixels(saved / f"p{seed}.png") == 255, hole)
        before = pixels(photos / f"p{seed}.png")
        for k in (1, 2):
            assert np.array_equal(pixels(out / f"p{seed}_{k}.png")[~hole], before[~hole])


def test_folder_with_random_squares_skips_photos_too_small(tmp_path, tiny_checkpoint):
    photos, out = tmp_path / "photos", tmp_path / "out"
    photos.mkdir()
    noise().save(photos / "big.png")
    noise((100, 5)).save(photos / "thin.png")
    result = invoke(photos, "--random", "0.3", "-o", out, "--checkpoint", tiny_checkpoint, "--strategy", "original")
    assert result.exit_code == 1
    assert (
        "skipped 1, hole does not fit:\n  thin.png: --random 0.3: a square covering 0.3 of the 100x5 image's area (12x12 px)"
        in result.stderr
    )
    assert [p.name for p in out.iterdir()] == ["big.png"]


def test_folder_refusals_write_nothing(tmp_path, tiny_checkpoint):
    photos = tmp_path / "photos"
    photos.mkdir()
    noise().save(photos / "a.png")
    (tmp_path / "mask.png").write_bytes(b"")
    cases = {
        "output inside the photos": (["--box", "1,1,5,5", "-o", photos / "out"], "is inside"),
        "a mask file for a folder": (["--mask", tmp_path / "mask.png", "-o", tmp_path / "out"], "--mask must be a folder too"),
        "no mask folder": (["--mask", tmp_path / "nope", "-o", tmp_path / "out"], "no such folder"),
        "unknown strategy": (["--box", "1,1,5,5", "-o", tmp_path / "out", "--strategy", "zoom"], "--strategy zoom: must be one of"),
    }
    for name, (args, words) in cases.items():
        result = invoke(photos, *args, "--checkpoint", tiny_checkpoint)
        assert result.exit_code == 2, name
        assert result.stderr.startswith("error: ") and words in result.stderr, (name, result.stderr)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["mask.png", "photos"]
    assert [p.name for p in photos.iterdir()] == ["a.png"]

    empty = tmp_path / "empty"
    empty.mkdir()
    result = invoke(empty, "--box", "1,1,5,5", "-o", tmp_path / "out", "--checkpoint", tiny_checkpoint)
    assert result.exit_code == 2 and "no image files in it" in result.stderr
