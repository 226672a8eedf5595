"""Rules between params: within a block, across blocks, and against the files they name.

The blocks' validators call these; each raises `fields.fail` with the param it is about
(`at`), so the one error formatter names it as it names a field pydantic checked.
"""

from __future__ import annotations

import math
from pathlib import Path
from typing import TYPE_CHECKING, Any

from pydantic import ValidationInfo

from vaeinpaint.params.fields import BOX_SHAPES, URL_SCHEMES, fail

if TYPE_CHECKING:
    from vaeinpaint.params.blocks import DataParams, OcclusionParams, SplitParams

HEX = set("0123456789abcdefABCDEF")


def path_base(info: ValidationInfo) -> Path | None:
    """Where relative paths start when the context asks for path checks; None: no path checks."""
    context: dict[str, Any] = info.context or {}
    return Path(context.get("base") or ".") if context.get("check_paths") else None


def resolve(path: str, base: Path) -> Path:
    found = Path(path).expanduser()
    return found if found.is_absolute() else base / found


def model_path(spec: str, base: Path) -> Path:
    """A checkpoint path from params: relative ones are taken from the project root."""
    return resolve(spec, base)


def check_data(d: DataParams, base: Path | None) -> None:
    if d.source == "folder" and not d.path:
        raise fail("required", "required when data.source is 'folder'", at="path")
    if d.source == "url":
        if not d.url:
            raise fail("required", "required when data.source is 'url'", at="url")
        if not d.sha256:
            raise fail("required", "required when data.source is 'url' (an unverified download is not reproducible)", at="sha256")
    if d.sha256 and (len(d.sha256) != 64 or not set(d.sha256) <= HEX):
        raise fail("sha256", f"expected 64 hex digits, got {d.sha256!r}", at="sha256")
    if d.url and d.source in ("url", "ffhq", "animals10"):
        check_url(d.url, base)
    if d.source == "ffhq" and not (d.path or d.url):
        raise fail(
            "required",
            "the ffhq source needs a local copy of FFHQ (thumbnails128x128.zip, images1024x1024.zip or their "
            "folder) in data.path, or a mirror in data.url: the official Google Drive host is quota-limited and serves "
            "files one by one (https://github.com/NVlabs/ffhq-dataset)",
            at="path",
        )
    if base is not None and d.path and d.source in ("folder", "ffhq", "animals10"):
        path = resolve(d.path, base)
        if not path.exists():
            raise fail("path_missing", f"{d.path} does not exist", at="path")
        if d.source == "folder" and not path.is_dir():
            raise fail("path_not_folder", f"{d.path} is not a folder", at="path")


def check_url(url: str, base: Path | None) -> None:
    from urllib.parse import urlparse
    from urllib.request import url2pathname

    parsed = urlparse(url)
    if parsed.scheme not in URL_SCHEMES or not (parsed.netloc or parsed.scheme == "file") or not parsed.path:
        raise fail("url", f"expected an http://, https:// or file:/// URL of an archive, got {url!r}", at="url")
    if parsed.scheme == "file" and base is not None and not Path(url2pathname(parsed.path)).is_file():
        raise fail("path_missing", f"{url} does not exist", at="url")


def check_split(s: SplitParams) -> None:
    for name, value in (("train", s.train), ("test", s.test)):
        if value >= 1 and value != int(value):
            raise fail("whole_count", f"a count must be a whole number, got {value}", at=name)
    if (s.train < 1) != (s.test < 1):
        message = f"give both as fractions or both as counts, got {s.train} and {s.test}"
        raise fail("split_kinds", message, label="split.train/split.test")
    if s.train < 1 and s.train + s.test > 1 + 1e-9:
        raise fail("split_sum", f"fractions add up to {s.train + s.test:g} > 1", label="split.train + split.test")


def check_occlusion(o: OcclusionParams, base: Path | None) -> None:
    """What each shape takes; the rules that need the image size are `check_occlusion_fits`."""
    if o.shape not in BOX_SHAPES:
        if o.count != 1:
            raise fail("box_only", f"applies to square and rectangle shapes, not {o.shape} (got {o.count}; leave it at 1)", at="count")
        if o.position != "random":
            raise fail(
                "box_only", f"'{o.position}' places one box; it applies to square and rectangle shapes, not {o.shape}", at="position"
            )
    if o.position == "center" and o.count != 1:
        raise fail("one_box", f"'center' places one box, but occlusion.count is {o.count}", at="position")
    if o.ratio_of == "side" and o.shape != "square":
        message = f"'side' is the study's rule for squares; occlusion.shape {o.shape} takes ratio_of: area"
        raise fail("squares_only", message, at="ratio_of")
    if o.shape == "files":
        if not o.path:
            raise fail("required", "required when occlusion.shape is 'files' (a folder or archive of mask images)", at="path")
        if base is not None and not resolve(o.path, base).exists():
            raise fail("path_missing", f"{o.path} does not exist", at="path")


def check_occlusion_fits(o: OcclusionParams, size: int) -> None:
    """Boxes that fit the image without overlap, strokes that can reach the ratio (at prepare.size)."""
    where = {"label": "occlusion.ratio"}
    if o.shape in BOX_SHAPES:
        side = square_side(size, o.ratio, o.ratio_of)
        if side < 1:
            raise fail("empty_box", f"{o.ratio} of the {o.ratio_of} gives an empty square at {size} px", **where)
        fits = (size // side) ** 2
        if not o.overlap and o.count > fits:
            what = "squares" if o.shape == "square" else "boxes the area of squares"
            message = (
                f"{o.count} {what} of {side}x{side} px cannot fit without overlap "
                f"in {size}x{size} px (at most {fits}); lower the count or ratio, or set occlusion.overlap: true"
            )
            raise fail("boxes_fit", message, label="occlusion.count")
    if o.shape in ("strokes", "mixed"):
        # Drawn lazily: the brush's geometry needs numpy and OpenCV, and box shapes never ask.
        from vaeinpaint.params.strokes import reachable_share

        reach = reachable_share(size, size, o)
        if reach < o.ratio - 0.01:
            message = (
                f"strokes reach only {reach:.2f} of a {size}x{size} image on average with occlusion.strokes "
                f"{o.strokes}, stroke_vertices {o.stroke_vertices}, stroke_width {o.stroke_width}; lower the ratio or raise those"
            )
            raise fail("strokes_reach", message, **where)


def check_arch(arch: str, size: int, color: str) -> None:
    if arch == "paper" and size != 100:
        raise fail("paper_size", f"'paper' is defined for 100x100 images, but prepare.size is {size}", label="model.arch")
    if arch == "paper" and color != "gray":
        message = f"'paper' takes gray images only, but prepare.color is {color!r} (use model.arch: inpaint)"
        raise fail("paper_color", message, label="model.arch")


def check_rendezvous(nodes: int, endpoint: str) -> None:
    if nodes > 1 and not endpoint:
        message = "required when train.nodes > 1 (host:port of a node every node can reach, e.g. node0:29400)"
        raise fail("required", message, at="rdzv_endpoint")
    if endpoint:
        host, _, port = endpoint.rpartition(":")
        if not host or not port.isdigit() or not 0 < int(port) < 65536:
            raise fail("host_port", f"expected host:port (e.g. node0:29400), got {endpoint!r}", at="rdzv_endpoint")


def check_model_spec(at: str, spec: str, base: Path | None) -> None:
    """A model spec: empty, a checkpoint file, or a runs:/ or models:/ URI (checked when used)."""
    if not spec or spec.startswith(("runs:/", "models:/")):
        return
    if "://" in spec or spec.startswith(("runs:", "models:")):
        expected = "expected a checkpoint path, runs:/RUN_ID/model, models:/NAME@ALIAS or models:/NAME/VERSION"
        raise fail("model_spec", f"{expected}, got {spec!r}", at=at)
    if base is not None and not model_path(spec, base).is_file():
        raise fail("path_missing", f"{spec} does not exist", at=at)


def square_side(size: int, ratio: float, ratio_of: str, width: int | None = None) -> int:
    """Side in pixels of one occluding square on a size x size image (or size high, `width` wide).

    `area`: the square covers `ratio` of the image area (0.2 at 100 px -> 45 px).
    `side`: its side is `ratio` of the image's (shorter) side, as in the study's published code
    (0.2 at 100 px -> 20 px, i.e. 4% of the area).
    """
    height, width = size, size if width is None else width
    if ratio_of == "area":
        return int(round(math.sqrt(ratio * height * width)))
    return int(round(ratio * min(height, width)))
