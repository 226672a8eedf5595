"""params.yaml, parsed and validated in one place.

Every stage calls `load_params()` before doing any work, so a bad value fails
fast with one line naming the param (`occlusion.ratio: must be in (0, 1), got 1.5`)
and nothing is written. Checks that need the data (split sizes against the number
of images) live here too, as functions the stages call with what they know.
"""

from __future__ import annotations

import dataclasses
import math
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from vaeinpaint.errors import ParamError

SOURCES = ("builtin", "folder", "url", "ffhq", "animals10")
FFHQ_VARIANTS = ("thumbnails128", "images1024")
URL_SCHEMES = ("http", "https", "file")
FITS = ("stretch", "center-crop")
COLORS = ("gray", "rgb")
SIZES = (32, 512)  # prepare.size range of the default model (its four stride-2 stages take any size in it)
AUGMENTS = ("flip", "crop")  # train.augment's operations, in the order they are applied
RATIO_OF = ("area", "side")
SHAPES = ("square", "rectangle", "strokes", "mixed", "files")
BOX_SHAPES = ("square", "rectangle")  # what occlusion.count, overlap and position apply to
POSITIONS = ("random", "center")
ARCHS = ("inpaint", "paper")
HEADS = ("shuffle", "transpose")  # model.head: how the inpaint decoder reaches full resolution
CONTEXT_KINDS = ("dilated", "fourier")  # model.context_kind
DEVICES = ("auto", "cpu", "cuda")
PRECISIONS = ("auto", "fp32", "bf16", "fp16")
TRAIN_MASKS = ("random", "fixed")
BASELINES = ("corrupted", "biharmonic", "telea")


@dataclass(frozen=True)
class DataParams:
    source: str = "builtin"
    path: str = ""  # folder source; local archive or folder for ffhq / animals10
    url: str = ""  # url source (http, https, file), or a mirror for ffhq / animals10
    sha256: str = ""  # required for url; optional (checked when given) for ffhq / animals10
    variant: str = "thumbnails128"  # ffhq only
    limit: int = 0  # 0: no cap; else this many images, picked by `seed`
    builtin_count: int = 1600
    seed: int = 0


@dataclass(frozen=True)
class PrepareParams:
    size: int = 100
    fit: str = "stretch"
    color: str = "gray"  # gray: uint8 [N, S, S] (the study); rgb: uint8 [N, S, S, 3]
    workers: int = 0  # 0: all cores


@dataclass(frozen=True)
class SplitParams:
    train: float = 0.9  # a fraction (< 1) or a count (>= 1)
    test: float = 0.1
    seed: int = 0


@dataclass(frozen=True)
class OcclusionParams:
    shape: str = "square"  # square | rectangle | strokes | mixed | files
    ratio: float = 0.2  # boxes: each box's share (of the area, or side with ratio_of); strokes, mixed: the hole's share
    count: int = 1  # boxes per image
    ratio_of: str = "area"  # squares: area | side (the study's code)
    overlap: bool = False  # boxes may cover each other
    position: str = "random"  # random | center (one centred box)
    aspect: float = 2.0  # rectangles: width / height within [1 / aspect, aspect]
    stroke_width: float = 0.1  # strokes: mean brush width, share of the image's shorter side
    stroke_vertices: int = 12  # strokes: at most this many vertices per stroke
    strokes: int = 12  # strokes: at most this many strokes (drawing stops at the target share)
    path: str = ""  # files: a folder or archive of mask images (white = missing)
    seed: int = 0


@dataclass(frozen=True)
class ModelParams:
    arch: str = "inpaint"
    width: int = 24  # inpaint: channels of the first block
    latent_channels: int = 16  # inpaint: channels of the spatial latent
    skips: bool = True  # inpaint: skip connections from encoder to decoder
    mask_input: bool = True  # inpaint: the mask as an input channel
    head: str = "shuffle"  # inpaint: the last step to full resolution, shuffle | transpose (checkpoints before it)
    context: int = 0  # inpaint: residual context blocks at 1/4 resolution in the decoder
    context_kind: str = "dilated"  # inpaint: dilated (GLCIC, DeepFill) | fourier (LaMa's fast Fourier convolution)
    attention: bool = False  # inpaint: self-attention at 1/8 resolution in the decoder
    fc_width: int = 8000  # paper: width of the fully connected layers
    latent_dim: int = 1500  # paper: size of the latent vector


@dataclass(frozen=True)
class TrainParams:
    device: str = "auto"
    precision: str = "auto"  # auto: bf16 where the hardware has it natively, else fp16 + loss scaling on CUDA, fp32 on CPU
    epochs: int = 30
    batch_size: int = 32
    lr: float = 2e-3
    weight_decay: float = 0.0
    kl_weight: float = 1e-3
    hole_weight: float = 6.0
    ssim_weight: float = 0.0
    masks: str = "random"
    val_fraction: float = 0.05
    seed: int = 0
    max_minutes: float = 0.0  # 0: no time budget
    gpus: int = 1  # processes (GPUs) per node
    nodes: int = 1  # machines, each running `gpus` processes
    rdzv_endpoint: str = ""  # host:port where the nodes meet (torchrun's c10d rendezvous); needed when nodes > 1
    sync_bn: bool = False  # SyncBatchNorm across processes (CUDA, several processes)
    compile: bool = False
    augment: str = "none"  # none | flip | crop | flip+crop (a list [flip, crop] is read as flip+crop)
    resident_fraction: float = 0.5  # keep the training set on the device if it fits in this share of its free memory
    image_every: int = 5  # MLflow: log restored held-out images every N epochs (0: never)
    ema: float = 0.999  # decay of the weights' moving average that is evaluated and saved (0: off, the trained weights)
    probe_points: int = 20  # test quality measured this many times over the schedule (0: never): metrics/quality_by_minute.csv
    probe_images: int = 200  # test images each probe scores (evenly spaced over the test set)


@dataclass(frozen=True)
class BaselinesParams:
    methods: tuple[str, ...] = BASELINES
    train_limit: int = 500  # biharmonic is slow: score at most this many train images
    workers: int = 0


@dataclass(frozen=True)
class EvaluateParams:
    batch_size: int = 256
    grid_images: int = 8
    samples: int = 4  # K completions per test image drawn from the latent for the diversity figures (< 2: off)
    model: str = ""  # "": the pipeline's checkpoint; else a checkpoint path, runs:/..., models:/NAME@ALIAS or models:/NAME/VERSION


@dataclass(frozen=True)
class Params:
    data: DataParams = field(default_factory=DataParams)
    prepare: PrepareParams = field(default_factory=PrepareParams)
    split: SplitParams = field(default_factory=SplitParams)
    occlusion: OcclusionParams = field(default_factory=OcclusionParams)
    model: ModelParams = field(default_factory=ModelParams)
    train: TrainParams = field(default_factory=TrainParams)
    baselines: BaselinesParams = field(default_factory=BaselinesParams)
    evaluate: EvaluateParams = field(default_factory=EvaluateParams)

    def flat(self) -> dict[str, Any]:
        """Every param as `block.name` -> value (what MLflow logs)."""
        return flatten(dataclasses.asdict(self))


def flatten(tree: dict[str, Any], prefix: str = "") -> dict[str, Any]:
    flat: dict[str, Any] = {}
    for key, value in tree.items():
        name = f"{prefix}{key}"
        if isinstance(value, dict):
            flat.update(flatten(value, name + "."))
        elif isinstance(value, (list, tuple)):
            flat[name] = ",".join(str(v) for v in value)
        else:
            flat[name] = value
    return flat


def load_params(path: str | Path = "params.yaml", *, check_paths: bool = True, base: Path | None = None) -> Params:
    """Read params.yaml, fill defaults, validate; raise ParamError on the first problem.

    Relative paths in it (`data.path`) are taken from `base`, by default the project root
    (not the working directory, which for a queued experiment is a temporary copy)."""
    from vaeinpaint.paths import project_root

    path = Path(path)
    try:
        raw = yaml.safe_load(path.read_text()) or {}
    except FileNotFoundError:
        raise ParamError(f"{path}: params file not found") from None
    except yaml.YAMLError as exc:
        raise ParamError(f"{path}: not valid YAML ({exc.__class__.__name__})") from None
    if not isinstance(raw, dict):
        raise ParamError(f"{path}: expected a mapping of param blocks")
    params = from_dict(raw)
    validate(params, check_paths=check_paths, base=project_root() if base is None else base)
    return params


def from_dict(raw: dict[str, Any]) -> Params:
    blocks = {}
    for f in dataclasses.fields(Params):
        block_raw = raw.get(f.name) or {}
        if not isinstance(block_raw, dict):
            raise ParamError(f"{f.name}: expected a mapping, got {block_raw!r}")
        blocks[f.name] = _build(f.name, f.default_factory, block_raw)  # type: ignore[arg-type]
    return Params(**blocks)


def _build(block: str, cls: type, raw: dict[str, Any]) -> Any:
    known = {f.name: f for f in dataclasses.fields(cls)}
    for key in raw:
        if key not in known:
            raise ParamError(f"{block}.{key}: unknown param (known: {', '.join(known)})")
    values = {}
    defaults = cls()
    for name in known:
        default = getattr(defaults, name)
        value = raw.get(name, default)
        if f"{block}.{name}" == "train.augment":
            value = augment_value(value)
        values[name] = _coerce(f"{block}.{name}", value, default)
    return cls(**values)


def augment_value(value: Any) -> str:
    """`train.augment` as one canonical string: `none`, or its operations joined by `+` in
    the order they are applied (`flip+crop`), whether it was written `flip+crop`,
    `[crop, flip]` or `flip,crop`."""
    if value is None:
        return "none"
    if isinstance(value, str):
        parts = [v.strip() for v in value.replace(",", "+").split("+")]
    elif isinstance(value, (list, tuple)):
        parts = [str(v).strip() for v in value]
    else:
        raise ParamError(f"train.augment: expected none, flip, crop, flip+crop or a list of them, got {value!r}")
    ops = {p for p in parts if p and p != "none"}
    unknown = sorted(ops - set(AUGMENTS))
    if unknown:
        raise ParamError(
            f"train.augment: unknown value {unknown[0]!r} (expected none, flip, crop, flip+crop or a list of {', '.join(AUGMENTS)})"
        )
    return "+".join(op for op in AUGMENTS if op in ops) or "none"


def augment_ops(value: str) -> tuple[str, ...]:
    """The operations of a (canonical) `train.augment`: () for none, ("flip", "crop") for flip+crop."""
    return tuple(op for op in value.split("+") if op in AUGMENTS)


def _coerce(name: str, value: Any, default: Any) -> Any:
    """Coerce `value` to the type of `default`; YAML gives us ints, floats, strings."""
    if value is None:
        value = default
    if isinstance(default, bool):
        if isinstance(value, bool):
            return value
        raise ParamError(f"{name}: expected true or false, got {value!r}")
    if isinstance(default, int):
        if isinstance(value, bool) or not isinstance(value, (int, float)) or value != int(value):
            raise ParamError(f"{name}: expected an integer, got {value!r}")
        return int(value)
    if isinstance(default, float):
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            raise ParamError(f"{name}: expected a number, got {value!r}")
        if not math.isfinite(value):
            raise ParamError(f"{name}: expected a finite number, got {value!r}")
        return float(value)
    if isinstance(default, tuple):
        if isinstance(value, str):
            value = [v.strip() for v in value.split(",") if v.strip()]
        if not isinstance(value, (list, tuple)):
            raise ParamError(f"{name}: expected a list, got {value!r}")
        return tuple(str(v) for v in value)
    if isinstance(default, str):
        if not isinstance(value, (str, int, float)) or isinstance(value, bool):
            raise ParamError(f"{name}: expected a string, got {value!r}")
        return str(value)
    raise AssertionError(f"unhandled param type for {name}")


def _one_of(name: str, value: str, allowed: tuple[str, ...]) -> None:
    if value not in allowed:
        raise ParamError(f"{name}: unknown value {value!r} (expected one of: {', '.join(allowed)})")


def _positive(name: str, value: float) -> None:
    if value <= 0:
        raise ParamError(f"{name}: must be > 0, got {value}")


def _non_negative(name: str, value: float) -> None:
    if value < 0:
        raise ParamError(f"{name}: must be >= 0, got {value}")


def _check_url(url: str, check_paths: bool) -> None:
    from urllib.parse import urlparse
    from urllib.request import url2pathname

    parsed = urlparse(url)
    if parsed.scheme not in URL_SCHEMES or not (parsed.netloc or parsed.scheme == "file") or not parsed.path:
        raise ParamError(f"data.url: expected an http://, https:// or file:/// URL of an archive, got {url!r}")
    if parsed.scheme == "file" and check_paths and not Path(url2pathname(parsed.path)).is_file():
        raise ParamError(f"data.url: {url} does not exist")


def validate(p: Params, *, check_paths: bool = True, base: Path = Path(".")) -> None:
    d = p.data
    _one_of("data.source", d.source, SOURCES)
    _one_of("data.variant", d.variant, FFHQ_VARIANTS)
    _non_negative("data.limit", d.limit)
    _positive("data.builtin_count", d.builtin_count)
    if d.source == "folder" and not d.path:
        raise ParamError("data.path: required when data.source is 'folder'")
    if d.source == "url":
        if not d.url:
            raise ParamError("data.url: required when data.source is 'url'")
        if not d.sha256:
            raise ParamError("data.sha256: required when data.source is 'url' (an unverified download is not reproducible)")
    if d.sha256 and (len(d.sha256) != 64 or any(c not in "0123456789abcdefABCDEF" for c in d.sha256)):
        raise ParamError(f"data.sha256: expected 64 hex digits, got {d.sha256!r}")
    if d.url and d.source in ("url", "ffhq", "animals10"):
        _check_url(d.url, check_paths)
    if d.source == "ffhq" and not (d.path or d.url):
        raise ParamError(
            "data.path: the ffhq source needs a local copy of FFHQ (thumbnails128x128.zip, images1024x1024.zip or their "
            "folder) in data.path, or a mirror in data.url: the official Google Drive host is quota-limited and serves "
            "files one by one (https://github.com/NVlabs/ffhq-dataset)"
        )
    if check_paths and d.path and d.source in ("folder", "ffhq", "animals10"):
        path = Path(d.path).expanduser()
        if not path.is_absolute():
            path = base / path
        if not path.exists():
            raise ParamError(f"data.path: {d.path} does not exist")
        if d.source == "folder" and not path.is_dir():
            raise ParamError(f"data.path: {d.path} is not a folder")

    _one_of("prepare.fit", p.prepare.fit, FITS)
    _one_of("prepare.color", p.prepare.color, COLORS)
    if not SIZES[0] <= p.prepare.size <= SIZES[1]:
        raise ParamError(f"prepare.size: must be between {SIZES[0]} and {SIZES[1]} pixels, got {p.prepare.size}")
    _non_negative("prepare.workers", p.prepare.workers)

    s = p.split
    for name, value in (("split.train", s.train), ("split.test", s.test)):
        _positive(name, value)
        if value >= 1 and value != int(value):
            raise ParamError(f"{name}: a count must be a whole number, got {value}")
    if (s.train < 1) != (s.test < 1):
        raise ParamError(f"split.train/split.test: give both as fractions or both as counts, got {s.train} and {s.test}")
    if s.train < 1 and s.train + s.test > 1 + 1e-9:
        raise ParamError(f"split.train + split.test: fractions add up to {s.train + s.test:g} > 1")

    _check_occlusion(p.occlusion, p.prepare.size, check_paths, base)

    m = p.model
    _one_of("model.arch", m.arch, ARCHS)
    for name in ("width", "latent_channels", "fc_width", "latent_dim"):
        _positive(f"model.{name}", getattr(m, name))
    _one_of("model.head", m.head, HEADS)
    _one_of("model.context_kind", m.context_kind, CONTEXT_KINDS)
    _non_negative("model.context", m.context)
    if m.arch == "paper" and p.prepare.size != 100:
        raise ParamError(f"model.arch: 'paper' is defined for 100x100 images, but prepare.size is {p.prepare.size}")
    if m.arch == "paper" and p.prepare.color != "gray":
        raise ParamError(f"model.arch: 'paper' takes gray images only, but prepare.color is {p.prepare.color!r} (use model.arch: inpaint)")

    t = p.train
    _one_of("train.device", t.device, DEVICES)
    _one_of("train.precision", t.precision, PRECISIONS)
    _one_of("train.masks", t.masks, TRAIN_MASKS)
    _positive("train.epochs", t.epochs)
    _positive("train.batch_size", t.batch_size)
    _positive("train.lr", t.lr)
    for name in ("weight_decay", "kl_weight", "hole_weight", "ssim_weight", "max_minutes"):
        _non_negative(f"train.{name}", getattr(t, name))
    if not 0 <= t.val_fraction < 0.5:
        raise ParamError(f"train.val_fraction: must be in [0, 0.5), got {t.val_fraction}")
    if t.gpus < 1:
        raise ParamError(f"train.gpus: must be >= 1, got {t.gpus}")
    if not 0 < t.resident_fraction <= 1:
        raise ParamError(f"train.resident_fraction: must be in (0, 1], got {t.resident_fraction}")
    if t.nodes < 1:
        raise ParamError(f"train.nodes: must be >= 1, got {t.nodes}")
    if t.nodes > 1 and not t.rdzv_endpoint:
        raise ParamError("train.rdzv_endpoint: required when train.nodes > 1 (host:port of a node every node can reach, e.g. node0:29400)")
    if t.rdzv_endpoint:
        host, _, port = t.rdzv_endpoint.rpartition(":")
        if not host or not port.isdigit() or not 0 < int(port) < 65536:
            raise ParamError(f"train.rdzv_endpoint: expected host:port (e.g. node0:29400), got {t.rdzv_endpoint!r}")
    _non_negative("train.image_every", t.image_every)
    if not 0 <= t.ema < 1:
        raise ParamError(f"train.ema: the moving average's decay must be in [0, 1) (0: off), got {t.ema}")
    _non_negative("train.probe_points", t.probe_points)
    _positive("train.probe_images", t.probe_images)

    b = p.baselines
    for method in b.methods:
        _one_of("baselines.methods", method, BASELINES)
    _non_negative("baselines.train_limit", b.train_limit)
    _non_negative("baselines.workers", b.workers)

    _positive("evaluate.batch_size", p.evaluate.batch_size)
    _non_negative("evaluate.grid_images", p.evaluate.grid_images)
    _non_negative("evaluate.samples", p.evaluate.samples)
    _check_model("evaluate.model", p.evaluate.model, check_paths, base)


def _check_model(name: str, spec: str, check_paths: bool, base: Path) -> None:
    """A model spec: empty, a checkpoint file, or a runs:/ or models:/ URI (checked when used)."""
    if not spec or spec.startswith(("runs:/", "models:/")):
        return
    if "://" in spec or spec.startswith(("runs:", "models:")):
        raise ParamError(
            f"{name}: expected a checkpoint path, runs:/RUN_ID/model, models:/NAME@ALIAS or models:/NAME/VERSION, got {spec!r}"
        )
    if check_paths and not model_path(spec, base).is_file():
        raise ParamError(f"{name}: {spec} does not exist")


def model_path(spec: str, base: Path) -> Path:
    """A checkpoint path from params: relative ones are taken from the project root."""
    path = Path(spec).expanduser()
    return path if path.is_absolute() else base / path


def _check_occlusion(o: OcclusionParams, size: int, check_paths: bool, base: Path) -> None:
    _one_of("occlusion.shape", o.shape, SHAPES)
    _one_of("occlusion.ratio_of", o.ratio_of, RATIO_OF)
    _one_of("occlusion.position", o.position, POSITIONS)
    if not 0 < o.ratio < 1:
        raise ParamError(f"occlusion.ratio: must be in (0, 1), got {o.ratio}")
    if o.count < 1:
        raise ParamError(f"occlusion.count: must be >= 1, got {o.count}")
    if o.shape not in BOX_SHAPES:
        if o.count != 1:
            raise ParamError(f"occlusion.count: applies to square and rectangle shapes, not {o.shape} (got {o.count}; leave it at 1)")
        if o.position != "random":
            raise ParamError(f"occlusion.position: '{o.position}' places one box; it applies to square and rectangle shapes, not {o.shape}")
    if o.position == "center" and o.count != 1:
        raise ParamError(f"occlusion.position: 'center' places one box, but occlusion.count is {o.count}")
    if o.ratio_of == "side" and o.shape != "square":
        raise ParamError(f"occlusion.ratio_of: 'side' is the study's rule for squares; occlusion.shape {o.shape} takes ratio_of: area")
    if o.aspect < 1:
        raise ParamError(f"occlusion.aspect: must be >= 1 (the widest width / height of a rectangle), got {o.aspect}")
    if not 0 < o.stroke_width <= 1:
        raise ParamError(f"occlusion.stroke_width: must be in (0, 1] (a share of the image's shorter side), got {o.stroke_width}")
    if o.stroke_vertices < 2:
        raise ParamError(f"occlusion.stroke_vertices: must be >= 2, got {o.stroke_vertices}")
    if o.strokes < 1:
        raise ParamError(f"occlusion.strokes: must be >= 1, got {o.strokes}")
    if o.shape == "files":
        if not o.path:
            raise ParamError("occlusion.path: required when occlusion.shape is 'files' (a folder or archive of mask images)")
        path = Path(o.path).expanduser()
        if check_paths and not (path if path.is_absolute() else base / path).exists():
            raise ParamError(f"occlusion.path: {o.path} does not exist")
    if o.shape in BOX_SHAPES:
        side = square_side(size, o.ratio, o.ratio_of)
        if side < 1:
            raise ParamError(f"occlusion.ratio: {o.ratio} of the {o.ratio_of} gives an empty square at {size} px")
        if not o.overlap:
            fits = (size // side) ** 2
            if o.count > fits:
                what = "squares" if o.shape == "square" else "boxes the area of squares"
                raise ParamError(
                    f"occlusion.count: {o.count} {what} of {side}x{side} px cannot fit without overlap "
                    f"in {size}x{size} px (at most {fits}); lower the count or ratio, or set occlusion.overlap: true"
                )
    if o.shape in ("strokes", "mixed"):
        from vaeinpaint.masks.strokes import reachable_share

        reach = reachable_share(size, size, o)
        if reach < o.ratio - 0.01:
            raise ParamError(
                f"occlusion.ratio: strokes reach only {reach:.2f} of a {size}x{size} image on average with occlusion.strokes "
                f"{o.strokes}, stroke_vertices {o.stroke_vertices}, stroke_width {o.stroke_width}; lower the ratio or raise those"
            )


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


def split_sizes(split: SplitParams, n_images: int) -> tuple[int, int]:
    """(n_train, n_test) for `n_images`, or ParamError if the data is too small."""
    if split.train < 1:
        n_test = int(round(split.test * n_images))
        n_train = int(round(split.train * n_images))
        n_train = min(n_train, n_images - n_test)
    else:
        n_train, n_test = int(split.train), int(split.test)
        if n_train + n_test > n_images:
            raise ParamError(
                f"split.train + split.test: {n_train} + {n_test} = {n_train + n_test} images asked for, "
                f"but the prepared data has only {n_images}"
            )
    if n_test < 1 or n_train < 1:
        raise ParamError(f"split.train/split.test: {n_images} images give {n_train} train and {n_test} test; both need at least one")
    return n_train, n_test
