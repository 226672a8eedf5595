"""One epoch of training: its random draws, its steps, its validation.

Randomness: everything an epoch draws (batch order, training masks, latent noise) comes from
generators seeded from (train.seed, epoch[, process]) by `epoch_draws`, the one place that
seeds them; an epoch therefore does not depend on what ran before it.
"""

from __future__ import annotations

import math
import time
from dataclasses import dataclass

import torch

from vaeinpaint.errors import TrainingError
from vaeinpaint.masks.generator import TrainingMasks
from vaeinpaint.modeling.augment import augment, augment_generator
from vaeinpaint.modeling.device import synchronize
from vaeinpaint.modeling.distributed import Distributed, all_max, all_sum
from vaeinpaint.modeling.layout import masks_to_model, to_model
from vaeinpaint.modeling.loss import inpainting_loss
from vaeinpaint.modeling.schedule import TrainingClock, sync_due
from vaeinpaint.modeling.state import TrainingState
from vaeinpaint.params import TrainParams


@dataclass
class EpochDraws:
    """An epoch's randomness: this process's batch order and the generators it draws from."""

    order: torch.Tensor  # indices of this process's training images, in batch order
    masks: torch.Generator  # training masks (and, outside torch.compile, the latent noise)
    noise: torch.Generator | None  # latent noise; None under torch.compile: the global generator
    augment: torch.Generator | None  # train.augment's draws; None without augmentation


def rank_seed(seed: int, epoch: int, rank: int) -> int:
    """The seed of a process's own stream in an epoch."""
    return seed * 1_000_003 + epoch * 1009 + rank


def epoch_draws(
    epoch: int, tp: TrainParams, masks: TrainingMasks, train_idx: torch.Tensor, dist: Distributed, augmenting: bool
) -> EpochDraws:
    """The batch order and generators of `epoch`: the order is drawn from (seed, epoch) and
    split over the processes; with several processes each one draws masks and noise from a
    stream of its own, still a function of (seed, epoch, process). Under torch.compile (a
    generator passed into the forward breaks the compiled graph in three) the latent noise
    comes from the global generator, seeded here per (epoch, process)."""
    generator = masks.for_epoch(epoch)
    order = train_idx[epoch_permutation(masks, epoch, generator, len(train_idx)).to(train_idx.device)]
    order = order[dist.rank :: dist.world]
    if dist.world > 1:
        generator = torch.Generator(device=train_idx.device).manual_seed(rank_seed(tp.seed, epoch, dist.rank))
    augment_gen = augment_generator(tp.seed, epoch, train_idx.device, dist.rank) if augmenting else None
    noise: torch.Generator | None = generator
    if tp.compile:
        noise = None
        torch.manual_seed(rank_seed(tp.seed, epoch, dist.rank) + 7)
    return EpochDraws(order, generator, noise, augment_gen)


def epoch_permutation(masks: TrainingMasks, epoch: int, generator: torch.Generator, n: int) -> torch.Tensor:
    """The epoch's order of `n` training images, drawn on the CPU: every process of a DDP
    training computes the same permutation (a GPU's randperm, drawn by each rank on its own
    card, need not agree across cards and versions, and a split of orders that disagree
    would skip some images and repeat others). On a CPU device it is drawn from the epoch's
    own generator, before its masks, as it always was (the same bits); elsewhere from a CPU
    generator with the same seed, so the device's generator is left to the masks."""
    if generator.device.type == "cpu":
        return torch.randperm(n, generator=generator)
    return torch.randperm(n, generator=masks.for_epoch(epoch, torch.device("cpu")))


@dataclass
class Batches:
    """How batches are made: gathered from the feed, as model inputs, with the stored masks
    (train.masks: fixed, and always for validation) or freshly drawn ones."""

    feed: object  # feed.ResidentFeed or feed.StreamedFeed
    masks: TrainingMasks
    augment_ops: tuple[str, ...]
    per_rank: int  # images per process and step
    steps: int  # steps per epoch

    def make(self, images_u8, masks_u8, stored: bool, generator: torch.Generator | None, augment_generator_=None):
        x = to_model(images_u8)
        if augment_generator_ is not None:
            x = augment(x, self.augment_ops, augment_generator_)
        if stored:
            m = masks_to_model(masks_u8)
        else:
            m = self.masks.draw(len(x), generator).contiguous(memory_format=torch.channels_last)
        return x, m


def training_step(
    model, optimizer, x, m, tp: TrainParams, autocast, generator, scaler: torch.amp.GradScaler | None = None
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """One optimisation step on images `x` with masks `m`; returns detached (loss, recon, kl).
    `generator` draws the latent noise (None: the global generator, as under torch.compile)."""
    with autocast:
        out, mu, logvar, *prior = model(x * (1 - m), m, sample=True, generator=generator, **whole_image(x, tp))
    loss, recon, kl = inpainting_loss(out, x, m, mu, logvar, tp, *prior)
    optimizer.zero_grad(set_to_none=True)
    if scaler is not None and scaler.is_enabled():
        scaler.scale(loss).backward()
        scaler.step(optimizer)
        scaler.update()
    else:
        loss.backward()
        optimizer.step()
    return loss.detach(), recon, kl


def whole_image(x: torch.Tensor, tp: TrainParams) -> dict:
    """What a model with a learned prior sees in training besides the damaged image: the whole
    image (its posterior's input), and whether to decode the prior's mean too (the generative
    path). A standard model ignores both."""
    return {"image": x, "generative": tp.generative_weight > 0}


@dataclass
class EpochSteps:
    """The steps of one epoch, a batch at a time: what the training loop runs for each batch,
    and what the benchmark times (`bench.speed`), so that its figure is the pipeline's step:
    the batch's masks and augmentation, the optimiser's step, the weight average's update, a
    sync point when one is due, the learning rate's step."""

    model: torch.nn.Module  # the wrapped `state.model` (DDP, torch.compile)
    state: TrainingState
    batches: Batches
    draws: EpochDraws
    epoch: int
    tp: TrainParams
    autocast: object
    dist: Distributed

    def __post_init__(self) -> None:
        device = self.draws.order.device
        self.sums = torch.zeros(3, device=device)  # (loss, reconstruction, kl) summed over the steps, on the device
        self.step_losses = torch.zeros(self.batches.steps, device=device)

    def run(self, step: int, images_u8: torch.Tensor, masks_u8: torch.Tensor | None) -> None:
        """Step `step` (0-based, of the epoch) on a batch (`masks_u8`: its stored masks, None
        when train.masks is random)."""
        state, tp = self.state, self.tp
        x, m = self.batches.make(images_u8, masks_u8, tp.masks == "fixed", self.draws.masks, self.draws.augment)
        loss, recon, kl = training_step(self.model, state.optimizer, x, m, tp, self.autocast, self.draws.noise, state.scaler)
        if state.average is not None:
            state.average.update(state.model)
        self.step_losses[step] = loss
        if sync_due(step, self.batches.steps, state.clock):  # one host sync (and one all-reduce) per 50 steps
            agree(self.step_losses[: step + 1], state.clock, state.scheduler.last_epoch + 1, self.epoch, self.dist)
        state.scheduler.step()
        self.sums += torch.stack([loss, recon, kl])


def train_epoch(
    model, state: TrainingState, batches: Batches, draws: EpochDraws, epoch: int, tp: TrainParams, autocast, dist: Distributed
) -> tuple[torch.Tensor, float]:
    """The steps of one epoch on `model` (the wrapped `state.model`); returns the sums of its
    (loss, reconstruction, kl) over its steps, on the device, and the seconds the steps took.
    Those are timed between two device syncs, one before the first step and one after the
    last: none per step, so timing costs a GPU nothing."""
    device = draws.order.device
    state.clock.new_epoch()
    model.train()
    steps = EpochSteps(model, state, batches, draws, epoch, tp, autocast, dist)
    stored = tp.masks == "fixed"  # random masks are drawn: the stored ones are not even gathered
    synchronize(device)
    started = time.perf_counter()
    for step, (images_u8, masks_u8) in enumerate(batches.feed.batches(draws.order, batches.per_rank, batches.steps, stored)):
        steps.run(step, images_u8, masks_u8)
    synchronize(device)
    return steps.sums, time.perf_counter() - started


def agree(step_losses: torch.Tensor, clock: TrainingClock, steps_done: int, epoch: int, dist: Distributed) -> None:
    """A sync point: every process learns the elapsed time (the slowest clock's) and whether any
    of them saw a non-finite loss this epoch, in one all-reduce, and they act on it together:
    the clock moves on, or all raise the same TrainingError."""
    n = len(step_losses)
    bad = ~torch.isfinite(step_losses)
    first_bad = torch.where(bad.any(), bad.to(torch.float64).argmax(), torch.tensor(n, device=bad.device)).to(torch.float64)
    shared = torch.stack([torch.tensor(clock.local_elapsed(), dtype=torch.float64, device=first_bad.device), -first_bad])
    elapsed, minus_first = all_max(shared, dist).tolist()
    first = int(-minus_first)
    if first < n:
        value = step_losses[first].item()
        seen = f"{value}" if not math.isfinite(value) else "not finite on another process"
        raise TrainingError(
            f"train: loss is {seen} at epoch {epoch + 1}, step {first + 1}; "
            f"stopped, the last good checkpoint is epoch {epoch} (lower train.lr?)"
        )
    clock.synced(elapsed, steps_done)


def epoch_means(sums: torch.Tensor, steps: int, dist: Distributed) -> dict[str, float]:
    """Mean train loss, reconstruction and KL of the epoch, over all steps of all processes."""
    if dist.world > 1:
        sums = all_sum(sums.clone(), dist) / dist.world
    means = (sums / steps).tolist()
    return {"train_loss": means[0], "train_recon": means[1], "train_kl": means[2]}


@torch.no_grad()
def validation_loss(model, val_idx, feed, batch, tp: TrainParams, autocast, dist: Distributed = Distributed()) -> float:
    """Mean loss on the held-out images with their stored masks and the latent's mean (a learned
    prior's model: the training loss, with the posterior's mean and the prior's). Each
    process scores its share; sums stay on the device (float64) until one sync at the end."""
    was_training = model.training
    model.eval()
    shard = val_idx[dist.rank :: dist.world]
    sums = torch.zeros(2, dtype=torch.float64, device=val_idx.device)  # loss x images, images
    for start in range(0, len(shard), 256):
        idx = shard[start : start + 256]
        x, m = batch(*feed.gather(idx), True, None)
        with autocast:
            out, mu, logvar, *prior = model(x * (1 - m), m, sample=False, **whole_image(x, tp))
        loss, _, _ = inpainting_loss(out, x, m, mu, logvar, tp, *prior)
        sums[0] += loss.double() * len(idx)
        sums[1] += len(idx)
    total, count = all_sum(sums, dist).tolist()
    model.train(was_training)
    return total / max(count, 1)
