"""Decoding any image PIL reads into 8-bit gray, and preparing a folder of messy files."""

from __future__ import annotations

import io
import json
import multiprocessing

import numpy as np
import pytest
from PIL import Image
from PIL.JpegImagePlugin import JpegImageFile

from vaeinpaint.data import images
from vaeinpaint.data.images import decode_gray, prepare_folder

from _samples import (
    broken_exif_jpeg,
    cmyk_jpeg,
    encode,
    exif_rotated_jpeg,
    jpeg,
    photo,
    png16,
    rgba_png,
    truncated_jpeg,
    upright_marker,
)


def write(folder, files: dict[str, bytes]):
    for name, data in files.items():
        path = folder / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(data)
    return folder


def prepared_row(prepared, name: str) -> np.ndarray:
    row = prepared.index.set_index("path").loc[name, "row"]
    return prepared.images[row]


@pytest.mark.parametrize("orientation", [2, 3, 4, 5, 6, 7, 8])
def test_exif_orientation_is_applied_before_resizing(orientation):
    pixels, (width, height) = decode_gray(exif_rotated_jpeg(orientation), 32, "stretch")
    # The upright picture is 256x128 with a black top-left quarter; stretched to 32x32
    # that quarter is the top-left 16x16 block, whatever way the pixels were stored.
    assert (width, height) == (256, 128)
    assert pixels[2:14, 2:14].mean() < 40
    for block in (pixels[2:14, 18:30], pixels[18:30, 2:14], pixels[18:30, 18:30]):
        assert block.mean() > 215


def test_exif_that_cannot_be_applied_keeps_the_image_as_stored_and_is_counted(tmp_path):
    raw = write(tmp_path / "raw", {"broken-exif.jpg": broken_exif_jpeg(), "fine.jpg": jpeg(seed=1), "turned.jpg": exif_rotated_jpeg(6)})
    prepared = prepare_folder(raw, 32, "stretch", workers=1)
    stats = prepared.stats
    assert stats["n_images"] == 3 and stats["n_skipped"] == 0  # kept, as before
    assert stats["kept_with_problems"] == {"EXIF orientation not applied (kept as stored)": 1}
    assert stats["n_kept_with_problems"] == 1
    stored = prepared_row(prepared, "broken-exif.jpg")
    assert stored[2:14, 2:14].mean() < 40 and stored[18:30, 18:30].mean() > 215  # as stored: black top-left
    row = prepared.index.set_index("path").loc["broken-exif.jpg"]
    assert (row["width"], row["height"]) == (256, 128)


def test_a_clean_folder_reports_no_problems(tmp_path):
    stats = prepare_folder(write(tmp_path / "raw", {"a.jpg": jpeg(seed=1)}), 16, "stretch", workers=1).stats
    assert stats["kept_with_problems"] == {} and stats["n_kept_with_problems"] == 0


@pytest.mark.parametrize("workers", [1, 2])
def test_a_bug_in_decoding_propagates_instead_of_becoming_a_skip(tmp_path, monkeypatch, workers):
    # A code bug (here a TypeError from a helper) must stop prepare, not be counted as a
    # "cannot decode" skip that silently drops every image. Only file and decoder errors are skips.
    def buggy(image):
        raise TypeError("unsupported operand type(s) for +: 'Image' and 'int'")

    monkeypatch.setattr(images, "to_gray_u8", buggy)
    files = {f"{i:03d}.jpg": jpeg(seed=i) for i in range(70 if workers > 1 else 2)}  # 64+ files use the pool
    raw = write(tmp_path / "raw", files)
    if workers > 1 and multiprocessing.get_start_method() != "fork":
        pytest.skip("the patch reaches pool workers only when they are forked")
    with pytest.raises(TypeError, match="unsupported operand"):
        prepare_folder(raw, 16, "stretch", workers=workers)


def test_decoder_errors_are_still_skips_with_reasons(tmp_path):
    raw = write(tmp_path / "raw", {"ok.jpg": jpeg(), "truncated.jpg": truncated_jpeg(), "text.png": b"not a png"})
    stats = prepare_folder(raw, 16, "stretch", workers=1).stats
    assert stats["skipped_reasons"] == {"not an image": 1, "truncated image": 1}


def test_unrotated_marker_for_reference():
    pixels, size = decode_gray(encode(upright_marker(), "JPEG", quality=95), 32, "stretch")
    assert size == (256, 128)
    assert pixels[2:14, 2:14].mean() < 40 and pixels[18:30, 18:30].mean() > 215


def test_cmyk_jpeg_becomes_the_right_gray():
    pixels, _ = decode_gray(cmyk_jpeg(), 32, "stretch")
    # Cyan is RGB (0, 255, 255): luma 0.587 * 255 + 0.114 * 255 = 179; 50% black is 127.
    assert abs(pixels[:, 2:14].mean() - 179) < 8
    assert abs(pixels[:, 18:30].mean() - 127) < 8


def test_rgba_png_is_composited_on_white():
    pixels, _ = decode_gray(rgba_png(), 30, "stretch")
    assert pixels[:, 1:9].max() <= 2  # opaque black
    assert abs(int(pixels[:, 12:18].mean()) - 127) <= 2  # half-transparent black over white
    assert pixels[:, 21:].min() >= 253  # transparent


def test_16bit_png_is_rescaled_not_clipped():
    assert Image.open(io.BytesIO(png16())).mode.startswith("I;16")
    pixels, _ = decode_gray(png16(), 30, "stretch")
    assert pixels[1:9].max() == 0
    assert abs(int(pixels[12:18].mean()) - 128) <= 1
    assert pixels[21:].min() >= 254


def test_palette_gif_uses_the_first_frame():
    first, second = Image.new("P", (20, 20), 1), Image.new("P", (20, 20), 0)
    palette = [0, 0, 0, 255, 255, 255] + [0] * 762
    first.putpalette(palette)
    second.putpalette(palette)
    data = encode(first, "GIF", save_all=True, append_images=[second])
    pixels, _ = decode_gray(data, 20, "stretch")
    assert pixels.min() == 255


def test_palette_png_with_transparency():
    image = Image.new("P", (20, 20), 0)
    image.putpalette([0, 0, 0, 255, 0, 0] + [0] * 762)
    image.paste(1, (10, 0, 20, 20))
    data = encode(image, "PNG", transparency=0)  # index 0 (black) is transparent
    pixels, _ = decode_gray(data, 20, "stretch")
    assert pixels[:, :9].min() >= 254  # transparent -> white
    assert abs(int(pixels[:, 11:].mean()) - 76) <= 2  # red: luma 0.299 * 255


@pytest.mark.parametrize("fmt", ["PNG", "WEBP", "BMP", "TIFF", "GIF", "JPEG"])
def test_every_format_decodes(fmt):
    data = encode(photo(48, 40, seed=3).convert("P") if fmt == "GIF" else photo(48, 40, seed=3), fmt)
    pixels, size = decode_gray(data, 16, "stretch")
    assert pixels.shape == (16, 16) and pixels.dtype == np.uint8 and size == (48, 40)


def test_mpo_from_a_camera_gets_draft_decoding(monkeypatch):
    data = encode(photo(512, 512, seed=4), "MPO", save_all=True, append_images=[photo(512, 512, seed=5)])
    drafts = spy_on_draft(monkeypatch)
    pixels, size = decode_gray(data, 64, "stretch")
    assert pixels.shape == (64, 64) and size == (512, 512)
    assert drafts == [(64, 64)]  # 1/8 scale: 512 -> 64


def spy_on_draft(monkeypatch) -> list[tuple[int, int]]:
    sizes: list[tuple[int, int]] = []
    original = JpegImageFile.draft

    def draft(self, mode, size):
        result = original(self, mode, size)
        sizes.append(self.size)
        return result

    monkeypatch.setattr(JpegImageFile, "draft", draft)
    return sizes


def test_large_jpeg_is_decoded_at_reduced_scale_and_matches_full_decode(monkeypatch):
    data = encode(photo(1024, 1024, seed=6), "JPEG", quality=90)
    drafts = spy_on_draft(monkeypatch)
    fast, _ = decode_gray(data, 100, "stretch")
    assert drafts == [(128, 128)]  # decoded at 1/8 scale, still >= 100 px
    full = np.asarray(Image.open(io.BytesIO(data)).convert("L").resize((100, 100), Image.Resampling.LANCZOS))
    assert np.abs(fast.astype(int) - full.astype(int)).mean() < 2.0


def test_center_crop_keeps_the_middle():
    image = Image.new("L", (300, 100), 0)
    image.paste(255, (100, 0, 200, 100))  # the central square is white, the sides black
    pixels, _ = decode_gray(encode(image, "PNG"), 50, "center-crop")
    assert pixels.min() >= 250
    stretched, _ = decode_gray(encode(image, "PNG"), 50, "stretch")
    assert stretched[:, :10].max() < 5


def test_eps_content_named_jpg_is_not_opened():
    # PIL would identify this as EPS (and run Ghostscript to load it) if it were allowed.
    eps = b"%!PS-Adobe-3.0 EPSF-3.0\n%%BoundingBox: 0 0 10 10\nshowpage\n%%EOF\n"
    with pytest.raises(Image.UnidentifiedImageError):
        decode_gray(eps, 16, "stretch")


def test_prepare_folder_skips_messy_files_with_reasons(tmp_path):
    raw = write(
        tmp_path / "raw",
        {
            "a/good.jpg": jpeg(seed=10),
            "a/copy-of-good.jpg": jpeg(seed=10),
            "b/cmyk.jpg": cmyk_jpeg(),
            "b/alpha.png": rgba_png(),
            "b/deep.png": png16(),
            "b/rotated.jpg": exif_rotated_jpeg(6),
            "c/truncated.jpg": truncated_jpeg(),
            "c/notes.jpg": b"this is a text file with an image extension\n",
            "c/empty.png": b"",
            "c/README.txt": b"not an image by extension: ignored, not counted\n",
            ".hidden/x.jpg": jpeg(seed=11),
        },
    )
    prepared = prepare_folder(raw, 32, "stretch", workers=1)
    stats = prepared.stats
    assert stats["n_files"] == 9
    assert stats["n_images"] == 5
    assert stats["n_duplicates"] == 1
    assert stats["n_skipped"] == 3
    assert stats["skipped_reasons"] == {"empty file": 1, "not an image": 1, "truncated image": 1}
    index = prepared.index
    assert list(index.columns) == ["id", "row", "path", "sha256", "label", "label_en", "width", "height"]
    assert "a/copy-of-good.jpg" in set(index["path"])  # sorted first, so the copy is the one kept
    assert "a/good.jpg" not in set(index["path"])
    assert list(index["label"]) == list(index["label_en"]) == [p.split("/")[0] for p in index["path"]]
    assert prepared.images.shape == (5, 32, 32) and prepared.images.dtype == np.uint8
    rotated = index.set_index("path").loc["b/rotated.jpg"]
    assert (rotated["width"], rotated["height"]) == (256, 128)
    assert prepared_row(prepared, "b/rotated.jpg")[2:14, 2:14].mean() < 40


def test_prepare_folder_logs_each_skipped_file(tmp_path, caplog):
    raw = write(tmp_path / "raw", {"ok.jpg": jpeg(), "bad.jpg": b"nope"})
    with caplog.at_level("WARNING", logger="vaeinpaint.data.images"):
        prepare_folder(raw, 16, "stretch", workers=1)
    assert "bad.jpg: not an image" in caplog.text


def test_labels_come_from_source_json(tmp_path):
    raw = write(
        tmp_path / "raw", {"raw-img/cane/1.jpg": jpeg(seed=1), "raw-img/gatto/2.jpg": jpeg(seed=2), "raw-img/zebra/3.jpg": jpeg(seed=3)}
    )
    (raw / "SOURCE.json").write_text(json.dumps({"source": "animals10", "label_en": {"cane": "dog", "gatto": "cat"}}))
    index = prepare_folder(raw, 16, "stretch", workers=1).index
    assert list(index["label"]) == ["cane", "gatto", "zebra"]
    assert list(index["label_en"]) == ["dog", "cat", "zebra"]


def test_single_class_label_from_source_json(tmp_path):
    raw = write(tmp_path / "raw", {"thumbnails128x128/00000/00000.png": encode(photo(seed=1), "PNG")})
    (raw / "SOURCE.json").write_text(json.dumps({"source": "ffhq", "label": "face"}))
    index = prepare_folder(raw, 16, "stretch", workers=1).index
    assert list(index["label"]) == list(index["label_en"]) == ["face"]


def test_decompression_bomb_is_refused(tmp_path, monkeypatch):
    monkeypatch.setattr(Image, "MAX_IMAGE_PIXELS", Image.MAX_IMAGE_PIXELS)  # restored after the test
    monkeypatch.setattr(images, "MAX_IMAGE_PIXELS", 1000)
    files = {"small.png": encode(photo(20, 20), "PNG"), "big.png": encode(photo(40, 40), "PNG"), "huge.png": encode(photo(100, 100), "PNG")}
    raw = write(tmp_path / "raw", files)
    stats = prepare_folder(raw, 16, "stretch", workers=1).stats
    assert stats["n_images"] == 1
    assert stats["skipped_reasons"] == {"too many pixels (decompression bomb)": 2}


def test_process_pool_gives_the_same_result_as_one_process(tmp_path):
    files = {f"c{i % 3}/{i:03d}.jpg": jpeg(80, 60, seed=i) for i in range(70)}
    files["c0/broken.jpg"] = truncated_jpeg()
    raw = write(tmp_path / "raw", files)
    serial = prepare_folder(raw, 24, "stretch", workers=1)
    pooled = prepare_folder(raw, 24, "stretch", workers=2)
    assert np.array_equal(serial.images, pooled.images)
    assert serial.index.equals(pooled.index)
    assert pooled.stats["n_images"] == 70 and pooled.stats["skipped_reasons"] == {"truncated image": 1}


def test_no_usable_image_is_an_error(tmp_path):
    from vaeinpaint.errors import DataError

    raw = write(tmp_path / "raw", {"a.jpg": b"", "b.png": b"text"})
    with pytest.raises(DataError, match="no usable images"):
        prepare_folder(raw, 16, "stretch", workers=1)


def test_bench_prepare_times_both_on_the_same_jpegs_and_reports_the_best_round(monkeypatch):
    from vaeinpaint.bench import prepare as bench_prepare

    monkeypatch.setattr(bench_prepare, "COUNT", {True: 4, False: 4})
    monkeypatch.setattr(bench_prepare, "ROUNDS", {True: 2, False: 2})
    seen: dict[str, list] = {"naive": [], "prepare": []}
    naive_seconds, prepare_seconds = iter([3.0, 2.0]), iter([0.5, 1.0])  # round 2 is the naive loop's best, round 1 ours

    def naive(paths):
        seen["naive"].append([(p.name, Image.open(p).size, p.read_bytes()) for p in paths])
        return next(naive_seconds)

    def ours(folder, count):
        seen["prepare"].append([(p.name, Image.open(p).size, p.read_bytes()) for p in sorted(folder.iterdir())])
        return next(prepare_seconds)

    monkeypatch.setattr(bench_prepare, "naive_loop", naive)
    monkeypatch.setattr(bench_prepare, "prepare_run", ours)
    result = bench_prepare.bench_prepare(quick=True)
    files = seen["naive"][0]
    assert [size for _, size, _ in files] == [(1024, 1024)] * 4 and len({data for _, _, data in files}) == 4
    assert seen["naive"] == [files, files] and seen["prepare"] == [files, files]  # same JPEGs, every round, both
    assert result == {"prepare_img_per_s": 4 / 0.5, "naive_prepare_img_per_s": 4 / 2.0, "prepare_speedup": 4.0}


def test_bench_prepare_refuses_a_run_where_prepare_dropped_images(tmp_path):
    from vaeinpaint.bench import prepare as bench_prepare

    paths = bench_prepare.synthesize(tmp_path, 3)
    paths[2].write_bytes(paths[0].read_bytes())  # a duplicate: prepare keeps 2 of 3
    with pytest.raises(RuntimeError, match="prepare kept 2 of 3 images"):
        bench_prepare.prepare_run(tmp_path, 3)
