"""DVC stage `train`: fit the VAE (GPU when present), keep a checkpoint and the loss curve.

With `train.gpus: N > 1` this script re-runs itself under torchrun (DistributedDataParallel);
only rank 0 writes outputs and talks to MLflow.
"""

import sys
from pathlib import Path

import pandas as pd

from vaeinpaint import paths, tracking
from vaeinpaint.cli import run_stage
from vaeinpaint.data.dataset import load_subset
from vaeinpaint.files import write_csv, write_json
from vaeinpaint.modeling.checkpoint import save_checkpoint
from vaeinpaint.modeling.train import (
    close_distributed,
    fingerprint,
    init_distributed,
    launched_by_torchrun,
    relaunch_with_torchrun,
    select_device,
    summary,
    train_model,
)
from vaeinpaint.params import load_params

INPUTS = {"images": paths.IMAGES, "split": paths.SPLIT, "masks": paths.MASKS}


def main(params_file: Path = paths.PARAMS) -> None:
    params = load_params(params_file)
    if params.train.gpus > 1 and not launched_by_torchrun():
        raise SystemExit(relaunch_with_torchrun(params.train.gpus, __file__, sys.argv[1:]))
    dist = init_distributed(params.train.device)
    subset = load_subset("train", lazy=True)  # read from the memory map: resident on the device, or streamed (feed.py)
    resume = paths.project_root() / paths.RESUME_DIR / f"{fingerprint(params, list(INPUTS.values()))}.pt"

    run = tracking.start_run(tracking.run_name(), tracking.run_tags(INPUTS)) if dist.main else tracking.NullRun()
    try:
        run.log_params(params.flat())
        result = train_model(
            params, subset.images, subset.masks, subset.ids, resume,
            on_epoch=lambda record: run.log_metrics({k: v for k, v in record.items() if k != "epoch"}, step=int(record["epoch"])),
            dist=dist,
        )  # fmt: skip
    except BaseException:
        run.end("FAILED")
        raise
    finally:
        close_distributed(dist)
    if not dist.main:
        return

    save_checkpoint(paths.CHECKPOINT, result.state)
    write_json(paths.RUN_INFO, {"run_id": run.run_id})
    write_json(paths.TRAIN_METRICS, summary(result, params, select_device(params.train.device)))
    write_csv(paths.TRAIN_CURVE, pd.DataFrame(result.history)[["epoch", "train_loss", "val_loss", "train_recon", "train_kl", "lr"]])
    run.log_artifact(paths.TRAIN_CURVE)
    run.log_artifact(paths.CHECKPOINT, "model")
    run.end()
    resume.unlink(missing_ok=True)  # finished: the checkpoint above is the record now


if __name__ == "__main__":
    run_stage(main)
