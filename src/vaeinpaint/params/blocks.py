"""One pydantic model per block of params.yaml, and `Params` holding them: the defaults live here only.

Field types and bounds are checked by pydantic; rules between fields of a block are the
blocks' `model_validator`s (the longer ones, `check_*`, at the end of this file), rules across blocks (occlusion against prepare.size, the paper
arch against prepare.size and colour) are `Params`'. Rules that look at files run only when
the validation context says so: `Params.model_validate(raw, context={"check_paths": True,
"base": root})`; without a context nothing on disk is looked at.
"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Any

from pydantic import BaseModel, ConfigDict, Field, ValidationInfo, model_validator

from vaeinpaint.params import rules
from vaeinpaint.params.fields import (
    BOX_SHAPES,
    SIZES,
    Arch,
    AugmentText,
    Baselines,
    BatchSize,
    Color,
    ContextKind,
    Device,
    FfhqVariant,
    Fit,
    Flag,
    Head,
    Integer,
    Number,
    Position,
    Precision,
    Prior,
    RatioOf,
    KlWeight,
    Samples,
    Says,
    Shape,
    Source,
    Text,
    TrainMasks,
    fail,
)
from vaeinpaint.params.rules import HEX, check_url, resolve, square_side

Positive = Annotated[Integer, Field(gt=0)]
Count = Annotated[Integer, Field(ge=0)]  # 0 means none, or all, as the field says
AtLeastOne = Annotated[Integer, Field(ge=1)]
Rate = Annotated[Number, Field(gt=0)]
Weight = Annotated[Number, Field(ge=0)]
Fraction = Annotated[Number, Field(gt=0, lt=1)]
# `Says`: the words the bound's message carries besides the bounds themselves.
Aspect = Annotated[Number, Field(ge=1), Says(note="(the widest width / height of a rectangle)")]
StrokeWidth = Annotated[Number, Field(gt=0, le=1), Says(note="(a share of the image's shorter side)")]
Decay = Annotated[Number, Field(ge=0, lt=1), Says(lead="the moving average's decay", note="(0: off)")]


class Block(BaseModel):
    """A params block: unknown keys refused, values frozen, `key:` left empty means the default."""

    # protected_namespaces=(): `Params.model` is the model block, not pydantic's `model_` API.
    model_config = ConfigDict(extra="forbid", frozen=True, protected_namespaces=())

    @model_validator(mode="before")
    @classmethod
    def _empty_is_default(cls, data: Any) -> Any:
        # YAML reads `ratio:` with nothing after it as None: the param was left at its default.
        if isinstance(data, dict):
            return {key: value for key, value in data.items() if value is not None}
        return data


class DataParams(Block):
    source: Source = "builtin"
    path: Text = ""  # folder source; local archive or folder for ffhq / animals10
    url: Text = ""  # url source (http, https, file), or a mirror for ffhq / animals10
    sha256: Text = ""  # required for url; optional (checked when given) for ffhq / animals10
    variant: FfhqVariant = "thumbnails128"  # ffhq only
    limit: Count = 0  # 0: no cap; else this many images, picked by `seed`
    builtin_count: Positive = 1600
    seed: Integer = 0

    @model_validator(mode="after")
    def _source_needs(self, info: ValidationInfo) -> DataParams:
        check_data(self, rules.path_base(info))
        return self


class PrepareParams(Block):
    size: Annotated[Integer, Field(ge=SIZES[0], le=SIZES[1]), Says(note="pixels")] = 100
    fit: Fit = "stretch"
    color: Color = "gray"  # gray: uint8 [N, S, S] (the study); rgb: uint8 [N, S, S, 3]
    workers: Count = 0  # 0: all cores


class SplitParams(Block):
    train: Annotated[Number, Field(gt=0)] = 0.9  # a fraction (< 1) or a count (>= 1)
    test: Annotated[Number, Field(gt=0)] = 0.1
    seed: Integer = 0

    @model_validator(mode="after")
    def _fractions_or_counts(self) -> SplitParams:
        check_split(self)
        return self


class OcclusionParams(Block):
    shape: Shape = "square"
    # boxes: each box's share (of the area, or side with ratio_of); strokes, mixed: the hole's share
    ratio: Fraction = 0.2
    count: AtLeastOne = 1  # boxes per image
    ratio_of: RatioOf = "area"  # squares: area | side (the study's code)
    overlap: Flag = False  # boxes may cover each other
    position: Position = "random"  # random | center (one centred box)
    aspect: Aspect = 2.0  # rectangles: width / height within [1 / aspect, aspect]
    stroke_width: StrokeWidth = 0.1  # strokes: mean brush width
    stroke_vertices: Annotated[Integer, Field(ge=2)] = 12  # strokes: at most this many vertices per stroke
    strokes: AtLeastOne = 12  # strokes: at most this many strokes (drawing stops at the target share)
    path: Text = ""  # files: a folder or archive of mask images (white = missing)
    seed: Integer = 0

    @model_validator(mode="after")
    def _shape_takes(self, info: ValidationInfo) -> OcclusionParams:
        check_occlusion(self, rules.path_base(info))
        return self


class ModelParams(Block):
    arch: Arch = "inpaint"
    width: Positive = 24  # inpaint: channels of the first block
    latent_channels: Positive = 16  # inpaint: channels of the spatial latent
    skips: Flag = True  # inpaint: skip connections from encoder to decoder
    mask_input: Flag = True  # inpaint: the mask as an input channel
    head: Head = "shuffle"  # inpaint: the last step to full resolution, shuffle | transpose (checkpoints before it)
    context: Count = 0  # inpaint: residual context blocks at 1/4 resolution in the decoder
    context_kind: ContextKind = "dilated"  # inpaint: dilated (GLCIC, DeepFill) | fourier (LaMa's fast Fourier convolution)
    attention: Flag = False  # inpaint: self-attention at 1/8 resolution in the decoder
    # inpaint: standard (KL to N(0, I)) | learned (a prior network on the visible pixels, a
    # posterior on the whole image in training, KL(posterior || prior); issue 21)
    prior: Prior = "standard"
    fc_width: Positive = 8000  # paper: width of the fully connected layers
    latent_dim: Positive = 1500  # paper: size of the latent vector

    @model_validator(mode="after")
    def _prior_needs_inpaint(self) -> ModelParams:
        rules.check_prior(self.prior, self.arch)
        return self


class TrainParams(Block):
    device: Device = "auto"
    precision: Precision = "auto"  # auto: bf16 where the hardware has it natively, else fp16 + loss scaling on CUDA, fp32 on CPU
    epochs: Positive = 30
    batch_size: BatchSize = "auto"  # global; auto: 32 on a CPU, 256 per process on CUDA with lr scaled (modeling.setup)
    lr: Rate = 2e-3  # with batch_size auto: the rate at batch 32, scaled by sqrt(batch / 32)
    weight_decay: Weight = 0.0
    # beta, relative to the per-pixel reconstruction; auto: 0.001 with the standard prior (the
    # study's reproduction), 30 with a learned one (`rules.resolve_kl_weight`)
    kl_weight: KlWeight = "auto"
    hole_weight: Weight = 6.0
    ssim_weight: Weight = 0.0
    # model.prior learned only: nats per latent dimension (batch mean) the posterior may spend
    # before the KL pulls it towards the prior (free bits; 0: off)
    free_bits: Weight = 0.0
    # model.prior learned only: weight of the generative path's reconstruction, the decoder
    # on the prior's mean (what evaluate scores), beside the posterior's (0: off)
    generative_weight: Weight = 1.0
    masks: TrainMasks = "random"
    val_fraction: Annotated[Number, Field(ge=0, lt=0.5)] = 0.05
    seed: Integer = 0
    max_minutes: Weight = 0.0  # 0: no time budget
    gpus: AtLeastOne = 1  # processes (GPUs) per node
    nodes: AtLeastOne = 1  # machines, each running `gpus` processes
    rdzv_endpoint: Text = ""  # host:port where the nodes meet (torchrun's c10d rendezvous); needed when nodes > 1
    sync_bn: Flag = False  # SyncBatchNorm across processes (CUDA, several processes)
    compile: Flag = False
    augment: AugmentText = "none"  # none | flip | crop | flip+crop (a list [flip, crop] is read as flip+crop)
    # keep the training set on the device if it fits in this share of its free memory
    resident_fraction: Annotated[Number, Field(gt=0, le=1)] = 0.5
    image_every: Count = 5  # MLflow: log restored held-out images every N epochs (0: never)
    # decay of the weights' moving average that is evaluated and saved (0: off, the trained weights)
    ema: Decay = 0.999
    probe_points: Count = 20  # test quality measured this many times over the schedule (0: never): metrics/quality_by_minute.csv
    probe_images: Positive = 200  # test images each probe scores (evenly spaced over the test set)
    resume_minutes: Weight = 2.0  # a resume point on disk at most this often, and at the last epoch (0: after every epoch)

    @model_validator(mode="after")
    def _nodes_meet(self) -> TrainParams:
        rules.check_rendezvous(self.nodes, self.rdzv_endpoint)
        return self


class BaselinesParams(Block):
    methods: Baselines = ("corrupted", "biharmonic", "telea")
    train_limit: Count = 500  # biharmonic is slow: score at most this many train images
    workers: Count = 0


class EvaluateParams(Block):
    batch_size: Positive = 256
    grid_images: Count = 8
    # K completions per test image drawn from the latent for the diversity and realism figures
    # (< 2: off); auto: 4, or 8 for a model with a learned prior (`resolve_samples`)
    samples: Samples = "auto"
    model: Text = ""  # "": the pipeline's checkpoint; else a checkpoint path, runs:/..., models:/NAME@ALIAS or models:/NAME/VERSION

    @model_validator(mode="after")
    def _model_exists(self, info: ValidationInfo) -> EvaluateParams:
        rules.check_model_spec("model", self.model, rules.path_base(info))
        return self


class Params(BaseModel):
    """All of params.yaml. Blocks left out take their defaults."""

    model_config = ConfigDict(extra="forbid", frozen=True, protected_namespaces=())

    data: DataParams = Field(default_factory=DataParams)
    prepare: PrepareParams = Field(default_factory=PrepareParams)
    split: SplitParams = Field(default_factory=SplitParams)
    occlusion: OcclusionParams = Field(default_factory=OcclusionParams)
    model: ModelParams = Field(default_factory=ModelParams)
    train: TrainParams = Field(default_factory=TrainParams)
    baselines: BaselinesParams = Field(default_factory=BaselinesParams)
    evaluate: EvaluateParams = Field(default_factory=EvaluateParams)

    @model_validator(mode="before")
    @classmethod
    def _blocks_are_mappings(cls, data: Any) -> Any:
        if not isinstance(data, dict):
            return data
        blocks = dict(data)
        for name, block in data.items():
            if name not in cls.model_fields:
                continue  # refused as an unknown block by extra="forbid"
            if not block:
                blocks[name] = {}  # `occlusion:` with nothing under it: all defaults
            elif not isinstance(block, (dict, BaseModel)):
                raise fail("mapping_type", f"expected a mapping, got {block!r}", at=name)
        return blocks

    @model_validator(mode="after")
    def _blocks_agree(self) -> Params:
        check_occlusion_fits(self.occlusion, self.prepare.size)
        rules.check_arch(self.model.arch, self.prepare.size, self.prepare.color)
        return self

    def flat(self) -> dict[str, Any]:
        """Every param as `block.name` -> value (what MLflow logs)."""
        return flatten(self.model_dump())


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


# The blocks' own rules (their model validators call them), apart from the models for reading.


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


def check_split(s: SplitParams) -> None:
    for name, value in (("train", s.train), ("test", s.test)):
        if value >= 1 and value != int(value):
            raise fail("whole_count", f"a count must be a whole number, got {value}", at=name)
    if (s.train < 1) != (s.test < 1):
        message = f"give both as fractions or both as counts, got {s.train} and {s.test}"
        raise fail("split_kinds", message, label="split.train/split.test")
    if s.train < 1 and s.train + s.test > 1 + 1e-9:
        raise fail("split_sum", f"fractions add up to {s.train + s.test:g} > 1", label="split.train + split.test")


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
