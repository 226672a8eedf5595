"""MLflow: the only package that imports mlflow (a test checks it), and only inside
functions or in the modules that need it (`pyfunc`, `model_code`), so importing
`vaeinpaint.tracking` costs nothing and `VAEINPAINT_TRACKING=0` never loads mlflow.

Where runs go: `MLFLOW_TRACKING_URI` if set, else the SQLite store `mlflow.db` at the
project root (`DVC_ROOT`, which DVC points at the real root even for queued experiments
running in temporary copies).

- `store`: the tracking URI, the reachability check, the experiment;
- `runs`: one run per train + evaluate (train creates it and writes its id to
  `data/model/run.json`; evaluate reopens it), tolerant of a server lost mid-run;
- `lifecycle`: a training's run as a context manager (`training_run`): new or reopened,
  ended FINISHED, FAILED or KILLED;
- `lineage`: MLflow's source tags and the prepared datasets;
- `pyfunc`, `model_code`: the trained model as an MLflow pyfunc model;
- `registry`: registering models, listing them, model URIs -> checkpoint files.
"""

from vaeinpaint.errors import TrackingError
from vaeinpaint.tracking.lifecycle import epoch_metrics, open_training_run, training_run
from vaeinpaint.tracking.lineage import git_commit, prepared_datasets, run_name, run_tags
from vaeinpaint.tracking.registry import is_model_uri, list_registered_models, register, resolve_checkpoint
from vaeinpaint.tracking.runs import NullRun, Run, RunLike, flat_metrics, resume_run, run_exists, start_run
from vaeinpaint.tracking.store import EXPERIMENT, check_reachable, tracking_enabled, tracking_uri

__all__ = [
    "EXPERIMENT",
    "NullRun",
    "Run",
    "RunLike",
    "TrackingError",
    "check_reachable",
    "epoch_metrics",
    "flat_metrics",
    "git_commit",
    "is_model_uri",
    "list_registered_models",
    "open_training_run",
    "prepared_datasets",
    "register",
    "resolve_checkpoint",
    "resume_run",
    "run_exists",
    "run_name",
    "run_tags",
    "start_run",
    "tracking_enabled",
    "tracking_uri",
    "training_run",
]
