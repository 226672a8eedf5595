"""The train stage's work, below its script: train with every epoch recorded to the run (its
metrics, the restorations of a few test images, the probe of test quality against minutes),
then write the outputs DVC keeps.

The run is anything that follows `tracking.RunLike`; this module never talks to MLflow.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import pandas as pd
import torch

from vaeinpaint import paths
from vaeinpaint.data.dataset import load_subset, read_split
from vaeinpaint.evaluation.baselines import evenly_spaced
from vaeinpaint.evaluation.by_minute import Probe, probe_rows
from vaeinpaint.evaluation.evaluate import restore, sample_grid
from vaeinpaint.files import read_json, write_csv, write_json
from vaeinpaint.modeling.checkpoint import save_checkpoint
from vaeinpaint.modeling.distributed import Distributed
from vaeinpaint.modeling.precision import resolve_precision
from vaeinpaint.modeling.setup import resolve_batch
from vaeinpaint.modeling.train import TrainResult, fingerprint, interrupted_run, summary, train_model
from vaeinpaint.params import Params
from vaeinpaint.tracking import RunLike, epoch_metrics, prepared_datasets

INPUTS = {"images": paths.IMAGES, "split": paths.SPLIT, "masks": paths.MASKS}
GRID_IMAGES = 8  # test images restored in the MLflow image view every train.image_every epochs


def resume_file(params: Params) -> Path:
    """Where this configuration's resume state lives (`modeling.train`: outside DVC's outputs)."""
    return paths.project_root() / paths.RESUME_DIR / f"{fingerprint(params, list(INPUTS.values()))}.pt"


def restorations(run: RunLike, every: int, epochs: int):
    """A callback that logs the same GRID_IMAGES test images (with their stored masks), as the
    model restores them, every `every` epochs and at the last one: MLflow's image view then
    shows the restorations improving over training. None when there is nothing to log to."""
    if not run.run_id or not every:
        return None
    test = load_subset("test")
    chosen = evenly_spaced(len(test.ids), GRID_IMAGES)
    images, masks = test.images[chosen], test.masks[chosen]

    def log_grid(epoch: int, model: torch.nn.Module, minutes: float) -> None:
        if epoch % every == 0 or epoch == epochs:
            device = next(model.parameters()).device
            raw = restore(model, images, masks, device, batch_size=len(images))
            run.log_image(sample_grid(images, masks, raw, title=f"epoch {epoch}"), key="restorations", step=epoch)

    return log_grid


@dataclass
class Probing:
    probe: Probe
    test_ids: list[str]  # the probed images' ids


def test_probe(tp, resume: Path, run: RunLike) -> Probing | None:
    """The probe of test quality against minutes (`evaluation.by_minute`) and its images' ids,
    None with train.probe_points 0. Its rows so far are kept beside the resume state, so an
    interrupted training's curve continues where it stopped."""
    if not tp.probe_points:
        return None
    test = load_subset("test")
    chosen = probe_rows(len(test.ids), tp.probe_images)
    saved = probe_state(resume)
    _, history = interrupted_run(resume)
    rows = [r for r in read_json(saved) if r["epoch"] <= len(history)] if saved.exists() and history else []
    logged = run.logged_steps("probe_test_ssim") if history else set()  # probes past the resume point are made again

    def keep(row: dict) -> None:
        write_json(saved, probe.rows)
        if row["epoch"] not in logged:
            run.log_metrics({"probe_test_ssim": row["ssim"], "probe_test_hole_psnr": row["hole_psnr"]}, step=row["epoch"])

    probe = Probe(test.images[chosen], test.masks[chosen], tp.probe_points, tp.max_minutes, tp.epochs, rows, on_row=keep)
    return Probing(probe, [test.ids[i] for i in chosen])


test_probe.__test__ = False  # not a pytest test, whatever its name


def probe_state(resume: Path) -> Path:
    return resume.with_name(resume.stem + ".probe.json")


def log_epochs_once(run: RunLike):
    """on_epoch: each epoch's metrics to the run at step `epoch`, but not those the run has
    already: after a kill, the epochs since the last resume point are trained again (to the
    same values, on CPU) and would otherwise be logged twice."""
    logged = run.logged_steps("train_loss") if run.run_id else set()

    def log_epoch(record: dict) -> None:
        if int(record["epoch"]) not in logged:
            run.log_metrics(epoch_metrics(record), step=int(record["epoch"]))

    return log_epoch


def every_epoch(*callbacks):
    """One on_model callback that calls each of `callbacks` that is not None."""
    active = [c for c in callbacks if c is not None]
    if not active:
        return None

    def call(epoch: int, model: torch.nn.Module, minutes: float) -> None:
        for callback in active:
            callback(epoch, model, minutes)

    return call


def train_and_record(
    params: Params, resume: Path, run: RunLike, dist: Distributed, device: torch.device
) -> tuple[TrainResult, Probing | None]:
    """Train on the train subset (read from its memory map: resident on the device, or
    streamed), with the run given the params, the precision used, the datasets, the system's
    load, every epoch's metrics, the restorations and the probe."""
    tp = params.train
    subset = load_subset("train", lazy=True)
    run.log_params(params.flat())  # as given (train.batch_size: auto); what they resolved to, as tags
    batch, lr = resolve_batch(tp, device, dist.world)
    run.set_tags(
        {"train.precision_used": resolve_precision(device, tp.precision), "train.batch_size_used": str(batch), "train.lr_used": f"{lr:g}"}
    )
    sizes = read_split()["subset"].value_counts().to_dict()
    run.log_datasets(prepared_datasets(params.data, paths.IMAGES, paths.SPLIT, paths.MASKS, sizes, params.prepare.size))
    run.watch_system()
    probe = test_probe(tp, resume, run) if dist.main else None
    result = train_model(
        params, subset.images, subset.masks, subset.ids, resume,
        on_epoch=log_epochs_once(run),
        dist=dist, run_id=run.run_id,
        on_model=every_epoch(restorations(run, tp.image_every, tp.epochs), probe.probe if probe else None),
    )  # fmt: skip
    return result, probe


def write_outputs(result: TrainResult, probe: Probing | None, run: RunLike, params: Params, device: torch.device) -> None:
    """The checkpoint, the probe's rows, metrics/train.json and the loss curve; the curve and
    the model (the pyfunc model `model`, under Logged models) to the run."""
    save_checkpoint(paths.CHECKPOINT, result.state)
    if probe:
        probe.probe.finish(int(result.state["epoch"]), result.model, result.minutes)
        write_json(paths.PROBE, {"test_ids": probe.test_ids, "rows": probe.probe.rows})
    write_json(paths.TRAIN_METRICS, summary(result, params, device))
    write_csv(paths.TRAIN_CURVE, pd.DataFrame(result.history)[["epoch", "train_loss", "val_loss", "train_recon", "train_kl", "lr"]])
    run.log_artifact(paths.TRAIN_CURVE)
    run.log_model(paths.CHECKPOINT, step=int(result.state["epoch"]))


def finish(run: RunLike, resume: Path) -> None:
    """After the run has ended: its id (and what it did not get) in run.json for evaluate,
    and the resume state gone (the checkpoint is the record now)."""
    info = {"run_id": run.run_id, "model_id": run.model_id}
    write_json(paths.RUN_INFO, {**info, "unlogged": run.unlogged()} if run.unlogged() else info)
    resume.unlink(missing_ok=True)
    probe_state(resume).unlink(missing_ok=True)
