"""MLflow: the only package that imports mlflow (a test checks it), and only inside
functions or in the modules that need it (`pyfunc`, `model_code`), so importing
`vaeinpaint.tracking` costs nothing and `VAEINPAINT_TRACKING=0` never loads mlflow.

Where runs go: `MLFLOW_TRACKING_URI` if set, else the SQLite store `mlflow.db` at the
project root (`DVC_ROOT`, which DVC points at the real root even for queued experiments
running in temporary copies).

- `store`: the tracking URI, the reachability check, the experiment;
- `runs`: one run per train + evaluate (train creates it and writes its id to
  `data/model/run.json`; evaluate reopens it), tolerant of a server lost mid-run;
- `lineage`: MLflow's source tags and the prepared datasets;
- `pyfunc`, `model_code`: the trained model as an MLflow pyfunc model;
- `registry`: registering models, listing them, model URIs -> checkpoint files.
"""

from vaeinpaint.errors import TrackingError
from vaeinpaint.tracking.lineage import git_commit, prepared_datasets, run_name, run_tags
from vaeinpaint.tracking.registry import is_model_uri, list_registered_models, register, resolve_checkpoint
from vaeinpaint.tracking.runs import NullRun, Run, flat_metrics, resume_run, run_exists, start_run
from vaeinpaint.tracking.store import EXPERIMENT, check_reachable, tracking_enabled, tracking_uri

__all__ = [
    "EXPERIMENT",
    "NullRun",
    "Run",
    "TrackingError",
    "check_reachable",
    "flat_metrics",
    "git_commit",
    "is_model_uri",
    "list_registered_models",
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
]
