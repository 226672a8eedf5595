"""The mask generator: every shape's coverage and determinism, squares unchanged, sync-free training draws."""

import itertools

import numpy as np
import pytest
import torch
from torch.utils._python_dispatch import TorchDispatchMode

from vaeinpaint.masks import generator
from vaeinpaint.masks.bank import MaskBank
from vaeinpaint.masks.boxes import boxes_to_masks, draw_index, sample_boxes
from vaeinpaint.masks.generator import TrainingMasks, check_shares, draw, occlude
from vaeinpaint.masks.rectangles import sample_rectangles
from vaeinpaint.params import OcclusionParams

import _reference_boxes as reference
import _reference_sampler as sampler

IDS = [f"{i:016x}" for i in range(60)]
MANY = [f"{i:016x}" for i in range(1000, 1300)]  # enough images for a mean share to settle


def overlaps(a, b):
    """Do boxes (x, y, w, h) a and b share a pixel?"""
    return a[0] < b[0] + b[2] and b[0] < a[0] + a[2] and a[1] < b[1] + b[3] and b[1] < a[1] + a[3]


# --- squares: the study's masks, bit for bit --------------------------------------------

SQUARES = {
    "default": {},
    "two": {"count": 2},
    "three small": {"count": 3, "ratio": 0.1},
    "side rule": {"ratio_of": "side", "count": 3},
    "overlapping": {"count": 3, "overlap": True},
    "forty percent": {"ratio": 0.4},
}


@pytest.mark.parametrize("case", list(SQUARES))
def test_stored_squares_are_those_of_the_previous_sampler(case):
    params = OcclusionParams(**SQUARES[case])
    before, _ = reference.occlude(IDS, 100, params)
    assert np.array_equal(occlude(IDS, 100, params).masks, before)


@pytest.mark.parametrize("case", list(SQUARES))
def test_training_squares_on_the_cpu_are_those_of_the_previous_sampler(case):
    params = OcclusionParams(**SQUARES[case])
    old = reference.RandomMasks(100, params, seed=3, device=torch.device("cpu"))
    new = TrainingMasks(100, params, seed=3, device="cpu")
    for epoch in (0, 5):
        assert torch.equal(new.draw(64, new.for_epoch(epoch)), old.draw(64, old.for_epoch(epoch)))


def test_tight_packing_falls_back_to_the_grid_as_before():
    new = sample_boxes(12, 100, 33, 9, False, torch.Generator().manual_seed(0))  # nine 33 px squares fill 99 x 99
    old = reference.sample_boxes(12, 100, 33, 9, False, torch.Generator().manual_seed(0))
    assert torch.equal(new, old)
    masks = reference.boxes_to_masks(new, 100, 33)
    assert set(masks.sum(dim=(1, 2, 3)).tolist()) == {9 * 33 * 33}


def sampler_cases(seeds: int, sizes: tuple[int, ...]):
    """(seed, n, canvas, count, ratio, overlap): every combination where the boxes fit, but
    the tight packings' many slow rounds only on small canvases (their paths are the same)."""
    for seed, n, size, count, ratio, overlap in itertools.product(
        range(seeds), sizes, (32, (40, 64), 100), (1, 2, 3, 9), (0.02, 0.1, 0.2), (False, True)
    ):
        height, width = (size, size) if isinstance(size, int) else size
        side = int(round((ratio * height * width) ** 0.5))
        if max(height, width) > 32 and (count == 9 or (count == 3 and n > 6)):
            continue
        if overlap or count <= (height // side) * (width // side):
            yield seed, n, size, count, ratio, overlap


def same_boxes_as_before(shape: str, sync_free: bool, cases) -> int:
    """Compare the current samplers with the reference copy over `cases`; how many there were."""
    done = 0
    for seed, n, size, count, ratio, overlap in cases:
        height, width = (size, size) if isinstance(size, int) else size
        side = int(round((ratio * height * width) ** 0.5))
        new_gen, old_gen = torch.Generator().manual_seed(seed), torch.Generator().manual_seed(seed)
        if shape == "square":
            new = sample_boxes(n, size, side, count, overlap, new_gen, "cpu", sync_free)
            old = sampler.sample_boxes(n, size, side, count, overlap, old_gen, "cpu", sync_free)
        else:
            new = sample_rectangles(n, size, ratio, count, 2.0, overlap, new_gen, "cpu", sync_free, fallback_side=side)
            old = sampler.sample_rectangles(n, size, ratio, count, 2.0, overlap, old_gen, "cpu", sync_free, fallback_side=side)
        case = (seed, n, size, count, ratio, overlap)
        assert torch.equal(new, old), case
        assert torch.equal(new_gen.get_state(), old_gen.get_state()), case
        boxes = new if shape == "rectangle" else torch.cat([new, torch.full_like(new, side)], dim=-1)
        assert torch.equal(boxes_to_masks(boxes, size), sampler.boxes_to_masks(boxes, size)), case
        done += 1
    return done


# The occlude stage's stored masks are a reproducible output, and training on the CPU draws
# row by row too: the same boxes for every seed, count, size and packing, and the generator
# left in the same state (so every later draw of an epoch is the same too).


@pytest.mark.parametrize("sync_free", [False, True], ids=["row-by-row", "sync-free"])
@pytest.mark.parametrize("shape", ["square", "rectangle"])
def test_box_samplers_draw_exactly_what_they_drew_before_their_per_step_costs_were_cut(shape, sync_free):
    assert same_boxes_as_before(shape, sync_free, sampler_cases(seeds=1, sizes=(1, 6))) > 80


@pytest.mark.slow
@pytest.mark.parametrize("sync_free", [False, True], ids=["row-by-row", "sync-free"])
@pytest.mark.parametrize("shape", ["square", "rectangle"])
def test_box_samplers_draw_what_they_drew_before_over_many_seeds_and_batches(shape, sync_free):
    assert same_boxes_as_before(shape, sync_free, sampler_cases(seeds=4, sizes=(1, 6, 24))) > 400


def test_draw_index_is_torch_multinomial_without_its_host_check():
    """The squares stay bit-identical only while this holds: PyTorch draws one sample as argmax(w / Exp(1))."""
    weights = (torch.rand(40, 500, generator=torch.Generator().manual_seed(1)) > 0.7).float()
    expected = torch.multinomial(weights, 1, generator=torch.Generator().manual_seed(2)).squeeze(1)
    assert torch.equal(draw_index(weights, torch.Generator().manual_seed(2)), expected)


@pytest.mark.parametrize(
    "ratio, ratio_of, count, side",
    [(0.2, "area", 1, 45), (0.4, "area", 1, 63), (0.2, "area", 2, 45), (0.2, "side", 1, 20), (0.2, "side", 3, 20)],
)
def test_square_area_and_count(ratio, ratio_of, count, side):
    result = occlude(IDS, 100, OcclusionParams(ratio=ratio, ratio_of=ratio_of, count=count))
    assert result.masks.shape == (len(IDS), 100, 100) and result.masks.dtype == np.uint8
    # Squares never overlap, so every mask covers exactly count * side^2 pixels.
    assert set(result.masks.sum(axis=(1, 2)).tolist()) == {count * side * side}
    assert np.allclose(result.per_image["share"], count * side * side / 1e4)
    assert len(result.boxes) == len(IDS) * count and set(result.boxes["w"]) == {side}
    for _, group in result.boxes.groupby("id"):
        assert not any(overlaps(a, b) for a, b in itertools.combinations(group[["x", "y", "w", "h"]].to_numpy(), 2))


def test_overlap_allowed_can_overlap():
    masks = occlude(IDS, 100, OcclusionParams(ratio=0.2, count=3, overlap=True)).masks
    assert (masks.sum(axis=(1, 2)) < 3 * 45 * 45).any()


def test_boxes_table_rebuilds_the_masks():
    for params in (OcclusionParams(count=2), OcclusionParams(shape="rectangle", count=2, ratio=0.1), OcclusionParams(shape="mixed")):
        result = occlude(IDS[:8], 64, params)
        for i, image_id in enumerate(IDS[:8]):
            rebuilt = np.zeros((64, 64), np.uint8)
            for row in result.boxes[result.boxes["id"] == image_id].itertuples():
                rebuilt[row.y : row.y + row.h, row.x : row.x + row.w] = 1
            if result.per_image["kind"][i] != "strokes":
                assert np.array_equal(rebuilt, result.masks[i])


def test_squares_on_a_canvas_that_is_not_square():
    boxes = sample_boxes(200, (40, 90), 30, 2, False, torch.Generator().manual_seed(0))
    assert boxes[..., 0].max() <= 60 and boxes[..., 1].max() <= 10 and boxes.min() >= 0
    masks = boxes_to_masks(torch.cat([boxes, torch.full_like(boxes, 30)], dim=-1), (40, 90))
    assert masks.shape == (200, 1, 40, 90) and set(masks.sum(dim=(1, 2, 3)).tolist()) == {2 * 30 * 30}


# --- every shape: coverage and determinism -----------------------------------------------


@pytest.mark.parametrize("shape", ["rectangle", "strokes", "mixed"])
@pytest.mark.parametrize("ratio", [0.1, 0.25, 0.4])
def test_mean_hole_share_is_the_target(shape, ratio):
    shares = occlude(MANY, 64, OcclusionParams(shape=shape, ratio=ratio)).per_image["share"]
    assert abs(shares.mean() - ratio) < 0.02
    if shape == "strokes":  # each mask, not only the mean, lands near the target
        assert (shares - ratio).abs().max() < 0.1


@pytest.mark.parametrize(
    "params",
    [
        OcclusionParams(),
        OcclusionParams(shape="rectangle", count=2, ratio=0.1),
        OcclusionParams(shape="strokes", ratio=0.3),
        OcclusionParams(shape="mixed"),
        OcclusionParams(shape="rectangle", position="center"),
    ],
    ids=["square", "rectangle", "strokes", "mixed", "centred rectangle"],
)
def test_masks_are_deterministic_and_stay_when_images_are_added(params):
    a = occlude(IDS, 64, params)
    assert np.array_equal(a.masks, occlude(IDS, 64, params).masks)
    grown = occlude(["ffffffffffffffff"] + IDS[10:] + ["eeeeeeeeeeeeeeee"], 64, params)
    assert np.array_equal(a.masks[10:], grown.masks[1:-1])  # each image keeps its mask
    other = occlude(IDS, 64, OcclusionParams(**{**params.model_dump(), "seed": 9}))
    if params.position == "random":
        assert not np.array_equal(a.masks, other.masks)
    assert len({m.tobytes() for m in a.masks}) > len(IDS) // 2 or params.position == "center"


def test_rectangles_keep_their_aspect_and_area_and_never_overlap():
    params = OcclusionParams(shape="rectangle", ratio=0.12, count=2, aspect=2.5)
    result = occlude(MANY[:100], 80, params)
    w, h = result.boxes["w"].to_numpy(), result.boxes["h"].to_numpy()
    assert ((w / h) <= 2.5 + 0.1).all() and ((h / w) <= 2.5 + 0.1).all()
    assert (w / h).max() > 1.8 and (h / w).max() > 1.8  # both orientations, near the bound
    assert np.abs(w * h / (80 * 80) - 0.12).max() < 0.02
    assert ((result.boxes["x"] + w) <= 80).all() and ((result.boxes["y"] + h) <= 80).all()
    for _, group in result.boxes.groupby("id"):
        a, b = group[["x", "y", "w", "h"]].to_numpy()
        assert not overlaps(a, b)
    assert np.allclose(result.per_image["share"], result.masks.mean(axis=(1, 2)))


def test_a_rectangle_wider_than_the_image_is_cut_and_made_taller():
    boxes = sample_rectangles(300, (50, 200), 0.6, 1, 4.0, False, torch.Generator().manual_seed(0))
    w, h = boxes[..., 2], boxes[..., 3]
    assert (h <= 50).all() and (w <= 200).all()
    assert ((w * h).float() / (50 * 200) - 0.6).abs().max() < 0.03


def test_centred_boxes():
    square = draw(OcclusionParams(position="center"), 100, 100, "any")
    assert square.boxes.tolist() == [[27, 27, 45, 45]]
    rect = draw(OcclusionParams(shape="rectangle", position="center"), 60, 90, "x")
    x, y, w, h = rect.boxes[0]
    assert abs((90 - w) - 2 * x) <= 1 and abs((60 - h) - 2 * y) <= 1


def test_mixed_gives_strokes_and_rectangles_half_and_half():
    kinds = occlude(MANY, 48, OcclusionParams(shape="mixed")).per_image["kind"].value_counts()
    assert set(kinds.index) == {"strokes", "rectangle"}
    assert abs(kinds["strokes"] / len(MANY) - 0.5) < 0.1


def test_strokes_are_thick_free_form_lines():
    mask = draw(OcclusionParams(shape="strokes", ratio=0.2), 100, 100, "a").mask
    ys, xs = np.nonzero(mask)
    assert xs.max() - xs.min() > 30 or ys.max() - ys.min() > 30  # spread out, not a blob in a corner
    bbox_fill = mask.sum() / ((xs.max() - xs.min() + 1) * (ys.max() - ys.min() + 1))
    assert bbox_fill < 0.8  # not a box
    # Thick: most hole pixels have a hole pixel on both sides, horizontally or vertically.
    inner = (mask[1:-1, 1:-1] & mask[:-2, 1:-1] & mask[2:, 1:-1]) | (mask[1:-1, 1:-1] & mask[1:-1, :-2] & mask[1:-1, 2:])
    assert inner.sum() > 0.7 * mask[1:-1, 1:-1].sum()


def test_strokes_that_cannot_reach_the_ratio_are_refused():
    from vaeinpaint.errors import ParamError

    params = OcclusionParams(shape="strokes", ratio=0.5, strokes=1, stroke_vertices=3)
    result = {"train": occlude(IDS[:20], 48, params)}
    assert result["train"].per_image["share"].mean() < 0.3
    with pytest.raises(ParamError, match=r"^occlusion\.ratio: the strokes cover 0\.\d+ of the image on average, short of 0\.5"):
        check_shares(params, result)


def test_any_canvas_any_key():
    for shape in ("square", "rectangle", "strokes", "mixed"):
        drawn = draw(OcclusionParams(shape=shape, ratio=0.2), 37, 151, "photo")
        assert drawn.mask.shape == (37, 151) and abs(drawn.mask.mean() - 0.2) < 0.05
        assert np.array_equal(drawn.mask, draw(OcclusionParams(shape=shape, ratio=0.2), 37, 151, "photo").mask)


# --- training: fresh masks on the device, no host sync ----------------------------------

SYNCING = {"_local_scalar_dense", "item", "nonzero", "masked_select", "multinomial", "lift_fresh", "unique", "is_nonzero"}


class HostReads(TorchDispatchMode):
    """Records the ops that read tensor values back to the host: on a GPU each one waits for
    every queued kernel. Counts them on the CPU, with no GPU needed: `.item()`, `bool(t)` and
    `.tolist()` all go through `_local_scalar_dense`; a boolean mask index through `nonzero`;
    `torch.multinomial` checks its weights with `.item()` inside; a tensor built from Python
    values on a device is a host-to-device copy."""

    def __init__(self):
        super().__init__()
        self.seen: list[str] = []

    def __torch_dispatch__(self, func, types, args=(), kwargs=None):
        name = func.overloadpacket.__name__
        boolean_index = name in ("index", "index_put", "index_put_") and any(
            isinstance(t, torch.Tensor) and t.dtype == torch.bool for t in (args[1] if len(args) > 1 else [])
        )
        if name in SYNCING or boolean_index:
            self.seen.append(name)
        return func(*args, **(kwargs or {}))


def test_the_previous_square_sampler_reads_values_back_every_draw():
    """The check can fail: the sampler before this change synced on every training draw."""
    old = reference.RandomMasks(32, OcclusionParams(), seed=0, device=torch.device("cpu"))
    epoch = old.for_epoch(0)
    with HostReads() as reads:
        old.draw(8, epoch)
    assert {"_local_scalar_dense", "multinomial"} <= set(reads.seen)


@pytest.mark.parametrize(
    "params",
    [
        OcclusionParams(),
        OcclusionParams(count=3, ratio=0.1),
        OcclusionParams(position="center"),
        OcclusionParams(shape="rectangle", count=2, ratio=0.15),
        OcclusionParams(shape="strokes"),
        OcclusionParams(shape="mixed"),
    ],
    ids=["square", "three squares", "centred", "rectangles", "strokes", "mixed"],
)
def test_training_draw_off_the_cpu_never_reads_back_to_the_host(params, monkeypatch):
    monkeypatch.setattr(generator, "BANK_SIZE", 64)
    masks = TrainingMasks(48, params, seed=0, device="cpu")
    masks.sync_free = True  # what it does on a GPU
    epoch = masks.for_epoch(0)
    with HostReads() as reads:
        drawn = [masks.draw(16, epoch) for _ in range(3)]
    assert reads.seen == []
    for m in drawn:
        assert m.shape == (16, 1, 48, 48) and m.dtype == torch.float32 and set(m.unique().tolist()) <= {0.0, 1.0}


def test_sync_free_squares_are_valid_and_match_row_by_row_when_nothing_restarts():
    rows = TrainingMasks(100, OcclusionParams(), seed=2, device="cpu")
    free = TrainingMasks(100, OcclusionParams(), seed=2, device="cpu")
    free.sync_free = True
    assert torch.equal(rows.draw(64, rows.for_epoch(1)), free.draw(64, free.for_epoch(1)))
    three = TrainingMasks(100, OcclusionParams(count=4, ratio=0.1), seed=2, device="cpu")
    three.sync_free = True
    masks = three.draw(100, three.for_epoch(0))
    side = 32  # round(sqrt(0.1) * 100)
    assert set(masks.sum(dim=(1, 2, 3)).tolist()) == {4 * side * side}  # never overlapping, restarts or not


def test_file_masks_in_training_come_from_the_stored_ones():
    stored = occlude(IDS[:10], 32, OcclusionParams(shape="strokes")).masks
    masks = TrainingMasks(32, OcclusionParams(shape="files", path="x"), seed=0, device="cpu", stored=stored)
    drawn = masks.draw(64, masks.for_epoch(0))[:, 0].numpy().astype(np.uint8)
    stored_shares = set(np.round(stored.mean(axis=(1, 2)), 6))
    assert set(np.round(drawn.mean(axis=(1, 2)), 6)) <= stored_shares  # flips and shifts keep each share
    assert len({m.tobytes() for m in drawn}) == 64  # but rarely give the stored mask itself


def test_training_masks_are_reproducible_per_epoch_for_every_shape(monkeypatch):
    monkeypatch.setattr(generator, "BANK_SIZE", 64)
    for shape in ("square", "rectangle", "strokes", "mixed"):
        params = OcclusionParams(shape=shape, ratio=0.25)
        masks = TrainingMasks(48, params, seed=1, device="cpu")
        first = masks.draw(32, masks.for_epoch(3))
        again = TrainingMasks(48, params, seed=1, device="cpu").draw(32, masks.for_epoch(3))  # a resumed training
        assert torch.equal(first, again) and not torch.equal(first, masks.draw(32, masks.for_epoch(4)))
        assert abs(first.mean().item() - 0.25) < 0.05


def test_bank_keeps_each_share_and_varies_the_masks():
    base = torch.zeros(2, 20, 20, dtype=torch.uint8)
    base[0, 2:5, 3:12] = 1  # 27 pixels
    base[1, 10:18, 0:2] = 1  # 16 pixels
    bank = MaskBank(base)
    drawn = bank.sample(500, torch.Generator().manual_seed(0))
    assert set(drawn.sum(dim=(1, 2, 3)).tolist()) == {27.0, 16.0}
    assert len({m.numpy().tobytes() for m in drawn}) > 300
    assert torch.equal(drawn, bank.sample(500, torch.Generator().manual_seed(0)))
