"""The training loop, in one sitting.

Data: the whole uint8 training set (and its stored masks) is moved to the device once;
batches are gathered there by index, so there is no DataLoader and no worker bottleneck
(25,000 gray images of 100x100 are 250 MB). A set too big for the device is streamed to it
in chunks instead, with the same batches (`feed.py`). Images are gray or RGB: the model
takes and returns as many channels as the data has (`layout.py`).

Randomness: everything an epoch draws (batch order, training masks, latent noise) comes
from one generator seeded from (train.seed, epoch); augmentation (`augment.py`) has its own,
seeded from the same pair. An epoch therefore does not depend on what ran before it, and a
training resumed after epoch k continues exactly as an unbroken one would (bitwise on CPU).

Resume: before the first epoch and after every epoch the full state goes atomically to
`<project root>/.resume/<fingerprint>.pt`, outside DVC's declared outputs (DVC deletes
those before re-running a stage; `persist: true` would keep them but turn off the run
cache). The fingerprint hashes every param and input file the training depends on, so a
stale state is never picked up by a different configuration. A killed training followed
by `dvc repro` continues from the last complete epoch, in the same MLflow run (its id is
in the state); a finished one removes its state; an unreadable one is started over.

Schedule (`schedule.py`): by steps over `train.epochs`, or with `train.max_minutes` by the
elapsed training time, which is part of the resume state.

Several processes (DDP): every decision that ends or shapes training is made together, at
the same steps on every process, from one small all-reduce: the elapsed time (the slowest
clock), and whether any process saw a non-finite loss. Logged losses are means over all
processes; validation is split across them.
"""

from __future__ import annotations

import hashlib
import json
import logging
import math
import os
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F

from vaeinpaint.data.split import split_key
from vaeinpaint.errors import DataError, TrainingError
from vaeinpaint.files import file_hash
from vaeinpaint.masks.generator import TrainingMasks
from vaeinpaint.modeling.augment import augment, augment_generator
from vaeinpaint.modeling.checkpoint import load_checkpoint, model_config, save_checkpoint
from vaeinpaint.modeling.device import select_device
from vaeinpaint.modeling.distributed import Distributed, all_max, all_sum, broadcast_buffers, broadcast_object
from vaeinpaint.modeling.ema import WeightAverage
from vaeinpaint.modeling.feed import make_feed
from vaeinpaint.modeling.layout import CHANNELS, color_of, masks_to_model, to_model
from vaeinpaint.modeling.model import build_model, count_parameters, kl_divergence
from vaeinpaint.modeling.precision import autocast_for, make_scaler, resolve_precision
from vaeinpaint.modeling.schedule import TrainingClock, schedule, sync_due
from vaeinpaint.params import Params, TrainParams, augment_ops
from vaeinpaint.progress import progress

log = logging.getLogger(__name__)


def fingerprint(params: Params, input_files: list[Path]) -> str:
    """What a training run depends on: the params it reads and the bytes of its inputs."""
    from vaeinpaint.params import flatten

    relevant = {
        "train": params.train.model_dump(),
        "model": params.model.model_dump(),
        "occlusion": params.occlusion.model_dump(),
        "size": params.prepare.size,
    }
    relevant["train"].pop("rdzv_endpoint")  # where the nodes meet, not what they compute
    relevant["train"].pop("image_every")  # what is logged to MLflow, not what is computed
    relevant["train"].pop("probe_points")  # what is recorded of the test set on the way, not what is computed
    relevant["train"].pop("probe_images")
    inputs = {str(p): file_hash(p) for p in input_files if p.exists()}
    blob = json.dumps([flatten(relevant), inputs], sort_keys=True)
    return hashlib.sha256(blob.encode()).hexdigest()[:20]


def holdout(ids: list[str], fraction: float, seed: int) -> np.ndarray:
    """Boolean array: True for the images held out of training to measure a validation loss."""
    n_val = int(round(fraction * len(ids)))
    if n_val == 0 or len(ids) - n_val < 1:
        return np.zeros(len(ids), dtype=bool)
    keys = np.array([split_key(seed + 7919, i) for i in ids])
    held = np.zeros(len(ids), dtype=bool)
    held[np.argsort(keys, kind="stable")[:n_val]] = True
    return held


def ssim_map(a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    """Differentiable SSIM map with Wang et al.'s settings (11x11 Gaussian, sigma 1.5, over the
    windows that fit in the image, as scikit-image computes it), for the loss. The Gaussian is
    separable: two grouped 1-D convolutions over the five statistics at once, ~6x cheaper on a
    CPU than five 11x11 ones. Colour images get one map per channel, as scikit-image's
    `channel_axis` computes them (their mean is the mean of the per-channel SSIMs)."""
    g = torch.exp(-((torch.arange(11, dtype=a.dtype, device=a.device) - 5) ** 2) / (2 * 1.5**2))
    g = g / g.sum()
    stats = torch.cat([a, b, a * a, b * b, a * b], dim=1)
    n = stats.shape[1]  # 5 statistics x channels
    stats = F.conv2d(stats, g.view(1, 1, 1, 11).repeat(n, 1, 1, 1), groups=n)
    stats = F.conv2d(stats, g.view(1, 1, 11, 1).repeat(n, 1, 1, 1), groups=n)
    mu_a, mu_b, aa, bb, ab = stats.chunk(5, dim=1)
    c1, c2 = 0.01**2, 0.03**2
    var_a, var_b, cov = aa - mu_a**2, bb - mu_b**2, ab - mu_a * mu_b
    return ((2 * mu_a * mu_b + c1) * (2 * cov + c2)) / ((mu_a**2 + mu_b**2 + c1) * (var_a + var_b + c2))


def inpainting_loss(out, target, mask, mu, logvar, tp: TrainParams) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """(loss, reconstruction, kl). Reconstruction: L1 per pixel, `hole_weight` times heavier
    inside the hole; optionally plus (1 - SSIM) of the pasted-back image. KL: per image,
    summed over the latent, divided by the pixel count so `kl_weight` is relative to the
    per-pixel reconstruction."""
    out, target = out.float(), target.float()
    weight = 1.0 + (tp.hole_weight - 1.0) * mask
    recon = (weight * (out - target).abs()).mean()
    if tp.ssim_weight > 0:
        pasted = target * (1 - mask) + out * mask
        recon = recon + tp.ssim_weight * (1.0 - ssim_map(pasted, target).mean())
    kl = kl_divergence(mu.float(), logvar.float()).mean() / target[0].numel()
    return recon + tp.kl_weight * kl, recon.detach(), kl.detach()


def make_optimizer(model: torch.nn.Module, tp: TrainParams, device: torch.device) -> torch.optim.Optimizer:
    """AdamW; on CUDA the fused kernel (one launch for all parameters)."""
    return torch.optim.AdamW(model.parameters(), lr=tp.lr, weight_decay=tp.weight_decay, fused=device.type == "cuda")


def training_step(
    model, optimizer, x, m, tp: TrainParams, autocast, generator, scaler: torch.amp.GradScaler | None = None
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """One optimisation step on images `x` with masks `m`; returns detached (loss, recon, kl).
    `generator` draws the latent noise (None: the global generator, as under torch.compile)."""
    with autocast:
        out, mu, logvar = model(x * (1 - m), m, sample=True, generator=generator)
    loss, recon, kl = inpainting_loss(out, x, m, mu, logvar, tp)
    optimizer.zero_grad(set_to_none=True)
    if scaler is not None and scaler.is_enabled():
        scaler.scale(loss).backward()
        scaler.step(optimizer)
        scaler.update()
    else:
        loss.backward()
        optimizer.step()
    return loss.detach(), recon, kl


SMALL_BATCH = 16  # per process: below this, batch norm statistics get noisy


def small_batch_warning(batch_size: int, world: int, sync_bn_active: bool) -> str:
    """A warning when `train.batch_size`, split over `world` processes, leaves each one a
    batch too small for good batch norm statistics ("" when all is well)."""
    per_process = batch_size // world
    if world == 1 or sync_bn_active or per_process >= SMALL_BATCH:
        return ""
    return (
        f"train.batch_size: {batch_size} is the global batch: each of the {world} processes gets {per_process} images "
        f"per step, and batch norm statistics over fewer than {SMALL_BATCH} are noisy; raise train.batch_size to "
        f"{SMALL_BATCH * world} or more, or (on CUDA) set train.sync_bn: true"
    )


def with_sync_bn(model: torch.nn.Module, tp: TrainParams, device: torch.device, world: int) -> torch.nn.Module:
    """`model` with SyncBatchNorm (statistics over every process's batch) when asked for and
    possible: CUDA and several processes. It shares the parameters and buffers, so do this
    before making the optimizer."""
    if not tp.sync_bn or world == 1:
        return model
    if device.type != "cuda":
        log.warning("train: train.sync_bn needs CUDA; on %s each process keeps its own batch statistics", device.type)
        return model
    return torch.nn.SyncBatchNorm.convert_sync_batchnorm(model)


def wrap_for_training(model: torch.nn.Module, tp: TrainParams, device: torch.device, world: int) -> torch.nn.Module:
    """DistributedDataParallel around the model when there are several processes, then
    torch.compile around that: the order PyTorch documents, so that compilation sees DDP's
    bucket boundaries and overlaps communication with the backward pass."""
    if world > 1:
        model = torch.nn.parallel.DistributedDataParallel(model, device_ids=[device.index] if device.type == "cuda" else None)
    if tp.compile:
        model = torch.compile(model)
    return model


@dataclass
class TrainResult:
    model: torch.nn.Module
    state: dict[str, Any]  # the final checkpoint
    history: list[dict[str, float]] = field(default_factory=list)
    seconds: float = 0.0
    images_per_s: float = 0.0
    resumed_from_epoch: int = 0
    stopped_early: bool = False
    streamed: bool = False  # the training set did not fit on the device and was streamed to it
    precision: str = "fp32"  # what the run computed in: bf16, fp16 or fp32
    minutes: float = 0.0  # of training (the budget's clock), over every session of a resumed training


RESUME_KEYS = ("model", "optimizer", "scheduler", "epoch", "history", "config")


def load_resume(path: Path | None, map_location: str | torch.device = "cpu") -> dict[str, Any] | None:
    """The resume state at `path`, or None when there is none or it cannot be used: empty (a
    power loss before the bytes reached the disk), corrupt, or not a training state. An unusable
    state is removed with a warning and training starts over: it must never block `dvc repro`."""
    if path is None or not path.exists():
        return None
    try:
        state = load_checkpoint(path, map_location=map_location)
        missing = [key for key in RESUME_KEYS if key not in state]
        if missing:
            raise DataError(f"checkpoint: {path} is not a training state (no {', '.join(missing)})")
    except DataError as exc:
        log.warning("train: %s; starting over (%s removed)", str(exc).removeprefix("checkpoint: "), path)
        path.unlink(missing_ok=True)
        return None
    return state


def interrupted_run(path: Path | None) -> tuple[str, list[dict[str, float]]]:
    """(MLflow run id, epoch records so far) of the interrupted training whose state is at
    `path`, read without loading its tensors; ("", []) if there is none or it is unreadable."""
    if path is None or not path.exists():
        return "", []
    try:
        state = load_checkpoint(path, mmap=True)
    except DataError:  # unreadable: load_resume reports it and starts over
        return "", []
    return str(state.get("run_id", "")), list(state.get("history", []))


def train_model(
    params: Params,
    images: np.ndarray,
    masks: np.ndarray,
    ids: list[str],
    resume_path: Path | None = None,
    on_epoch: Callable[[dict[str, float]], None] | None = None,
    dist: Distributed = Distributed(),
    run_id: str = "",
    on_model: Callable[[int, torch.nn.Module, float], None] | None = None,
) -> TrainResult:
    """Train on `images` (uint8 [n, s, s] gray or [n, s, s, 3] RGB; an array, a memory map or
    a lazy `SubsetImages`) with their stored `masks` (uint8 [n, s, s]).

    `on_epoch` receives each epoch's record (epoch, train_loss, val_loss, ..., minutes of
    training so far) on the main process, then `on_model` the epoch, the model (unwrapped,
    the moving average when train.ema is on; it must not draw random numbers from torch's
    global generator, nor leave gradients) and the minutes. Time spent in them is not
    training time: the budget's clock leaves it out. `run_id` (the MLflow run) is
    kept in the resume state, so that an interrupted training's next attempt logs to the same
    run. Raises TrainingError on a non-finite loss, keeping the last good state.
    """
    tp = params.train
    device = select_device(tp.device)
    if device.type == "cuda" and dist.world > 1:
        device = torch.device("cuda", int(os.environ.get("LOCAL_RANK", dist.rank)))
        torch.cuda.set_device(device)
    torch.manual_seed(tp.seed)
    size, color = images.shape[1], color_of(images)

    held = holdout(ids, tp.val_fraction, tp.seed)
    train_idx = torch.from_numpy(np.flatnonzero(~held)).to(device)
    val_idx = torch.from_numpy(np.flatnonzero(held)).to(device)
    n_train = len(train_idx)
    per_rank_batch = max(1, min(tp.batch_size // dist.world, n_train // dist.world))
    steps_per_epoch = max(1, (n_train // dist.world) // per_rank_batch)
    feed = make_feed(images, masks, device, tp.resident_fraction, per_rank_batch)

    raw_model = build_model(params.model, CHANNELS[color]).to(device).to(memory_format=torch.channels_last)
    raw_model = with_sync_bn(raw_model, tp, device, dist.world)
    sync_bn_active = any(isinstance(m, torch.nn.SyncBatchNorm) for m in raw_model.modules())
    optimizer = make_optimizer(raw_model, tp, device)
    average = WeightAverage(raw_model, tp.ema) if tp.ema else None
    evaluated = average.model if average else raw_model  # what is validated, handed to on_model and saved
    total_steps = steps_per_epoch * tp.epochs
    clock = TrainingClock(budget=tp.max_minutes * 60)
    scheduler = torch.optim.lr_scheduler.LambdaLR(optimizer, lambda s: schedule(s, total_steps, clock))
    precision = resolve_precision(device, tp.precision)
    scaler = make_scaler(device, precision)
    warning = small_batch_warning(tp.batch_size, dist.world, sync_bn_active)
    if warning and dist.main:
        log.warning("train: %s", warning)

    history: list[dict[str, float]] = []
    start_epoch = 0
    state = broadcast_object(load_resume(resume_path) if dist.main else None, dist)
    if state is not None:
        raw_model.load_state_dict(state["model"])
        optimizer.load_state_dict(state["optimizer"])
        scheduler.load_state_dict(state["scheduler"])
        if "scaler" in state:
            scaler.load_state_dict(state["scaler"])
        if "clock" in state:
            clock.restore(state["clock"])
        if average is not None:
            average.load_state_dict(state["ema"])
        history, start_epoch = list(state["history"]), int(state["epoch"])
        if dist.main:
            log.info("train: resuming from epoch %d (%s)", start_epoch, resume_path)
    del state

    model = wrap_for_training(raw_model, tp, device, dist.world)
    autocast = autocast_for(device, precision)
    random_masks = TrainingMasks(size, params.occlusion, tp.seed, device, stored=masks)
    augment_with = augment_ops(tp.augment)

    def batch(images_u8, masks_u8, stored: bool, generator: torch.Generator | None, augment_generator_=None):
        x = to_model(images_u8)
        if augment_generator_ is not None:
            x = augment(x, augment_with, augment_generator_)
        if stored:
            m = masks_to_model(masks_u8)
        else:
            m = random_masks.draw(len(x), generator).contiguous(memory_format=torch.channels_last)
        return x, m

    def checkpoint_state(epoch: int, resumable: bool = False) -> dict[str, Any]:
        """The final checkpoint (`model`: the weights that are evaluated, the average when
        train.ema is on), or with `resumable` the state to go on training from (`model`: the
        trained weights, `ema`: the average)."""
        state = {
            "model": (raw_model if resumable else evaluated).state_dict(),
            "optimizer": optimizer.state_dict(),
            "scheduler": scheduler.state_dict(),
            "epoch": epoch,
            "history": history,
            "config": model_config(params.model, size, color),
            "fingerprint": resume_path.stem if resume_path else "",
        }
        if scaler.is_enabled():
            state["scaler"] = scaler.state_dict()
        if resumable and average is not None:
            state["ema"] = average.state_dict()
        return state

    def save_resume(epoch: int) -> None:
        """The state to resume from, with what the final checkpoint leaves out: the run it logs
        to and the clock (they differ run to run; the final checkpoint stays the same bytes)."""
        if resume_path is not None and dist.main:
            save_checkpoint(resume_path, {**checkpoint_state(epoch, resumable=True), "run_id": run_id, "clock": clock.state()})

    if start_epoch == 0:
        save_resume(0)  # the run id is on disk before anything can interrupt the first epoch
    started = time.perf_counter()
    seen = 0
    stopped_early = False
    epochs = progress(range(start_epoch, tp.epochs), desc="train", unit="epoch", initial=start_epoch, total=tp.epochs)
    for epoch in epochs:
        generator = random_masks.for_epoch(epoch)
        order = train_idx[torch.randperm(n_train, generator=generator, device=device)]
        order = order[dist.rank :: dist.world]
        if dist.world > 1:  # a different mask/noise stream per process, still a function of (seed, epoch)
            generator = torch.Generator(device=device).manual_seed(tp.seed * 1_000_003 + epoch * 1009 + dist.rank)
        augment_gen = augment_generator(tp.seed, epoch, device, dist.rank) if augment_with else None
        noise = generator
        if tp.compile:  # a generator passed into the forward breaks the compiled graph in three:
            noise = None  # the latent noise comes from the global generator, seeded per (epoch, process)
            torch.manual_seed(tp.seed * 1_000_003 + epoch * 1009 + dist.rank + 7)
        clock.new_epoch()
        model.train()
        sums = torch.zeros(3, device=device)
        step_losses = torch.zeros(steps_per_epoch, device=device)
        for step, (images_u8, masks_u8) in enumerate(feed.batches(order, per_rank_batch, steps_per_epoch)):
            x, m = batch(images_u8, masks_u8, tp.masks == "fixed", generator, augment_gen)
            loss, recon, kl = training_step(model, optimizer, x, m, tp, autocast, noise, scaler)
            if average is not None:
                average.update(raw_model)
            step_losses[step] = loss
            if sync_due(step, steps_per_epoch, clock):  # one host sync (and one all-reduce) per 50 steps
                agree(step_losses[: step + 1], clock, scheduler.last_epoch + 1, epoch, dist)
            scheduler.step()
            sums += torch.stack([loss, recon, kl])
        seen += steps_per_epoch * per_rank_batch * dist.world
        record = {"epoch": epoch + 1, **epoch_means(sums, steps_per_epoch, dist)}
        broadcast_buffers(evaluated, dist)  # everyone validates the model rank 0 saves
        record["val_loss"] = validation_loss(evaluated, val_idx, feed, batch, tp, autocast, dist) if len(val_idx) else float("nan")
        record["lr"] = scheduler.get_last_lr()[0]
        history.append(record)
        if dist.main:
            save_resume(epoch + 1)
        minutes = clock.local_elapsed() / 60  # of training so far (not in history: checkpoints stay the same bytes)
        reporting = clock.now()
        if dist.main:
            if on_epoch:
                on_epoch({**record, "minutes": minutes})
            if on_model:
                on_model(epoch + 1, evaluated, minutes)
            log.info("train: epoch %d/%d loss %.5f val %.5f", epoch + 1, tp.epochs, record["train_loss"], record["val_loss"])
        # Logging and probing (on_epoch, on_model) is not training: off the clock, on every
        # process by rank 0's measure (the others spent it waiting here)
        clock.exclude(broadcast_object(clock.now() - reporting, dist))
        if clock.over_budget() and epoch + 1 < tp.epochs:  # the agreed clock: every process stops here
            stopped_early = True
            if dist.main:
                log.info("train: stopping after epoch %d: train.max_minutes=%g reached", epoch + 1, tp.max_minutes)
            break

    seconds = time.perf_counter() - started
    final_epoch = history[-1]["epoch"] if history else 0
    return TrainResult(
        model=evaluated.eval(),
        state=checkpoint_state(int(final_epoch)),
        history=history,
        seconds=seconds,
        images_per_s=seen / seconds if seconds > 0 else 0.0,
        resumed_from_epoch=start_epoch,
        stopped_early=stopped_early,
        streamed=feed.streamed,
        precision=precision,
        minutes=clock.local_elapsed() / 60,
    )


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
    """Mean loss on the held-out images with their stored masks and the latent's mean. Each
    process scores its share; sums stay on the device (float64) until one sync at the end."""
    was_training = model.training
    model.eval()
    shard = val_idx[dist.rank :: dist.world]
    sums = torch.zeros(2, dtype=torch.float64, device=val_idx.device)  # loss x images, images
    for start in range(0, len(shard), 256):
        idx = shard[start : start + 256]
        x, m = batch(*feed.gather(idx), True, None)
        with autocast:
            out, mu, logvar = model(x * (1 - m), m, sample=False)
        loss, _, _ = inpainting_loss(out, x, m, mu, logvar, tp)
        sums[0] += loss.double() * len(idx)
        sums[1] += len(idx)
    total, count = all_sum(sums, dist).tolist()
    model.train(was_training)
    return total / max(count, 1)


def summary(result: TrainResult, params: Params, device: torch.device) -> dict[str, Any]:
    """What metrics/train.json holds."""
    last = result.history[-1] if result.history else {}
    return {
        "epochs": int(last.get("epoch", 0)),
        "train_loss": round(last.get("train_loss", float("nan")), 6),
        "val_loss": round(last.get("val_loss", float("nan")), 6),
        "seconds": round(result.seconds, 1),  # this session's wall time (a resumed training's last part)
        "images_per_s": round(result.images_per_s, 1),
        "training_minutes": round(result.minutes, 3),  # the budget's clock, over every session
        "device": str(device),
        "precision": result.precision,
        "schedule": "time" if params.train.max_minutes else "epochs",
        "parameters": count_parameters(result.model),
        "resumed_from_epoch": result.resumed_from_epoch,
        "stopped_early": result.stopped_early,
        "streamed": result.streamed,
    }
