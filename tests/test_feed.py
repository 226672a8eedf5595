"""Training sets bigger than the device: streamed from the memory-mapped images.npy in chunks,
with the same batches (and so, on a CPU, the same training) as when they are resident."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from vaeinpaint.data.dataset import SubsetImages
from vaeinpaint.masks.generator import occlude
from vaeinpaint.modeling.feed import ResidentFeed, StreamedFeed, make_feed
from vaeinpaint.modeling.train import summary, train_model

from conftest import synthetic_images, tiny_params

CPU = torch.device("cpu")


@pytest.fixture
def on_disk(tmp_path):
    """A colour images.npy of 60 images, memory-mapped, and a subset of 37 of its rows in
    shuffled order (as a split picks them), with masks for the subset."""
    rng = np.random.default_rng(0)
    images = rng.integers(0, 256, (60, 16, 16, 3), dtype=np.uint8)
    np.save(tmp_path / "images.npy", images)
    source = np.load(tmp_path / "images.npy", mmap_mode="r")
    rows = rng.permutation(60)[:37]
    masks = rng.integers(0, 2, (37, 16, 16), dtype=np.uint8)
    return SubsetImages(source, rows), masks, images[rows]


def test_subset_images_read_lazily_what_the_split_picks(on_disk):
    view, _, expected = on_disk
    assert view.shape == expected.shape and view.nbytes == expected.nbytes and len(view) == 37
    assert np.array_equal(view[np.array([5, 0, 5])], expected[[5, 0, 5]])
    assert np.array_equal(np.asarray(view), expected)


@pytest.mark.parametrize("chunk_batches", [1, 3, 100])
def test_streamed_batches_are_the_resident_ones(on_disk, chunk_batches):
    view, masks, _ = on_disk
    batch, steps = 5, 7  # 35 of 37 images an epoch: the last, partial batch is dropped
    resident = ResidentFeed(view, masks, CPU)
    streamed = StreamedFeed(view, masks, CPU, chunk_images=batch * chunk_batches)
    for epoch in range(2):
        order = torch.randperm(37, generator=torch.Generator().manual_seed(epoch))
        pairs = list(zip(resident.batches(order, batch, steps), streamed.batches(order, batch, steps), strict=True))
        assert len(pairs) == steps
        for (ri, rm), (si, sm) in pairs:
            assert torch.equal(ri, si) and torch.equal(rm, sm)
    idx = torch.tensor([36, 2, 2])
    assert all(torch.equal(a, b) for a, b in zip(resident.gather(idx), streamed.gather(idx)))


@pytest.mark.parametrize("streamed", [False, True])
def test_without_stored_masks_only_the_images_are_gathered(on_disk, streamed):
    # train.masks: random draws every batch's masks: the stored ones are not read, nor sent.
    view, masks, _ = on_disk
    feed = StreamedFeed(view, masks, CPU, chunk_images=10) if streamed else ResidentFeed(view, masks, CPU)
    order = torch.randperm(37, generator=torch.Generator().manual_seed(0))
    with_masks = list(feed.batches(order, 5, 7))
    without = list(feed.batches(order, 5, 7, with_masks=False))
    assert [m for _, m in without] == [None] * 7
    assert all(torch.equal(a, b) for (a, _), (b, _) in zip(with_masks, without, strict=True))


def test_the_share_of_free_memory_decides(on_disk):
    view, masks, _ = on_disk
    assert not make_feed(view, masks, CPU, fraction=1.0, batch=5).streamed  # 37 small images fit
    streamed = make_feed(view, masks, CPU, fraction=1e-12, batch=5)
    assert streamed.streamed and streamed.chunk_images == 5  # at least one whole batch


def test_streamed_training_equals_resident_training(tmp_path):
    """Forced to stream (a tiny resident_fraction), training reads the same batches from the
    memory map and ends with bitwise the same weights and losses on a CPU."""
    n = 40
    images = np.stack([synthetic_images(n, 32, seed=s) for s in range(3)], axis=-1)
    np.save(tmp_path / "images.npy", images)
    rows = np.random.default_rng(1).permutation(n)
    view = SubsetImages(np.load(tmp_path / "images.npy", mmap_mode="r"), rows)
    ids = [f"{i:016x}" for i in range(n)]
    params = tiny_params(train={"epochs": 2, "masks": "fixed"})  # stored masks travel in the chunks too
    masks = occlude(ids, 32, params.occlusion).masks

    resident = train_model(params, images[rows], masks, ids)
    streamed = train_model(tiny_params(train={"epochs": 2, "masks": "fixed", "resident_fraction": 1e-12}), view, masks, ids)
    assert not resident.streamed and streamed.streamed
    assert summary(streamed, params, CPU)["streamed"] is True
    assert [r["train_loss"] for r in streamed.history] == [r["train_loss"] for r in resident.history]
    assert [r["val_loss"] for r in streamed.history] == [r["val_loss"] for r in resident.history]
    weights = streamed.model.state_dict()
    assert all(torch.equal(weights[k], v) for k, v in resident.model.state_dict().items())
