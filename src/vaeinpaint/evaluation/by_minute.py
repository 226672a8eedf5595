"""Test quality against minutes of training: what more minutes buy.

During training, the `train` stage scores the model (the moving average when `train.ema` is
on, the mean latent, known pixels pasted back: as `evaluate` scores) `train.probe_points`
times, spread evenly over its schedule (the time budget's minutes, else its epochs), plus after
the first epoch and at the end, on `train.probe_images` test images spread evenly over the
test set with their stored masks. It writes them to `data/model/probe.json` (the images'
ids, and per probe the epoch, minutes of training so far, ssim, hole_psnr). The probe is a record, never a decision: nothing in
training reads it (no early stopping, no model selection on test images).

`evaluate` then adds each baseline's scores on the same images as flat lines and writes
`metrics/quality_by_minute.csv` (minutes, epoch, method, n, ssim, hole_psnr), which
`dvc plots` draws. Minutes are of training (steps, validation, checkpoints), not logging or
probing: the clock leaves those out.

A probe in the middle of a time-budgeted run sees a model whose learning rate has not yet
annealed; a run given only that many minutes would anneal earlier and score higher. The
curve is a lower bound on what a shorter budget buys, and shows whether the end is flat.
"""

from __future__ import annotations

import math
from collections.abc import Callable

import numpy as np
import pandas as pd
import torch

from vaeinpaint.evaluation.baselines import evenly_spaced
from vaeinpaint.evaluation.evaluate import restore, score

PROBE_COLUMNS = ["epoch", "minutes", "ssim", "hole_psnr"]
COLUMNS = ["minutes", "epoch", "method", "n", "ssim", "hole_psnr"]


def probe_rows(n_test: int, probe_images: int) -> np.ndarray:
    """Which test images (positions in the test subset) the probe scores."""
    return evenly_spaced(n_test, min(probe_images, n_test))


class Probe:
    """Scores a model on fixed test images at `points` evenly spaced marks of its schedule:
    progress is minutes / `budget_minutes` with a time budget, else epoch / `epochs`. Call it
    at the end of every epoch (it scores only when a mark has been passed, and always after the
    first epoch); `finish` scores the final model unless its epoch was just scored."""

    def __init__(
        self,
        images: np.ndarray,
        masks: np.ndarray,
        points: int,
        budget_minutes: float,
        epochs: int,
        rows: list[dict] | None = None,
        on_row: Callable[[dict], None] | None = None,
    ):
        self.images, self.masks = images, masks
        self.points, self.budget, self.epochs = points, budget_minutes, epochs
        self.rows: list[dict] = list(rows or [])
        self.on_row = on_row
        done = self._progress(self.rows[-1]["epoch"], self.rows[-1]["minutes"]) if self.rows else -1.0
        self.next_mark = self._mark_after(done)

    def _progress(self, epoch: int, minutes: float) -> float:
        return minutes / self.budget if self.budget else epoch / self.epochs

    def _mark_after(self, progress: float) -> float:
        """The first mark (k / points, k >= 1) beyond `progress`; 0 before anything ran."""
        if progress < 0:
            return 0.0
        return (math.floor(round(progress * self.points, 9)) + 1) / self.points

    def __call__(self, epoch: int, model: torch.nn.Module, minutes: float) -> None:
        if not self.points:
            return
        progress = self._progress(epoch, minutes)
        if progress + 1e-9 >= self.next_mark:
            self._score(epoch, model, minutes)
            self.next_mark = self._mark_after(progress)

    def finish(self, epoch: int, model: torch.nn.Module, minutes: float) -> None:
        if self.points and (not self.rows or self.rows[-1]["epoch"] != epoch):
            self._score(epoch, model, minutes)

    @torch.no_grad()
    def _score(self, epoch: int, model: torch.nn.Module, minutes: float) -> None:
        was_training = model.training
        device = next(model.parameters()).device
        raw = restore(model, self.images, self.masks, device, batch_size=256)
        model.train(was_training)
        scores = score(self.images, self.masks, raw)
        row = {
            "epoch": int(epoch),
            "minutes": round(float(minutes), 3),
            "ssim": round(float(scores["ssim"].mean()), 6),
            "hole_psnr": round(float(scores["hole_psnr"].mean()), 4),
        }
        self.rows.append(row)
        if self.on_row:
            self.on_row(row)

    def table(self) -> pd.DataFrame:
        return pd.DataFrame(self.rows, columns=PROBE_COLUMNS)


def quality_by_minute(probe: pd.DataFrame, probe_ids: list[str], baselines: pd.DataFrame | None) -> pd.DataFrame:
    """The model's probe rows, then each baseline's mean scores on the same test images
    (`probe_ids`), repeated at every probe's minutes so that the plot draws them as flat lines."""
    n = len(probe_ids)
    table = probe.assign(method="model", n=n)
    tables = [table]
    if baselines is not None and len(probe):
        chosen = baselines[(baselines["subset"] == "test") & baselines["id"].isin(set(probe_ids))]
        for method, scores in chosen.groupby("method", sort=False):
            flat = probe[["minutes", "epoch"]].assign(
                method=method,
                n=len(scores),
                ssim=round(float(scores["ssim"].mean()), 6),
                hole_psnr=round(float(scores["hole_psnr"].mean()), 4),
            )
            tables.append(flat)
    return pd.concat(tables, ignore_index=True)[COLUMNS]
