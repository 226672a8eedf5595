"""Everything a training carries from step to step, and how it is kept on disk.

`TrainingState` holds the model, optimizer, scheduler, gradient scaler, weight average, clock,
history and epoch. It saves two things: the resume state (`save`: the trained weights, the
average, the run id and the clock, to go on training from) and the final checkpoint
(`checkpoint()`: the weights that are evaluated, the same bytes run after run, so no run id
and no clock). `restore` puts a resume state back. `ResumePoints` decides when the resume
state goes to disk.
"""

from __future__ import annotations

import copy
import logging
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch

from vaeinpaint.errors import DataError
from vaeinpaint.modeling.checkpoint import load_checkpoint, save_checkpoint
from vaeinpaint.modeling.ema import WeightAverage
from vaeinpaint.modeling.schedule import TrainingClock

log = logging.getLogger("vaeinpaint.modeling.train")  # training's messages under one name

RESUME_KEYS = ("model", "optimizer", "scheduler", "epoch", "history", "config")


@dataclass
class TrainingState:
    model: torch.nn.Module  # the trained weights (unwrapped: no DDP, no compile)
    optimizer: torch.optim.Optimizer
    scheduler: torch.optim.lr_scheduler.LRScheduler
    scaler: torch.amp.GradScaler
    average: WeightAverage | None  # train.ema's moving average, None when it is off
    clock: TrainingClock
    config: dict[str, Any]  # the model's configuration, as checkpoints keep it
    fingerprint: str = ""  # the resume state's name: what the training depends on
    history: list[dict[str, float]] = field(default_factory=list)
    epoch: int = 0  # epochs done

    @property
    def evaluated(self) -> torch.nn.Module:
        """What is validated, handed to on_model and saved: the average when train.ema is on."""
        return self.average.model if self.average is not None else self.model

    def checkpoint(self, epoch: int, resumable: bool = False) -> dict[str, Any]:
        """The final checkpoint (`model`: the weights that are evaluated, the average when
        train.ema is on), or with `resumable` the state to go on training from (`model`: the
        trained weights, `ema`: the average)."""
        state = {
            "model": (self.model if resumable else self.evaluated).state_dict(),
            "optimizer": self.optimizer.state_dict(),
            "scheduler": self.scheduler.state_dict(),
            "epoch": epoch,
            "history": self.history,
            "config": self.config,
            "fingerprint": self.fingerprint,
        }
        if self.scaler.is_enabled():
            state["scaler"] = self.scaler.state_dict()
        if resumable and self.average is not None:
            state["ema"] = self.average.state_dict()
        return state

    def resume_state(self, run_id: str) -> dict[str, Any]:
        """The state to resume from, with what the final checkpoint leaves out: the run it logs
        to and the clock (they differ run to run; the final checkpoint stays the same bytes).
        Its tensors are the live ones: `host_copy` it to keep it while training goes on."""
        return {**self.checkpoint(self.epoch, resumable=True), "run_id": run_id, "clock": self.clock.state()}

    def save(self, path: Path, run_id: str) -> None:
        save_checkpoint(path, self.resume_state(run_id))

    def restore(self, state: dict[str, Any]) -> None:
        """Put back a resume state (what `save` wrote)."""
        self.model.load_state_dict(state["model"])
        self.optimizer.load_state_dict(state["optimizer"])
        self.scheduler.load_state_dict(state["scheduler"])
        if "scaler" in state:
            self.scaler.load_state_dict(state["scaler"])
        if "clock" in state:
            self.clock.restore(state["clock"])
        if self.average is not None:
            self.average.load_state_dict(state["ema"])
        self.history, self.epoch = list(state["history"]), int(state["epoch"])


def host_copy(value: Any) -> Any:
    """`value` (a state: dicts, lists and tuples of tensors and plain values) with every
    tensor copied to the host and every container copied: what training does next changes
    nothing in it."""
    if isinstance(value, torch.Tensor):
        return value.detach().to("cpu", copy=True)
    if isinstance(value, dict):
        return {key: host_copy(item) for key, item in value.items()}
    if isinstance(value, (list, tuple)):
        return type(value)(host_copy(item) for item in value)
    return copy.copy(value)


@dataclass
class ResumePoints:
    """When the resume state goes to disk (`path`; None: never, as on every process but rank
    0): before the first epoch, then after an epoch when `every_s` seconds have passed since
    the last write (0: after every epoch), after the last epoch, and whenever training stops
    on an exception (Ctrl-C, SIGTERM, a non-finite loss): then the last complete epoch's
    state, kept on the host since its end, is written before the exception goes on. A write
    is ~18 MB and two fsyncs (tens of milliseconds on a local disk, more on a network
    volume): after every epoch it would be a cost of its own on a GPU whose epochs take a
    second. A `kill -9` loses at most `every_s` of training (and the epoch it hit, as it
    always did)."""

    path: Path | None
    run_id: str
    every_s: float
    written: float = field(default_factory=time.perf_counter)  # when the last write ended
    kept: dict[str, Any] | None = None  # the last complete epoch's state, if not on disk yet

    def write(self, state: dict[str, Any]) -> None:
        if self.path is not None:
            save_checkpoint(self.path, state)
            self.written, self.kept = time.perf_counter(), None

    def epoch_done(self, state: TrainingState, last: bool) -> None:
        """At the end of an epoch (`last`: the training's last): write its state, or keep it."""
        if self.path is None:
            return
        if last or time.perf_counter() - self.written >= self.every_s:
            self.write(state.resume_state(self.run_id))
        else:
            self.kept = host_copy(state.resume_state(self.run_id))

    @contextmanager
    def written_on_exception(self) -> Iterator[None]:
        """The block (the epochs' loop), with the last complete epoch written if an exception
        leaves it; a failure to write is a warning, the exception that stopped training goes on."""
        try:
            yield
        except BaseException:
            if self.kept is not None:
                try:
                    self.write(self.kept)
                except Exception as exc:
                    log.warning("train: could not keep the last complete epoch's state in %s (%s)", self.path, exc)
            raise


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
