"""DVC stage `train`: fit the VAE (GPU when present), keep a checkpoint and the loss curve.

With `train.gpus > 1` or `train.nodes > 1` this script re-runs itself under torchrun
(DistributedDataParallel); only global rank 0 writes outputs and talks to MLflow.
An interrupted training (kill -9, Ctrl-C, a crash) continues at the next `dvc repro` in the
same MLflow run, whose id is kept in the resume state: one run per training, every epoch
logged once.
"""

import logging
import sys
from pathlib import Path

import pandas as pd
import torch

from vaeinpaint import paths, tracking
from vaeinpaint.console import run_stage
from vaeinpaint.data.dataset import load_subset, read_split
from vaeinpaint.evaluation.baselines import evenly_spaced
from vaeinpaint.evaluation.by_minute import Probe, probe_rows
from vaeinpaint.evaluation.evaluate import restore, sample_grid
from vaeinpaint.files import read_json, write_csv, write_json
from vaeinpaint.modeling.checkpoint import save_checkpoint
from vaeinpaint.modeling.device import select_device
from vaeinpaint.modeling.distributed import (
    check_same_everywhere,
    close_distributed,
    init_distributed,
    launched_by_torchrun,
    relaunch_with_torchrun,
)
from vaeinpaint.modeling.precision import resolve_precision
from vaeinpaint.modeling.train import fingerprint, interrupted_run, summary, train_model
from vaeinpaint.params import load_params

INPUTS = {"images": paths.IMAGES, "split": paths.SPLIT, "masks": paths.MASKS}
GRID_IMAGES = 8  # test images restored in the MLflow image view every train.image_every epochs


def restorations(run, every: int, epochs: int):
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


def test_probe(tp, resume: Path, run) -> tuple[Probe, list[str]] | None:
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

    def keep(row: dict) -> None:
        write_json(saved, probe.rows)
        run.log_metrics({"probe_test_ssim": row["ssim"], "probe_test_hole_psnr": row["hole_psnr"]}, step=row["epoch"])

    probe = Probe(test.images[chosen], test.masks[chosen], tp.probe_points, tp.max_minutes, tp.epochs, rows, on_row=keep)
    return probe, [test.ids[i] for i in chosen]


def probe_state(resume: Path) -> Path:
    return resume.with_name(resume.stem + ".probe.json")


def every_epoch(*callbacks):
    """One on_model callback that calls each of `callbacks` that is not None."""
    active = [c for c in callbacks if c is not None]
    if not active:
        return None

    def call(epoch: int, model: torch.nn.Module, minutes: float) -> None:
        for callback in active:
            callback(epoch, model, minutes)

    return call


log = logging.getLogger("vaeinpaint.stages.train")


def epoch_metrics(record: dict) -> dict:
    return {k: v for k, v in record.items() if k != "epoch"}


def open_run(resume: Path):
    """The MLflow run of an interrupted attempt at this training, reopened, with any epoch it
    missed (killed between saving an epoch and logging it) logged now; else a new run."""
    run_id, history = interrupted_run(resume)
    if not tracking.run_exists(run_id):
        return tracking.start_run(tracking.run_name(), tracking.run_tags(INPUTS, __file__))
    log.info("train: continuing MLflow run %s", run_id)
    run = tracking.resume_run(run_id)
    logged = run.logged_steps("train_loss")
    for record in history:
        if int(record["epoch"]) not in logged:
            run.log_metrics(epoch_metrics(record), step=int(record["epoch"]))
    return run


def cleanup_quietly(what: str, action) -> None:
    """Run a cleanup while an error is on its way out: if it fails too, say so, but let the
    first error be the one the user sees."""
    try:
        action()
    except Exception as exc:
        log.warning("train: could not %s (%s: %s); the error that stopped training follows", what, exc.__class__.__name__, exc)


def main(params_file: Path = paths.PARAMS) -> None:
    params = load_params(params_file)
    tp = params.train
    resume = paths.project_root() / paths.RESUME_DIR / f"{fingerprint(params, list(INPUTS.values()))}.pt"
    if (tp.gpus > 1 or tp.nodes > 1) and not launched_by_torchrun():
        raise SystemExit(relaunch_with_torchrun(tp, __file__, sys.argv[1:]))
    device = select_device(tp.device)
    dist = init_distributed(device.type == "cuda")
    run = tracking.NullRun()
    try:
        check_same_everywhere(resume.stem, "configuration (fingerprint of params and data)", dist)
        subset = load_subset("train", lazy=True)  # read from the memory map: resident on the device, or streamed (feed.py)
        if dist.main:
            run = open_run(resume)
        run.log_params(params.flat())
        run.set_tags({"train.precision_used": resolve_precision(device, tp.precision)})
        sizes = read_split()["subset"].value_counts().to_dict()
        run.log_datasets(tracking.prepared_datasets(params.data, paths.IMAGES, paths.SPLIT, paths.MASKS, sizes, params.prepare.size))
        run.watch_system()
        probe = test_probe(tp, resume, run) if dist.main else None
        result = train_model(
            params, subset.images, subset.masks, subset.ids, resume,
            on_epoch=lambda record: run.log_metrics(epoch_metrics(record), step=int(record["epoch"])),
            dist=dist, run_id=run.run_id,
            on_model=every_epoch(restorations(run, tp.image_every, tp.epochs), probe[0] if probe else None),
        )  # fmt: skip
    except BaseException as exc:
        status = "KILLED" if isinstance(exc, KeyboardInterrupt) else "FAILED"
        cleanup_quietly(f"mark the MLflow run {status}", lambda: run.end(status))
        cleanup_quietly("leave the process group", lambda: close_distributed(dist))
        raise
    close_distributed(dist)
    if not dist.main:
        return

    save_checkpoint(paths.CHECKPOINT, result.state)
    if probe:
        probe[0].finish(int(result.state["epoch"]), result.model, result.minutes)
        write_json(paths.PROBE, {"test_ids": probe[1], "rows": probe[0].rows})
    write_json(paths.TRAIN_METRICS, summary(result, params, device))
    write_csv(paths.TRAIN_CURVE, pd.DataFrame(result.history)[["epoch", "train_loss", "val_loss", "train_recon", "train_kl", "lr"]])
    run.log_artifact(paths.TRAIN_CURVE)
    run.log_model(paths.CHECKPOINT, step=int(result.state["epoch"]))  # the pyfunc model `model`, under Logged models
    run.end()
    info = {"run_id": run.run_id, "model_id": run.model_id}
    write_json(paths.RUN_INFO, {**info, "unlogged": run.unlogged()} if run.unlogged() else info)
    resume.unlink(missing_ok=True)  # finished: the checkpoint above is the record now
    probe_state(resume).unlink(missing_ok=True)
    if report := run.lost_report():
        # A warning, not a failure: DVC keeps a stage's outputs only when it succeeds, and
        # the training and its files are sound; only the MLflow record is incomplete.
        log.warning("warning: %s; the DVC outputs and metrics files are written", report)


if __name__ == "__main__":
    run_stage(main)
