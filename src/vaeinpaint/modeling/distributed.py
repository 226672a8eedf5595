"""Several processes, on one machine or several: launching them (torchrun), joining and
leaving their group, and the few collectives training uses to make decisions together.

The train stage re-runs itself under torchrun when `train.gpus > 1` or `train.nodes > 1`.
On one machine torchrun runs standalone. On several, every node runs the same stage with
the same params and data and they meet at `train.rdzv_endpoint`, the host:port of node 0
(torchrun's static rendezvous). Node 0 is the one where `dvc repro` runs; each other node
says which it is with `VAEINPAINT_NODE_RANK` (1, 2, ...), so global rank 0, the only
process that writes outputs and talks to MLflow, is always on node 0. Before training, the
processes check that they all train the same configuration (the fingerprint of params and
data): a node with another commit, params.yaml or data stops them all with an error.

Every collective here runs outside the training step, once per sync point or epoch; with a
single process each is a no-op.
"""

from __future__ import annotations

import logging
import os
import subprocess
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import timedelta
from typing import Any

import torch

from vaeinpaint.errors import DataError, ParamError
from vaeinpaint.modeling.device import select_device
from vaeinpaint.params import TrainParams

log = logging.getLogger(__name__)

# How long a process waits in a collective before the group gives up on its peers. Rank 0
# alone does some work while the others wait in one: before the first epoch it opens the
# MLflow run and reads the resume state (then broadcast), and at every epoch's end it writes
# the resume state, logs to MLflow (each call bounded by `tracking.store` to 3 retries of 30
# s, and none after the server is lost) and probes test quality, while the others wait in
# `report_epoch`'s broadcast. NCCL's default of 10 minutes could stop a healthy training
# whose tracking server is slow; an hour still ends one whose peer has died.
PROCESS_GROUP_TIMEOUT = timedelta(minutes=60)


@dataclass
class Distributed:
    rank: int = 0
    world: int = 1

    @property
    def main(self) -> bool:
        return self.rank == 0


def launched_by_torchrun() -> bool:
    return "LOCAL_RANK" in os.environ and "WORLD_SIZE" in os.environ


NODE_RANK_ENV = "VAEINPAINT_NODE_RANK"


def node_rank(tp: TrainParams) -> int:
    """Which node this is (0 to train.nodes - 1): `VAEINPAINT_NODE_RANK`, 0 where unset."""
    raw = os.environ.get(NODE_RANK_ENV, "0")
    if not raw.isdigit() or int(raw) >= tp.nodes:
        raise ParamError(f"{NODE_RANK_ENV}: expected a node number from 0 to {tp.nodes - 1} (train.nodes is {tp.nodes}), got {raw!r}")
    return int(raw)


def torchrun_command(tp: TrainParams, script: str, args: list[str]) -> list[str]:
    """The torchrun command line that runs `script` as `tp.gpus` processes on this node."""
    command = [sys.executable, "-m", "torch.distributed.run", f"--nproc-per-node={tp.gpus}"]
    if tp.nodes == 1:
        command.append("--standalone")
    else:
        host, _, port = tp.rdzv_endpoint.rpartition(":")
        command += [f"--nnodes={tp.nodes}", f"--node-rank={node_rank(tp)}", f"--master-addr={host}", f"--master-port={port}"]
    return [*command, script, *args]


def check_enough_gpus(tp: TrainParams) -> None:
    """On CUDA each of this node's `train.gpus` processes needs a GPU of its own (NCCL cannot
    put two ranks on one): a one-line error before launching, instead of every process
    failing inside torchrun. CPU processes (gloo) may be as many as wanted."""
    if select_device(tp.device).type != "cuda":
        return
    visible = torch.cuda.device_count()
    if tp.gpus > visible:
        hidden = os.environ.get("CUDA_VISIBLE_DEVICES")
        limit = f" (CUDA_VISIBLE_DEVICES={hidden!r})" if hidden is not None else ""
        raise ParamError(
            f"train.gpus: {tp.gpus} processes on CUDA need {tp.gpus} GPUs on this machine, but {visible} "
            f"{'is' if visible == 1 else 'are'} visible{limit}; set train.gpus to at most {visible}"
        )


def relaunch_with_torchrun(tp: TrainParams, script: str, args: list[str]) -> int:
    """Run `script` again under torchrun (DDP); return its exit code."""
    check_enough_gpus(tp)
    command = torchrun_command(tp, script, args)
    where = "" if tp.nodes == 1 else f" on node {node_rank(tp)} of {tp.nodes}, meeting at {tp.rdzv_endpoint}"
    log.info("train: %d processes under torchrun%s", tp.gpus, where)
    return subprocess.run(command, check=False).returncode


def init_distributed(cuda: bool) -> Distributed:
    """Join the process group torchrun set up (NCCL on CUDA, gloo on CPU), if any."""
    if not launched_by_torchrun() or int(os.environ["WORLD_SIZE"]) == 1:
        return Distributed()
    import torch.distributed as tdist

    if cuda:  # NCCL's collectives (and the object ones below) run on this process's GPU
        torch.cuda.set_device(int(os.environ["LOCAL_RANK"]))
    tdist.init_process_group(backend="nccl" if cuda else "gloo", timeout=PROCESS_GROUP_TIMEOUT)
    if not cuda:  # this machine's processes share its cores instead of each one claiming all of them
        local = int(os.environ.get("LOCAL_WORLD_SIZE", tdist.get_world_size()))
        torch.set_num_threads(max(1, (os.cpu_count() or 1) // local))
    return Distributed(rank=tdist.get_rank(), world=tdist.get_world_size())


def close_distributed(dist: Distributed) -> None:
    if dist.world > 1:
        import torch.distributed as tdist

        tdist.destroy_process_group()


@contextmanager
def process_group(dist: Distributed) -> Iterator[Distributed]:
    """The block's processes, leaving the process group at its end. When an error leaves the
    block, a failure to leave is a warning: the first error is the one the user sees."""
    try:
        yield dist
    except BaseException:
        try:
            close_distributed(dist)
        except Exception as exc:
            log.warning(
                "train: could not leave the process group (%s: %s); the error that stopped training follows", exc.__class__.__name__, exc
            )
        raise
    close_distributed(dist)


def check_same_everywhere(value: str, what: str, dist: Distributed) -> None:
    """Raise the same DataError on every process unless all of them hold the same `value`."""
    if dist.world == 1:
        return
    import torch.distributed as tdist

    values: list[Any] = [None] * tdist.get_world_size()  # sized as the group, as all_gather_object fills it
    tdist.all_gather_object(values, value)
    odd = [rank for rank, other in enumerate(values) if other != values[0]]
    if odd:
        raise DataError(
            f"train: process{'es' if len(odd) > 1 else ''} {', '.join(map(str, odd))} would train another {what} than "
            f"process 0 ({values[odd[0]]} vs {values[0]}): run every node from the same commit, params.yaml and data"
        )


def all_max(values: torch.Tensor, dist: Distributed) -> torch.Tensor:
    """Element-wise maximum over processes (in place)."""
    if dist.world > 1:
        import torch.distributed as tdist

        tdist.all_reduce(values, op=tdist.ReduceOp.MAX)
    return values


def all_sum(values: torch.Tensor, dist: Distributed) -> torch.Tensor:
    """Element-wise sum over processes (in place)."""
    if dist.world > 1:
        import torch.distributed as tdist

        tdist.all_reduce(values, op=tdist.ReduceOp.SUM)
    return values


def broadcast_object(value: Any, dist: Distributed) -> Any:
    """Rank 0's `value` on every process (e.g. the resume state, which only rank 0 may have:
    nodes need not share a filesystem)."""
    if dist.world == 1:
        return value
    import torch.distributed as tdist

    box = [value if dist.main else None]
    tdist.broadcast_object_list(box, src=0)
    return box[0]


def broadcast_buffers(model: torch.nn.Module, dist: Distributed) -> None:
    """Rank 0's floating-point buffers (batch norm's running statistics) on every process,
    in one collective, so that every process evaluates the model rank 0 saves."""
    if dist.world == 1:
        return
    import torch.distributed as tdist

    buffers = [b for b in model.buffers() if b.is_floating_point()]
    if not buffers:
        return
    flat = torch.cat([b.detach().reshape(-1) for b in buffers])
    tdist.broadcast(flat, src=0)
    offset = 0
    for b in buffers:
        b.copy_(flat[offset : offset + b.numel()].view_as(b))
        offset += b.numel()
