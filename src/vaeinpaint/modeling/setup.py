"""What a training is built from before its first step: the optimizer, batch norm synced over
processes, the DDP and torch.compile wrapping, and the small-batch warning."""

from __future__ import annotations

import logging

import torch

from vaeinpaint.params import TrainParams

log = logging.getLogger("vaeinpaint.modeling.train")  # training's messages under one name


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
