"""A training's MLflow run from start to end, as a context manager.

One run per training however often it is interrupted: an interrupted attempt's run (its id
is in the resume state) is reopened and given the epochs it missed, else a new run starts.
The run ends FINISHED when the block succeeds, FAILED when an exception leaves it, KILLED on
Ctrl-C; a failure to end it then is a warning, never the error the user sees. A server lost
on the way is reported as a warning when the block succeeds: the training and its files are
sound, only the MLflow record is incomplete.

Independent of training: what it needs (the interrupted run's id and epoch records) comes
in as arguments.
"""

from __future__ import annotations

import logging
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from vaeinpaint.tracking.lineage import run_name, run_tags
from vaeinpaint.tracking.runs import NullRun, RunLike, resume_run, run_exists, start_run

log = logging.getLogger("vaeinpaint.stages.train")


def epoch_metrics(record: Mapping[str, Any]) -> dict[str, Any]:
    """An epoch's record as the run's metrics at step `epoch`."""
    return {k: v for k, v in record.items() if k != "epoch"}


def open_training_run(run_id: str, history: list[dict[str, float]], inputs: Mapping[str, Path], script: str | Path) -> RunLike:
    """The MLflow run `run_id` of an interrupted attempt at this training, reopened, with any
    epoch of `history` it missed (killed between saving an epoch and logging it) logged now;
    else a new run."""
    if not run_exists(run_id):
        return start_run(run_name(), run_tags(inputs, script))
    log.info("train: continuing MLflow run %s", run_id)
    run = resume_run(run_id)
    logged = run.logged_steps("train_loss")
    for record in history:
        if int(record["epoch"]) not in logged:
            run.log_metrics(epoch_metrics(record), step=int(record["epoch"]))
    return run


def end_quietly(run: RunLike, status: str) -> None:
    """End `run` while an error is on its way out: if that fails too, say so, but let the
    first error be the one the user sees."""
    try:
        run.end(status)
    except Exception as exc:
        log.warning(
            "train: could not mark the MLflow run %s (%s: %s); the error that stopped training follows", status, exc.__class__.__name__, exc
        )


@contextmanager
def training_run(
    run_id: str, history: list[dict[str, float]], inputs: Mapping[str, Path], script: str | Path, main: bool = True
) -> Iterator[RunLike]:
    """The training's run (`open_training_run`) for the block, ended by its outcome. Processes
    other than the `main` one get a NullRun: only the main process talks to MLflow."""
    run: RunLike = NullRun()
    try:
        if main:
            run = open_training_run(run_id, history, inputs, script)
        yield run
    except BaseException as exc:
        end_quietly(run, "KILLED" if isinstance(exc, KeyboardInterrupt) else "FAILED")
        raise
    run.end()
    if report := run.lost_report():
        # A warning, not a failure: DVC keeps a stage's outputs only when it succeeds, and
        # the training and its files are sound; only the MLflow record is incomplete.
        log.warning("warning: %s; the DVC outputs and metrics files are written", report)
