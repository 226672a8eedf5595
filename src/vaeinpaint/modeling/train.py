"""The training loop, in one sitting: `train_model` sets up, restores, loops over the epochs
and reports. Its parts: `state.py` (what training carries, saved and restored), `epoch.py`
(an epoch's random draws, its steps, validation), `loss.py`, `setup.py` (optimizer, DDP,
compile).

Data: the whole uint8 training set (and its stored masks) is moved to the device once;
batches are gathered there by index, so there is no DataLoader and no worker bottleneck
(25,000 gray images of 100x100 are 250 MB). A set too big for the device is streamed to it
in chunks instead, with the same batches (`feed.py`). Images are gray or RGB: the model
takes and returns as many channels as the data has (`layout.py`).

Randomness: everything an epoch draws (batch order, training masks, latent noise) comes
from one generator seeded from (train.seed, epoch); augmentation (`augment.py`) has its own,
seeded from the same pair. An epoch therefore does not depend on what ran before it, and a
training resumed after epoch k continues exactly as an unbroken one would (bitwise on CPU).

Resume: before the first epoch, then after an epoch at most every `train.resume_minutes`,
after the last epoch, and when an exception stops training (the last complete epoch's
state, kept on the host; `state.ResumePoints`), the full state goes atomically to
`<project root>/.resume/<fingerprint>.pt`, outside DVC's declared outputs (DVC deletes
those before re-running a stage; `persist: true` would keep them but turn off the run
cache). The fingerprint hashes every param and input file the training depends on, so a
stale state is never picked up by a different configuration. A killed training followed
by `dvc repro` continues from the last state written, in the same MLflow run (its id is
in the state); a finished one removes its state; an unreadable one is started over.

Batch: `train.batch_size: auto` is resolved here for the device (`setup.resolve_batch`: 32
on a CPU, larger on CUDA with the learning rate scaled); everything below sees an integer.
On CUDA training runs with cuDNN's autotuner on and TF32 set explicitly
(`precision.training_backends`).

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
import os
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch

from vaeinpaint.data.split import split_key
from vaeinpaint.files import file_hash
from vaeinpaint.masks.generator import TrainingMasks
from vaeinpaint.modeling.checkpoint import model_config
from vaeinpaint.modeling.device import device_reason, machine_name, select_device
from vaeinpaint.modeling.distributed import Distributed, broadcast_buffers, broadcast_object
from vaeinpaint.modeling.ema import WeightAverage
from vaeinpaint.modeling.epoch import (
    Batches,
    agree,
    epoch_draws,
    epoch_means,
    train_epoch,
    training_step,
    validation_loss,
)
from vaeinpaint.modeling.feed import make_feed
from vaeinpaint.modeling.layout import CHANNELS, color_of
from vaeinpaint.modeling.loss import inpainting_loss, ssim_map
from vaeinpaint.modeling.model import build_model, count_parameters
from vaeinpaint.modeling.precision import autocast_for, make_scaler, resolve_precision, training_backends
from vaeinpaint.modeling.schedule import TrainingClock, schedule
from vaeinpaint.modeling.setup import SMALL_BATCH, make_optimizer, resolved, small_batch_warning, with_sync_bn, wrap_for_training
from vaeinpaint.modeling.state import RESUME_KEYS, ResumePoints, TrainingState, interrupted_run, load_resume
from vaeinpaint.params import Params, TrainParams, augment_ops
from vaeinpaint.progress import progress

log = logging.getLogger(__name__)

__all__ = [  # also the names other modules and tests import from here
    "RESUME_KEYS",
    "SMALL_BATCH",
    "Distributed",
    "TrainResult",
    "TrainingState",
    "agree",
    "build_model",
    "epoch_means",
    "fingerprint",
    "holdout",
    "inpainting_loss",
    "interrupted_run",
    "load_resume",
    "make_optimizer",
    "new_state",
    "small_batch_warning",
    "ssim_map",
    "summary",
    "train_model",
    "training_step",
    "validation_loss",
    "with_sync_bn",
    "wrap_for_training",
]


def fingerprint(params: Params, input_files: list[Path]) -> str:
    """What a training run depends on: the params it reads and the bytes of its inputs. The
    batch size and learning rate are those it trains with (`train.batch_size: auto` resolved
    for this machine's device), so `auto` names the same training as the integer it
    resolves to, and a state left by a GPU is not resumed on a CPU with another batch."""
    from vaeinpaint.params import flatten

    tp = params.train
    relevant = {
        "train": resolved(tp, select_device(tp.device), tp.gpus * tp.nodes).model_dump(),
        "model": params.model.model_dump(),
        "occlusion": params.occlusion.model_dump(),
        "size": params.prepare.size,
    }
    relevant["train"].pop("rdzv_endpoint")  # where the nodes meet, not what they compute
    relevant["train"].pop("image_every")  # what is logged to MLflow, not what is computed
    relevant["train"].pop("probe_points")  # what is recorded of the test set on the way, not what is computed
    relevant["train"].pop("probe_images")
    relevant["train"].pop("resume_minutes")  # how often the state goes to disk, not what is computed
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


@dataclass
class TrainResult:
    model: torch.nn.Module
    state: dict[str, Any]  # the final checkpoint
    history: list[dict[str, float]] = field(default_factory=list)
    seconds: float = 0.0  # this session's wall time in train_model, setup included
    images_per_s: float = 0.0  # images trained on / seconds
    step_images_per_s: float = 0.0  # images trained on / seconds inside the training steps
    overhead_s: float = 0.0  # the rest of `seconds`: setup, validation, resume points, callbacks (logging, probe)
    batch_size: int = 0  # the global batch trained with (train.batch_size resolved, capped at the training set)
    lr: float = 0.0  # the peak learning rate trained with (train.lr, scaled when train.batch_size is auto)
    resumed_from_epoch: int = 0
    stopped_early: bool = False
    streamed: bool = False  # the training set did not fit on the device and was streamed to it
    precision: str = "fp32"  # what the run computed in: bf16, fp16 or fp32
    device_reason: str = ""  # why train.device gave the device it did (auto on a CPU: why not CUDA)
    machine: str = ""  # the hardware: the GPU's name (N x it for N processes), or the CPU's model and threads
    minutes: float = 0.0  # of training (the budget's clock), over every session of a resumed training


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
    started = time.perf_counter()
    device = training_device(params.train, dist)
    params = params.model_copy(update={"train": resolved(params.train, device, dist.world)})  # train.batch_size: auto
    precision = resolve_precision(device, params.train.precision)
    with training_backends(device, precision):
        return _train(params, images, masks, ids, device, precision, resume_path, on_epoch, dist, run_id, on_model, started)


def _train(params, images, masks, ids, device, precision, resume_path, on_epoch, dist, run_id, on_model, started) -> TrainResult:
    """`train_model`'s work, with the batch size resolved and the backends set."""
    tp = params.train
    reason = device_reason(tp.device, device)
    if dist.main:
        log.info("train: on %s (%s)", device, reason)
    torch.manual_seed(tp.seed)
    size, color = images.shape[1], color_of(images)
    train_idx, val_idx, per_rank_batch, steps_per_epoch = plan(ids, tp, device, dist)
    feed = make_feed(images, masks, device, tp.resident_fraction, per_rank_batch)
    config = model_config(params.model, size, color)
    state = new_state(
        params, CHANNELS[color], config, device, dist, steps_per_epoch * tp.epochs, make_scaler(device, precision), resume_path
    )
    resumed = broadcast_object(load_resume(resume_path) if dist.main else None, dist)
    if resumed is not None:
        state.restore(resumed)
        if dist.main:
            log.info("train: resuming from epoch %d (%s)", state.epoch, resume_path)
    del resumed
    start_epoch = state.epoch

    model = wrap_for_training(state.model, tp, device, dist.world)
    autocast = autocast_for(device, precision)
    random_masks = TrainingMasks(size, params.occlusion, tp.seed, device, stored=masks)
    batches = Batches(feed, random_masks, augment_ops(tp.augment), per_rank_batch, steps_per_epoch)
    points = ResumePoints(resume_path if dist.main else None, run_id, tp.resume_minutes * 60)
    if start_epoch == 0:
        points.write(state.resume_state(run_id))  # the run id is on disk before anything can interrupt the first epoch
    step_seconds, stopped_early = 0.0, False
    epochs = progress(range(start_epoch, tp.epochs), desc="train", unit="epoch", initial=start_epoch, total=tp.epochs)
    with points.written_on_exception():
        for epoch in epochs:
            draws = epoch_draws(epoch, tp, random_masks, train_idx, dist, augmenting=bool(batches.augment_ops))
            sums, seconds = train_epoch(model, state, batches, draws, epoch, tp, autocast, dist)
            step_seconds += seconds
            record = {"epoch": epoch + 1, **epoch_means(sums, steps_per_epoch, dist)}
            broadcast_buffers(state.evaluated, dist)  # everyone validates the model rank 0 saves
            record["val_loss"] = (
                validation_loss(state.evaluated, val_idx, feed, batches.make, tp, autocast, dist) if len(val_idx) else float("nan")
            )
            record["lr"] = state.scheduler.get_last_lr()[0]
            state.history.append(record)
            state.epoch = epoch + 1
            stopping = state.clock.over_budget() and epoch + 1 < tp.epochs  # the agreed clock: every process stops here
            points.epoch_done(state, last=stopping or epoch + 1 == tp.epochs)
            report_epoch(record, state, on_epoch, on_model, tp, dist)
            if stopping:
                stopped_early = True
                if dist.main:
                    log.info("train: stopping after epoch %d: train.max_minutes=%g reached", epoch + 1, tp.max_minutes)
                break

    seconds = time.perf_counter() - started
    final_epoch = state.history[-1]["epoch"] if state.history else 0
    seen = (int(final_epoch) - start_epoch) * steps_per_epoch * per_rank_batch * dist.world
    return TrainResult(
        model=state.evaluated.eval(),
        state=state.checkpoint(int(final_epoch)),
        history=state.history,
        seconds=seconds,
        images_per_s=seen / seconds if seconds > 0 else 0.0,
        step_images_per_s=seen / step_seconds if step_seconds > 0 else 0.0,
        overhead_s=seconds - step_seconds,
        batch_size=per_rank_batch * dist.world,
        lr=tp.lr,
        resumed_from_epoch=start_epoch,
        stopped_early=stopped_early,
        streamed=feed.streamed,
        precision=precision,
        device_reason=reason,
        machine=machine_name(device, dist.world),
        minutes=state.clock.local_elapsed() / 60,
    )


def training_device(tp: TrainParams, dist: Distributed) -> torch.device:
    """train.device; with several processes on CUDA, this process's own GPU."""
    device = select_device(tp.device)
    if device.type == "cuda" and dist.world > 1:
        device = torch.device("cuda", int(os.environ.get("LOCAL_RANK", dist.rank)))
        torch.cuda.set_device(device)
    return device


def plan(ids: list[str], tp: TrainParams, device: torch.device, dist: Distributed) -> tuple[torch.Tensor, torch.Tensor, int, int]:
    """(training images' indices, validation images' indices, images per process and step,
    steps per epoch)."""
    held = holdout(ids, tp.val_fraction, tp.seed)
    train_idx = torch.from_numpy(np.flatnonzero(~held)).to(device)
    val_idx = torch.from_numpy(np.flatnonzero(held)).to(device)
    n_train = len(train_idx)
    per_rank_batch = max(1, min(tp.batch_size // dist.world, n_train // dist.world))
    steps_per_epoch = max(1, (n_train // dist.world) // per_rank_batch)
    return train_idx, val_idx, per_rank_batch, steps_per_epoch


def new_state(
    params: Params,
    channels: int,
    config: dict,
    device: torch.device,
    dist: Distributed,
    total_steps: int,
    scaler: torch.amp.GradScaler,
    resume_path: Path | None,
) -> TrainingState:
    """A fresh training state: the model (its initial weights drawn from the global generator),
    batch norm synced when asked, the optimizer, the weight average, the clock and the schedule
    it drives, at the batch and learning rate `train.batch_size` resolves to on `device`."""
    tp = resolved(params.train, device, dist.world)
    model = build_model(params.model, channels).to(device).to(memory_format=torch.channels_last)
    model = with_sync_bn(model, tp, device, dist.world)
    sync_bn_active = any(isinstance(m, torch.nn.SyncBatchNorm) for m in model.modules())
    optimizer = make_optimizer(model, tp, device)
    average = WeightAverage(model, tp.ema) if tp.ema else None
    clock = TrainingClock(budget=tp.max_minutes * 60)
    scheduler = torch.optim.lr_scheduler.LambdaLR(optimizer, lambda s: schedule(s, total_steps, clock))
    warning = small_batch_warning(tp.batch_size, dist.world, sync_bn_active)
    if warning and dist.main:
        log.warning("train: %s", warning)
    fingerprint_ = resume_path.stem if resume_path else ""
    return TrainingState(model, optimizer, scheduler, scaler, average, clock, config, fingerprint_)


def report_epoch(record: dict[str, float], state: TrainingState, on_epoch, on_model, tp: TrainParams, dist: Distributed) -> None:
    """Hand the epoch to the callbacks and log it, on the main process. Logging and probing is
    not training: off the clock, on every process by rank 0's measure (the others spent it
    waiting here)."""
    minutes = state.clock.local_elapsed() / 60  # of training so far (not in history: checkpoints stay the same bytes)
    reporting = state.clock.now()
    if dist.main:
        if on_epoch:
            on_epoch({**record, "minutes": minutes})
        if on_model:
            on_model(state.epoch, state.evaluated, minutes)
        log.info("train: epoch %d/%d loss %.5f val %.5f", state.epoch, tp.epochs, record["train_loss"], record["val_loss"])
    state.clock.exclude(broadcast_object(state.clock.now() - reporting, dist))


def summary(result: TrainResult, params: Params, device: torch.device) -> dict[str, Any]:
    """What metrics/train.json holds."""
    last = result.history[-1] if result.history else {}
    return {
        "epochs": int(last.get("epoch", 0)),
        "train_loss": round(last.get("train_loss", float("nan")), 6),
        "val_loss": round(last.get("val_loss", float("nan")), 6),
        "seconds": round(result.seconds, 1),  # this session's wall time (a resumed training's last part)
        "images_per_s": round(result.images_per_s, 1),  # over `seconds`: everything included
        "step_images_per_s": round(result.step_images_per_s, 1),  # over the training steps' time only
        "overhead_s": round(result.overhead_s, 1),  # the rest: setup, validation, resume points, logging, probe
        "batch_size": result.batch_size,  # as trained: train.batch_size resolved (auto)
        "lr": result.lr,
        "training_minutes": round(result.minutes, 3),  # the budget's clock, over every session
        "device": str(device),
        "device_reason": result.device_reason,
        "machine": result.machine,  # the figures' hardware, for the report
        "precision": result.precision,
        "schedule": "time" if params.train.max_minutes else "epochs",
        "parameters": count_parameters(result.model),
        "resumed_from_epoch": result.resumed_from_epoch,
        "stopped_early": result.stopped_early,
        "streamed": result.streamed,
    }
