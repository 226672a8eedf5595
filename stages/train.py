"""DVC stage `train`: fit the VAE (GPU when present), keep a checkpoint and the loss curve.

With `train.gpus > 1` or `train.nodes > 1` this script re-runs itself under torchrun
(DistributedDataParallel); only global rank 0 writes outputs and talks to MLflow.
An interrupted training (kill -9, Ctrl-C, a crash) continues at the next `dvc repro` in the
same MLflow run, whose id is kept in the resume state: one run per training, every epoch
logged once.
"""

import sys
from pathlib import Path

from vaeinpaint import paths, tracking
from vaeinpaint.console import run_stage
from vaeinpaint.modeling.device import select_device
from vaeinpaint.modeling.distributed import (
    check_same_everywhere,
    init_distributed,
    launched_by_torchrun,
    process_group,
    relaunch_with_torchrun,
)
from vaeinpaint.modeling.toolchain import check_compile_toolchain
from vaeinpaint.modeling.train import interrupted_run
from vaeinpaint.params import load_params
from vaeinpaint.training import INPUTS, finish, resume_file, train_and_record, write_outputs


def main(params_file: Path = paths.PARAMS) -> None:
    params = load_params(params_file)
    tp = params.train
    device = select_device(tp.device)
    check_compile_toolchain(tp.compile, device)  # before any process starts, not a minute into the first step
    resume = resume_file(params)
    if (tp.gpus > 1 or tp.nodes > 1) and not launched_by_torchrun():
        raise SystemExit(relaunch_with_torchrun(tp, __file__, sys.argv[1:]))  # checks train.gpus against the GPUs first
    dist = init_distributed(device.type == "cuda")
    with process_group(dist):  # left at the end, quietly when an error is on its way out
        check_same_everywhere(resume.stem, "configuration (fingerprint of params and data)", dist)  # before any run
        with tracking.training_run(*interrupted_run(resume), INPUTS, __file__, main=dist.main) as run:
            result, probe = train_and_record(params, resume, run, dist, device)
            if dist.main:
                write_outputs(result, probe, run, params, device)
    if dist.main:
        finish(run, resume)  # after the run's end: run.json records what it did not get


if __name__ == "__main__":
    run_stage(main)
