"""Rules on values that need no block to read: paths and URLs (and whether what they name
exists), the study's arch against the image size, the rendezvous endpoint, a model spec, and
the side of a square hole. The blocks' own rules (`blocks.py`) call them.

Each raises `fields.fail` with the param it is about (`at`), so the one error formatter names
it as it names a field pydantic checked.
"""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any

from pydantic import ValidationInfo

from vaeinpaint.params.fields import URL_SCHEMES, fail

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


def check_url(url: str, base: Path | None) -> None:
    from urllib.parse import urlparse
    from urllib.request import url2pathname

    parsed = urlparse(url)
    if parsed.scheme not in URL_SCHEMES or not (parsed.netloc or parsed.scheme == "file") or not parsed.path:
        raise fail("url", f"expected an http://, https:// or file:/// URL of an archive, got {url!r}", at="url")
    if parsed.scheme == "file" and base is not None and not Path(url2pathname(parsed.path)).is_file():
        raise fail("path_missing", f"{url} does not exist", at="url")


def check_arch(arch: str, size: int, color: str) -> None:
    if arch == "paper" and size != 100:
        raise fail("paper_size", f"'paper' is defined for 100x100 images, but prepare.size is {size}", label="model.arch")
    if arch == "paper" and color != "gray":
        message = f"'paper' takes gray images only, but prepare.color is {color!r} (use model.arch: inpaint)"
        raise fail("paper_color", message, label="model.arch")


def check_prior(prior: str, arch: str) -> None:
    if prior == "learned" and arch != "inpaint":
        message = f"'learned' needs model.arch: inpaint (the {arch} architecture has no prior network; use prior: standard)"
        raise fail("prior_arch", message, at="prior")


AUTO_SAMPLES = {"standard": 4, "learned": 8}  # evaluate.samples: auto, by the evaluated model's prior


def resolve_samples(samples: int | str, prior: str) -> int:
    """`evaluate.samples` for a model with `prior`: `auto` is 4 draws per test image, as
    before the learned prior existed, or 8 with a learned prior (whose draws are the point)."""
    return AUTO_SAMPLES.get(prior, AUTO_SAMPLES["standard"]) if samples == "auto" else int(samples)


# train.kl_weight: auto, by model.prior. The standard prior keeps the study reproduction's
# weight. A learned prior's KL(q || p) is what a draw of p must pay to land on what the
# posterior saw: at 0.001 (a nat costs 1e-7 of the loss) the posterior spends hundreds of nats
# and draws of p are noise; at 30 it keeps a few, so a handful of draws
# can cover them; at 100 it collapses (docs/model.md, the screen).
AUTO_KL_WEIGHT = {"standard": 1e-3, "learned": 30.0}


def resolve_kl_weight(kl_weight: float | str, prior: str) -> float:
    """`train.kl_weight` for a model with `prior`: `auto` is 0.001 (`standard`, as before the
    learned prior existed) or 30 (`learned`)."""
    return AUTO_KL_WEIGHT.get(prior, AUTO_KL_WEIGHT["standard"]) if kl_weight == "auto" else float(kl_weight)


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
