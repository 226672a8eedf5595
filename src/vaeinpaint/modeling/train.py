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

Resume: after every epoch the full state goes atomically to
`<project root>/.resume/<fingerprint>.pt`, outside DVC's declared outputs (DVC deletes
those before re-running a stage; `persist: true` would keep them but turn off the run
cache). The fingerprint hashes every param and input file the training depends on, so a
stale state is never picked up by a different configuration. A killed training followed
by `dvc repro` continues from the last complete epoch; a finished one removes its state.
"""

from __future__ import annotations

import contextlib
import dataclasses
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
from vaeinpaint.errors import TrainingError
from vaeinpaint.files import file_hash
from vaeinpaint.masks.generator import TrainingMasks
from vaeinpaint.modeling.augment import augment, augment_generator
from vaeinpaint.modeling.checkpoint import load_checkpoint, model_config, save_checkpoint
from vaeinpaint.modeling.feed import make_feed
from vaeinpaint.modeling.layout import CHANNELS, color_of, masks_to_model, to_model
from vaeinpaint.modeling.model import build_model, count_parameters, kl_divergence
from vaeinpaint.params import Params, TrainParams, augment_ops
from vaeinpaint.progress import progress

log = logging.getLogger(__name__)


def select_device(name: str) -> torch.device:
    if name == "cuda" and not torch.cuda.is_available():
        from vaeinpaint.errors import ParamError

        raise ParamError("train.device: 'cuda' requested but no CUDA device is available (use auto or cpu)")
    if name == "auto":
        name = "cuda" if torch.cuda.is_available() else "cpu"
    return torch.device(name)


def fingerprint(params: Params, input_files: list[Path]) -> str:
    """What a training run depends on: the params it reads and the bytes of its inputs."""
    from vaeinpaint.params import flatten

    relevant = {
        "train": dataclasses.asdict(params.train),
        "model": dataclasses.asdict(params.model),
        "occlusion": dataclasses.asdict(params.occlusion),
        "size": params.prepare.size,
    }
    relevant["train"].pop("max_minutes")  # a time budget changes when to stop, not what is computed
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


def lr_factor(step: int, total: int) -> float:
    """Linear warm-up over the first 3% of steps, then cosine decay to 1% of the peak."""
    warmup = max(1, int(0.03 * total))
    if step < warmup:
        return (step + 1) / warmup
    progress_ = min(1.0, (step - warmup) / max(1, total - warmup))
    return 0.01 + 0.99 * 0.5 * (1.0 + math.cos(math.pi * progress_))


def make_optimizer(model: torch.nn.Module, tp: TrainParams, device: torch.device) -> torch.optim.Optimizer:
    """AdamW; on CUDA the fused kernel (one launch for all parameters)."""
    return torch.optim.AdamW(model.parameters(), lr=tp.lr, weight_decay=tp.weight_decay, fused=device.type == "cuda")


def use_bf16(device: torch.device, precision: str = "auto") -> bool:
    """`auto`: bf16 where the hardware computes it natively: CUDA tensor cores, and CPUs
    with AVX512-BF16 or AMX (1.4x faster training measured on such a CPU); fp32 elsewhere."""
    if precision != "auto":
        return precision == "bf16"
    if device.type == "cuda":
        return True
    return torch.backends.mkldnn.is_available() and torch.ops.mkldnn._is_mkldnn_bf16_supported()


def autocast_for(device: torch.device, precision: str = "auto"):
    """bf16 autocast (no loss scaling needed, unlike fp16) or plain fp32."""
    if use_bf16(device, precision):
        return torch.autocast(device.type, dtype=torch.bfloat16)
    return contextlib.nullcontext()


def training_step(model, optimizer, x, m, tp: TrainParams, autocast, generator) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """One optimisation step on images `x` with masks `m`; returns detached (loss, recon, kl)."""
    with autocast:
        out, mu, logvar = model(x * (1 - m), m, sample=True, generator=generator)
    loss, recon, kl = inpainting_loss(out, x, m, mu, logvar, tp)
    optimizer.zero_grad(set_to_none=True)
    loss.backward()
    optimizer.step()
    return loss.detach(), recon, kl


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


@dataclass
class Distributed:
    rank: int = 0
    world: int = 1

    @property
    def main(self) -> bool:
        return self.rank == 0


def train_model(
    params: Params,
    images: np.ndarray,
    masks: np.ndarray,
    ids: list[str],
    resume_path: Path | None = None,
    on_epoch: Callable[[dict[str, float]], None] | None = None,
    dist: Distributed = Distributed(),
) -> TrainResult:
    """Train on `images` (uint8 [n, s, s] gray or [n, s, s, 3] RGB; an array, a memory map or
    a lazy `SubsetImages`) with their stored `masks` (uint8 [n, s, s]).

    `on_epoch` receives each epoch's record (epoch, train_loss, val_loss, ...) on the main
    process. Raises TrainingError on a non-finite loss, keeping the last good state.
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
    optimizer = make_optimizer(raw_model, tp, device)
    total_steps = steps_per_epoch * tp.epochs
    scheduler = torch.optim.lr_scheduler.LambdaLR(optimizer, lambda s: lr_factor(s, total_steps))

    history: list[dict[str, float]] = []
    start_epoch = 0
    if resume_path is not None and resume_path.exists():
        state = load_checkpoint(resume_path, map_location=device)
        raw_model.load_state_dict(state["model"])
        optimizer.load_state_dict(state["optimizer"])
        scheduler.load_state_dict(state["scheduler"])
        history, start_epoch = list(state["history"]), int(state["epoch"])
        if dist.main:
            log.info("train: resuming from epoch %d (%s)", start_epoch, resume_path)

    model: torch.nn.Module = raw_model
    if tp.compile:
        model = torch.compile(model)
    if dist.world > 1:
        model = torch.nn.parallel.DistributedDataParallel(model, device_ids=[device.index] if device.type == "cuda" else None)
    autocast = autocast_for(device, tp.precision)
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

    def checkpoint_state(epoch: int) -> dict[str, Any]:
        return {
            "model": raw_model.state_dict(),
            "optimizer": optimizer.state_dict(),
            "scheduler": scheduler.state_dict(),
            "epoch": epoch,
            "history": history,
            "config": model_config(params.model, size, color),
            "fingerprint": resume_path.stem if resume_path else "",
        }

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
        model.train()
        sums = torch.zeros(3, device=device)
        step_losses = torch.zeros(steps_per_epoch, device=device)
        for step, (images_u8, masks_u8) in enumerate(feed.batches(order, per_rank_batch, steps_per_epoch)):
            x, m = batch(images_u8, masks_u8, tp.masks == "fixed", generator, augment_gen)
            loss, recon, kl = training_step(model, optimizer, x, m, tp, autocast, generator)
            scheduler.step()
            step_losses[step] = loss
            if (step + 1) % 50 == 0 or step + 1 == steps_per_epoch:  # one host sync per 50 steps
                check_finite(step_losses[: step + 1], epoch)
            sums += torch.stack([loss, recon, kl])
        means = (sums / steps_per_epoch).tolist()
        seen += steps_per_epoch * per_rank_batch * dist.world
        record = {"epoch": epoch + 1, "train_loss": means[0], "train_recon": means[1], "train_kl": means[2]}
        record["val_loss"] = validation_loss(model, val_idx, feed, batch, tp, autocast) if len(val_idx) else float("nan")
        record["lr"] = scheduler.get_last_lr()[0]
        history.append(record)
        if dist.main:
            if resume_path is not None:
                save_checkpoint(resume_path, checkpoint_state(epoch + 1))
            if on_epoch:
                on_epoch(record)
            log.info("train: epoch %d/%d loss %.5f val %.5f", epoch + 1, tp.epochs, record["train_loss"], record["val_loss"])
        if tp.max_minutes and time.perf_counter() - started > tp.max_minutes * 60 and epoch + 1 < tp.epochs:
            stopped_early = True
            log.info("train: stopping after epoch %d: train.max_minutes=%g reached", epoch + 1, tp.max_minutes)
            break

    seconds = time.perf_counter() - started
    final_epoch = history[-1]["epoch"] if history else 0
    return TrainResult(
        model=raw_model.eval(),
        state=checkpoint_state(int(final_epoch)),
        history=history,
        seconds=seconds,
        images_per_s=seen / seconds if seconds > 0 else 0.0,
        resumed_from_epoch=start_epoch,
        stopped_early=stopped_early,
        streamed=feed.streamed,
    )


def check_finite(step_losses: torch.Tensor, epoch: int) -> None:
    bad = (~torch.isfinite(step_losses)).nonzero()
    if len(bad):
        step = int(bad[0, 0])
        raise TrainingError(
            f"train: loss is {step_losses[step].item()} at epoch {epoch + 1}, step {step + 1}; "
            f"stopped, the last good checkpoint is epoch {epoch} (lower train.lr?)"
        )


@torch.no_grad()
def validation_loss(model, val_idx, feed, batch, tp: TrainParams, autocast) -> float:
    """Mean loss on the held-out images with their stored masks and the latent's mean."""
    model.eval()
    total, count = 0.0, 0
    for start in range(0, len(val_idx), 256):
        idx = val_idx[start : start + 256]
        x, m = batch(*feed.gather(idx), True, None)
        with autocast:
            out, mu, logvar = model(x * (1 - m), m, sample=False)
        loss, _, _ = inpainting_loss(out, x, m, mu, logvar, tp)
        total += loss.item() * len(idx)
        count += len(idx)
    model.train()
    return total / max(count, 1)


def summary(result: TrainResult, params: Params, device: torch.device) -> dict[str, Any]:
    """What metrics/train.json holds."""
    last = result.history[-1] if result.history else {}
    return {
        "epochs": int(last.get("epoch", 0)),
        "train_loss": round(last.get("train_loss", float("nan")), 6),
        "val_loss": round(last.get("val_loss", float("nan")), 6),
        "seconds": round(result.seconds, 1),
        "images_per_s": round(result.images_per_s, 1),
        "device": str(device),
        "parameters": count_parameters(result.model),
        "resumed_from_epoch": result.resumed_from_epoch,
        "stopped_early": result.stopped_early,
        "streamed": result.streamed,
    }


def launched_by_torchrun() -> bool:
    return "LOCAL_RANK" in os.environ and "WORLD_SIZE" in os.environ


def relaunch_with_torchrun(processes: int, script: str, args: list[str]) -> int:
    """Run `script` again under torchrun with `processes` workers (DDP); return its exit code."""
    import subprocess
    import sys

    command = [sys.executable, "-m", "torch.distributed.run", "--standalone", f"--nproc-per-node={processes}", script, *args]
    log.info("train: %d processes under torchrun", processes)
    return subprocess.run(command, check=False).returncode


def init_distributed(device_name: str) -> Distributed:
    """Join the process group torchrun set up (NCCL on CUDA, gloo on CPU), if any."""
    if not launched_by_torchrun() or int(os.environ["WORLD_SIZE"]) == 1:
        return Distributed()
    import torch.distributed as tdist

    cuda = select_device(device_name).type == "cuda"
    tdist.init_process_group(backend="nccl" if cuda else "gloo")
    world = tdist.get_world_size()
    if not cuda:  # processes share the cores instead of each one claiming all of them
        torch.set_num_threads(max(1, (os.cpu_count() or 1) // world))
    return Distributed(rank=tdist.get_rank(), world=world)


def close_distributed(dist: Distributed) -> None:
    if dist.world > 1:
        import torch.distributed as tdist

        tdist.destroy_process_group()
