"""What a training is built from before its first step: the batch size and learning rate
`train.batch_size: auto` resolves to, the optimizer, batch norm synced over processes, the DDP
and torch.compile wrapping, and the small-batch warning."""

from __future__ import annotations

import logging
import math

import torch

from vaeinpaint.params import AUTO_BATCH, TrainParams

log = logging.getLogger("vaeinpaint.modeling.train")  # training's messages under one name


CPU_BATCH = 32  # auto on a CPU: the batch the default experiment has always used
CUDA_BATCH = 256  # auto on CUDA, per process: enough work per kernel launch to keep a GPU busy
REFERENCE_BATCH = 32  # train.lr is the rate at this batch; auto scales it with the batch


def resolve_batch(tp: TrainParams, device: torch.device, world: int = 1) -> tuple[int, float]:
    """(global batch size, learning rate) that `tp` trains with on `device` with `world`
    processes. An integer batch is used as given, with `train.lr` as given. `auto` is
    CPU_BATCH on a CPU (whatever the number of processes: the default experiment, bit for
    bit) and CUDA_BATCH per process on CUDA, with the rate scaled by the square root of the
    batch's growth over REFERENCE_BATCH.

    Why so large on a GPU: a step of the default model is ~270 kernel launches, 2-4 ms of
    host time whatever the batch, so batch 32 caps a GPU at 8-16k images/s however fast it
    is; at 256 the same host time covers 64-128k images/s and the GPU's arithmetic, not the
    launches, sets the pace. Why the square root: under Adam, whose update size does not grow
    with the gradient, the rate that keeps a larger batch's training on the same course
    scales with the square root of the batch (Malladi et al. 2022, "On the SDEs and scaling
    rules for adaptive gradient algorithms"); the linear rule is SGD's, and at 8x the batch
    it would put Adam at 8x the rate tuned at 32, where the warm-up has to catch what it
    overshoots."""
    if tp.batch_size != AUTO_BATCH:
        return int(tp.batch_size), tp.lr
    batch = CUDA_BATCH * world if device.type == "cuda" else CPU_BATCH
    return batch, tp.lr * math.sqrt(batch / REFERENCE_BATCH)  # x1.0 at 32: bitwise train.lr


def resolved(tp: TrainParams, device: torch.device, world: int = 1) -> TrainParams:
    """`tp` with the batch size and learning rate it trains with (`resolve_batch`)."""
    batch, lr = resolve_batch(tp, device, world)
    return tp.model_copy(update={"batch_size": batch, "lr": lr})


def make_optimizer(model: torch.nn.Module, tp: TrainParams, device: torch.device) -> torch.optim.Optimizer:
    """AdamW; on CUDA the fused kernel (one launch for all parameters)."""
    return torch.optim.AdamW(model.parameters(), lr=tp.lr, weight_decay=tp.weight_decay, fused=device.type == "cuda")


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
    """torch.compile around the model, then DistributedDataParallel around that when there are
    several processes: the order PyTorch's guide to torch.compile gives ("Where to apply
    torch.compile?": Dynamo does not trace DDP's wrapper well, so compile the module inside
    it). Dynamo still splits the compiled graph at DDP's bucket boundaries (DDPOptimizer sees
    the DDP module it runs under), so communication overlaps the backward pass. `torch.compile`
    returns a new module over the same parameters, so `model` itself stays eager: the weight
    average, validation and checkpoints never see the compiled one."""
    if tp.compile:
        model = torch.compile(model)
    if world > 1:
        model = torch.nn.parallel.DistributedDataParallel(model, device_ids=[device.index] if device.type == "cuda" else None)
    return model
