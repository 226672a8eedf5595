"""Where runs go, and opening the store: the tracking URI, a quick reachability check, the
experiment (with MLflow's experiment-kind tag) and the cross-process lock for a fresh SQLite store."""

from __future__ import annotations

import os
from typing import Any
from urllib.parse import urlparse

from vaeinpaint.errors import TrackingError, one_line
from vaeinpaint.paths import MLFLOW_DB, project_root

# mlflow sets up its own logger when imported; keep its routine INFO lines out of stage output.
os.environ.setdefault("MLFLOW_LOGGING_LEVEL", "WARNING")
os.environ.setdefault("MLFLOW_ENABLE_ARTIFACTS_PROGRESS_BAR", "false")  # progress bars for copying a few MB
# MLflow's HTTP client retries a failing request for minutes by default (7 retries, backoff
# factor 2, 120 s timeout). A training that lost its server would stall that long at every
# call; these bound a failing call to about 10 s. Set the variables yourself to change them.
for _name, _value in (
    ("MLFLOW_HTTP_REQUEST_MAX_RETRIES", "3"),
    ("MLFLOW_HTTP_REQUEST_BACKOFF_FACTOR", "1"),
    ("MLFLOW_HTTP_REQUEST_TIMEOUT", "30"),
):
    os.environ.setdefault(_name, _value)

EXPERIMENT = "vae-inpainting"
ARTIFACTS_DIR = "mlartifacts"
# The MLflow UI (3.x) opens an experiment with this tag in its model-training view, not the GenAI one.
EXPERIMENT_KIND = ("mlflow.experimentKind", "custom_model_development")
REACH_TIMEOUT_S = float(os.environ.get("VAEINPAINT_TRACKING_TIMEOUT", "5"))


def tracking_enabled() -> bool:
    return os.environ.get("VAEINPAINT_TRACKING", "1").lower() not in ("0", "off", "false", "no")


def tracking_uri() -> str:
    return os.environ.get("MLFLOW_TRACKING_URI") or f"sqlite:///{project_root() / MLFLOW_DB}"


def is_server(uri: str) -> bool:
    return urlparse(uri).scheme in ("http", "https")


def unreachable_reason(uri: str, timeout: float = REACH_TIMEOUT_S) -> str | None:
    """None if the tracking server at `uri` answers within `timeout` (any HTTP status counts:
    it is up), else why not. Local stores (sqlite, files) are always reachable."""
    if not is_server(uri):
        return None
    import requests

    try:
        requests.get(uri.rstrip("/") + "/health", timeout=timeout)
    except requests.RequestException as exc:
        return one_line(exc)
    return None


def check_reachable(uri: str | None = None) -> None:
    """One quick request instead of MLflow's minutes of retries: a server that is down stops a
    stage before any work, with one line saying what to do. Nothing to check with tracking off."""
    if not tracking_enabled():
        return
    uri = uri or tracking_uri()
    reason = unreachable_reason(uri)
    if reason:
        raise TrackingError(
            f"tracking: the MLflow server at {uri} does not answer ({reason}); start it, point MLFLOW_TRACKING_URI "
            "at one that runs, or set VAEINPAINT_TRACKING=0 to run without tracking"
        )


def local_store_exists(uri: str) -> bool:
    """False for a SQLite store whose file is not there yet (reading must not create it)."""
    parsed = urlparse(uri)
    if parsed.scheme != "sqlite":
        return True
    return os.path.exists(uri[len("sqlite:///") :])


def client(uri: str | None = None) -> Any:
    """An MlflowClient for `uri` (default: tracking_uri()); also made mlflow's global URI, for
    the fluent APIs that read it (pyfunc.log_model, register_model, artifact downloads)."""
    import mlflow
    from mlflow import MlflowClient

    uri = uri or tracking_uri()
    mlflow.set_tracking_uri(uri)
    return MlflowClient(tracking_uri=uri)


def client_and_experiment() -> tuple[Any, str]:
    """Open the store and the experiment. Several processes opening a fresh SQLite store
    at once race on its schema migration and on creating the experiment (mlflow issues
    4123 and 6490), so that part holds an inter-process lock next to the database."""
    from filelock import FileLock

    uri = tracking_uri()
    check_reachable(uri)
    lock = FileLock(str(project_root() / f".{MLFLOW_DB}.lock")) if uri.startswith("sqlite:") else None
    if lock:
        lock.acquire(timeout=120)
    try:
        mlflow_client = client(uri)
        experiment = mlflow_client.get_experiment_by_name(EXPERIMENT)
        if experiment:
            experiment_id = experiment.experiment_id
            if experiment.tags.get(EXPERIMENT_KIND[0]) != EXPERIMENT_KIND[1]:  # a store made before the tag
                mlflow_client.set_experiment_tag(experiment_id, *EXPERIMENT_KIND)
        else:  # a local store keeps artifacts beside it at the root, not in the working directory
            location = (project_root() / ARTIFACTS_DIR).as_uri() if lock else None
            experiment_id = mlflow_client.create_experiment(EXPERIMENT, artifact_location=location, tags=dict([EXPERIMENT_KIND]))
    finally:
        if lock:
            lock.release()
    return mlflow_client, experiment_id
