"""What a training runs with: the epoch's order drawn on the CPU."""

from __future__ import annotations

import torch

from vaeinpaint.masks.generator import TrainingMasks
from vaeinpaint.modeling.epoch import epoch_permutation

from conftest import tiny_params

CUDA = torch.device("cuda")  # only its type is looked at here


# --- the epoch's order, drawn on the CPU ----------------------------------------------


def test_on_a_cpu_the_epoch_order_and_the_masks_after_it_are_drawn_as_before():
    masks = TrainingMasks(32, tiny_params().occlusion, seed=3, device="cpu")
    generator, before = masks.for_epoch(4), masks.for_epoch(4)
    order = epoch_permutation(masks, 4, generator, 100)
    assert torch.equal(order, torch.randperm(100, generator=before, device="cpu"))
    assert torch.equal(generator.get_state(), before.get_state())  # the masks then draw what they drew


def test_off_the_cpu_the_order_comes_from_a_cpu_generator_of_the_same_seed():
    masks = TrainingMasks(32, tiny_params().occlusion, seed=3, device="cpu")

    class OnADevice:  # the epoch's generator as a GPU's would be: not to be drawn from for the order
        device = CUDA

    order = epoch_permutation(masks, 4, OnADevice(), 100)
    assert order.device.type == "cpu" and torch.equal(order, torch.randperm(100, generator=masks.for_epoch(4)))
