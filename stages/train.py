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

from vaeinpaint import paths, tracking
from vaeinpaint.cli import run_stage
from vaeinpaint.data.dataset import load_subset
from vaeinpaint.files import write_csv, write_json
from vaeinpaint.modeling.checkpoint import save_checkpoint
from vaeinpaint.modeling.distributed import (
    check_same_everywhere,
    close_distributed,
    init_distributed,
    launched_by_torchrun,
    relaunch_with_torchrun,
)
from vaeinpaint.modeling.precision import resolve_precision
from vaeinpaint.modeling.train import fingerprint, interrupted_run, select_device, summary, train_model
from vaeinpaint.params import load_params

INPUTS = {"images": paths.IMAGES, "split": paths.SPLIT, "masks": paths.MASKS}

log = logging.getLogger("vaeinpaint.stages.train")


def epoch_metrics(record: dict) -> dict:
    return {k: v for k, v in record.items() if k != "epoch"}


def open_run(resume: Path):
    """The MLflow run of an interrupted attempt at this training, reopened, with any epoch it
    missed (killed between saving an epoch and logging it) logged now; else a new run."""
    run_id, history = interrupted_run(resume)
    if not tracking.run_exists(run_id):
        return tracking.start_run(tracking.run_name(), tracking.run_tags(INPUTS))
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
        result = train_model(
            params, subset.images, subset.masks, subset.ids, resume,
            on_epoch=lambda record: run.log_metrics(epoch_metrics(record), step=int(record["epoch"])),
            dist=dist, run_id=run.run_id,
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
    write_json(paths.RUN_INFO, {"run_id": run.run_id})
    write_json(paths.TRAIN_METRICS, summary(result, params, device))
    write_csv(paths.TRAIN_CURVE, pd.DataFrame(result.history)[["epoch", "train_loss", "val_loss", "train_recon", "train_kl", "lr"]])
    run.log_artifact(paths.TRAIN_CURVE)
    run.log_artifact(paths.CHECKPOINT, "model")
    run.end()
    resume.unlink(missing_ok=True)  # finished: the checkpoint above is the record now


if __name__ == "__main__":
    run_stage(main)
