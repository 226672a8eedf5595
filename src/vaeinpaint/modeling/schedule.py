"""The learning-rate schedule, by steps or by the clock, and the clock that drives it.

Warm-up over the first 3%, then cosine decay to 1% of `train.lr`. Without a time budget the
schedule runs over `train.epochs` in optimiser steps, exactly as it always has. With
`train.max_minutes` it runs over the elapsed training time (or the steps, whichever is
further used up), so that stopping at the budget is stopping at the end of the schedule.
"""

from __future__ import annotations

import math
import time
from dataclasses import dataclass, field


def lr_factor(step: int, total: int) -> float:
    """By steps: linear warm-up over the first 3% of steps, then cosine decay to 1% of the peak."""
    warmup = max(1, int(0.03 * total))
    if step < warmup:
        return (step + 1) / warmup
    progress_ = min(1.0, (step - warmup) / max(1, total - warmup))
    return 0.01 + 0.99 * 0.5 * (1.0 + math.cos(math.pi * progress_))


WARMUP = 0.03  # share of the schedule spent warming up


def lr_at(progress_: float) -> float:
    """By progress in [0, 1] (a time budget's schedule): linear warm-up from 1% to the peak
    over the first 3%, then cosine decay to 1% of the peak; 1% past the end."""
    p = min(max(progress_, 0.0), 1.0)
    if p < WARMUP:
        return 0.01 + 0.99 * p / WARMUP
    return 0.01 + 0.99 * 0.5 * (1.0 + math.cos(math.pi * (p - WARMUP) / (1.0 - WARMUP)))


@dataclass
class TrainingClock:
    """Elapsed training time, summed over every session of a resumed training, as all the
    processes agree on it. It is read (a host sync) only at sync points, and between them
    extrapolated by step at the last measured seconds per step, so the learning rate of every
    step is a function of values all processes share: their replicas never diverge.

    `agreed` is the elapsed time at the last sync point, the largest over processes (the
    slowest clock decides: nobody overshoots the budget), after `synced_step` optimiser steps."""

    budget: float = 0.0  # seconds; 0: no budget
    carried: float = 0.0  # seconds spent in earlier sessions of this training
    agreed: float = 0.0
    synced_step: int = 0
    rate: float = 0.0  # seconds per step over the last interval inside one epoch (0: not measured yet)
    epoch_started: bool = False  # no sync yet in this epoch: the next interval spans validation and saving
    session_start: float = field(default_factory=lambda: time.perf_counter())

    def local_elapsed(self) -> float:
        return self.carried + (time.perf_counter() - self.session_start)

    def now(self) -> float:
        """The clock's own timer (what `exclude` takes differences of)."""
        return time.perf_counter()

    def exclude(self, seconds: float) -> None:
        """Take `seconds` just spent (logging, probing) off the elapsed training time."""
        self.session_start += seconds

    def new_epoch(self) -> None:
        self.epoch_started = True

    def synced(self, agreed: float, step: int) -> None:
        if not self.epoch_started and step > self.synced_step:
            self.rate = (agreed - self.agreed) / (step - self.synced_step)
        self.agreed, self.synced_step, self.epoch_started = agreed, step, False

    def progress(self, step: int) -> float:
        """Share of the budget used when `step` optimiser steps are done."""
        return (self.agreed + max(0, step - self.synced_step) * self.rate) / self.budget

    def over_budget(self) -> bool:
        return self.budget > 0 and self.agreed >= self.budget

    def state(self) -> dict[str, float]:
        return {"elapsed": self.local_elapsed(), "synced_step": self.synced_step, "rate": self.rate}

    def restore(self, state: dict[str, float]) -> None:
        self.carried = self.agreed = float(state["elapsed"])
        self.synced_step, self.rate = int(state["synced_step"]), float(state["rate"])
        self.session_start = time.perf_counter()


def schedule(step: int, total: int, clock: TrainingClock) -> float:
    """The learning-rate factor for optimiser step `step`: by steps without a budget (as it
    always was), else by whichever of the time budget and `total` steps is further used up."""
    if not clock.budget:
        return lr_factor(step, total)
    return lr_at(max(clock.progress(step), step / total))


def sync_due(step: int, steps_per_epoch: int, clock: TrainingClock) -> bool:
    """Whether step `step` (0-based, of an epoch) ends with a sync point: every 50 steps and at
    the end of an epoch; with a budget whose step time is not measured yet, also after steps
    1, 2, 4, 8, ... so the clock can drive the schedule from the start."""
    done = step + 1
    if done % 50 == 0 or done == steps_per_epoch:
        return True
    return bool(clock.budget) and clock.rate == 0 and done & (done - 1) == 0
