"""The model registry and model URIs: register a run's model (or the best run's) under a
name with an alias, list what is registered, and turn any model spec into a local checkpoint.

A model spec is what `--model` and `evaluate.model` take:
- a checkpoint file: `data/model/checkpoint.pt`;
- `runs:/RUN_ID/model`: the pyfunc model a training run logged (or `runs:/RUN_ID/path.pt`,
  any checkpoint file among a run's artifacts);
- `models:/NAME@ALIAS` or `models:/NAME/VERSION`: a registered model.
The registry needs a database store (SQLite, the default, or a server with one).
"""

from __future__ import annotations

import hashlib
import logging
import math
import os
import re
import shutil
import tempfile
from pathlib import Path
from typing import Any

import yaml

from vaeinpaint.errors import TrackingError, one_line
from vaeinpaint.tracking.store import (
    EXPERIMENT,
    client,
    client_and_experiment,
    is_server,
    local_store_exists,
    tracking_enabled,
    tracking_uri,
    unreachable_reason,
)

log = logging.getLogger(__name__)

REGISTERED_NAME = "vae-inpainting"
MODEL_NAME = "model"  # the name train logs its pyfunc model under (tracking.pyfunc.MODEL_NAME)
LIST_TIMEOUT_S = 2.0
# --best: which way is better, by the metric's name. Anything else needs --higher or --lower.
HIGHER_IS_BETTER = ("ssim", "psnr")
LOWER_IS_BETTER = ("loss", "l1", "kl", "mse", "mae", "seconds")

RUNS_URI = re.compile(r"^runs:/(?P<run>[^/]+)/(?P<path>.+)$")
LOGGED_MODEL_URI = re.compile(r"^models:/(?P<id>m-[0-9a-f]+)$")
MODELS_URI = re.compile(r"^models:/(?P<name>[^/@]+)(?:@(?P<alias>[^/]+)|/(?P<version>\d+))$")


def is_model_uri(spec: str) -> bool:
    return spec.startswith(("runs:/", "models:/"))


# --- choosing and registering --------------------------------------------------------


def higher_is_better(metric: str, higher: bool | None = None) -> bool:
    """`higher` when given; else by name: ssim, psnr: higher; loss, l1, kl, mse, mae: lower."""
    if higher is not None:
        return higher
    words = set(re.split(r"[^a-z0-9]+", metric.lower()))
    up, down = words & set(HIGHER_IS_BETTER), words & set(LOWER_IS_BETTER)
    if bool(up) == bool(down):
        raise TrackingError(f"--best {metric}: cannot tell whether higher or lower is better; add --higher or --lower")
    return bool(up)


def best_run(metric: str, higher: bool | None = None) -> Any:
    """The finished run of the experiment with the best `metric` that has a logged model;
    ties go to the newest run."""
    mlflow_client, experiment_id = client_and_experiment()
    up = higher_is_better(metric, higher)
    candidates = []
    token = None
    while True:
        page = mlflow_client.search_runs([experiment_id], "attributes.status = 'FINISHED'", max_results=1000, page_token=token)
        candidates += [r for r in page if metric in r.data.metrics and not math.isnan(r.data.metrics[metric])]
        token = page.token
        if not token:
            break
    with_model = logged_model_runs(mlflow_client, experiment_id)
    candidates = [r for r in candidates if r.info.run_id in with_model]
    if not candidates:
        raise TrackingError(f"--best {metric}: no finished run in experiment {EXPERIMENT} has that metric and a logged model")
    sign = 1 if up else -1
    return max(candidates, key=lambda r: (sign * r.data.metrics[metric], r.info.start_time))


def logged_model_runs(mlflow_client: Any, experiment_id: str) -> dict[str, str]:
    """Run id -> id of the newest model named `model` it logged."""
    models, token = [], None
    while True:
        page = mlflow_client.search_logged_models([experiment_id], filter_string=f"name = '{MODEL_NAME}'", page_token=token)
        models += [m for m in page if m.source_run_id]
        token = page.token
        if not token:
            break
    return {m.source_run_id: m.model_id for m in sorted(models, key=lambda m: m.creation_timestamp)}


def register(
    run_id: str | None = None, metric: str | None = None, higher: bool | None = None, alias: str | None = None, name: str = REGISTERED_NAME
) -> dict[str, str]:
    """Register run `run_id`'s model (or the best run's by `metric`) as a new version of
    `name`, point `alias` at it, and say what was done."""
    import mlflow
    from mlflow.exceptions import MlflowException

    if (run_id is None) == (metric is None):
        raise TrackingError("register: give exactly one of --run RUN_ID or --best METRIC")
    if not tracking_enabled():
        raise TrackingError("register: MLflow tracking is off (VAEINPAINT_TRACKING=0)")
    mlflow_client, experiment_id = client_and_experiment()
    if metric is not None:
        run = best_run(metric, higher)
    else:
        try:
            run = mlflow_client.get_run(run_id)
        except MlflowException:
            raise TrackingError(f"--run {run_id}: no such run at {tracking_uri()}") from None
    run_id = run.info.run_id
    model_id = logged_model_runs(mlflow_client, run.info.experiment_id).get(run_id)
    if not model_id:
        raise TrackingError(
            f"--run {run_id}: the run has no logged model `{MODEL_NAME}` (trained before models were logged, or its server was lost)"
        )
    tags = {"vaeinpaint.selected_by": f"best {metric}" if metric else "run"}
    # Through the logged model's URI: MLflow then also links the version to the logged model
    # (the UI's "Model versions"), which a bare create_model_version does not.
    version = mlflow.register_model(f"models:/{model_id}", name, tags=tags)
    if alias:
        mlflow_client.set_registered_model_alias(name, alias, version.version)
    result = {
        "run_id": run_id,
        "source": f"runs:/{run_id}/{MODEL_NAME}",
        "version": str(version.version),
        "uri": f"models:/{name}/{version.version}",
    }
    if alias:
        result["alias_uri"] = f"models:/{name}@{alias}"
    if metric:
        result["metric"] = f"{metric}={run.data.metrics[metric]:.6g}"
    return result


# --- listing ---------------------------------------------------------------------------


def list_registered_models() -> list[str]:
    """Every registered model as URIs, aliases first: `models:/vae-inpainting@champion`,
    `models:/vae-inpainting/3`, ... `[]` when tracking is off, the store does not exist, or
    the server does not answer within 2 s (a model picker must not hang)."""
    if not tracking_enabled():
        return []
    uri = tracking_uri()
    if not local_store_exists(uri) or (is_server(uri) and unreachable_reason(uri, LIST_TIMEOUT_S)):
        return []
    try:
        return _registered_uris(client(uri))
    except Exception as exc:  # a store of another MLflow version, a server that died just now, ...
        log.warning("tracking: cannot list registered models at %s (%s)", uri, exc.__class__.__name__)
        return []


def _registered_uris(mlflow_client: Any) -> list[str]:
    uris: list[str] = []
    for model in mlflow_client.search_registered_models(max_results=1000):
        uris += [f"models:/{model.name}@{alias}" for alias in sorted(model.aliases or {})]
        versions = mlflow_client.search_model_versions(f"name = '{model.name}'", max_results=1000)
        uris += [f"models:/{model.name}/{v.version}" for v in sorted(versions, key=lambda v: -int(v.version))]
    return uris


# --- from a spec to a checkpoint file --------------------------------------------------


def cache_root() -> Path:
    from vaeinpaint.data.downloads import cache_dir

    return cache_dir() / "mlflow-models"


def resolve_checkpoint(spec: str) -> Path:
    """A local checkpoint file for any model spec (see the module's docstring). Files from
    MLflow are downloaded once into the cache (`$VAEINPAINT_CACHE/mlflow-models`), keyed by
    the tracking store and the logged model's id; an alias is looked up every time."""
    if not is_model_uri(spec):
        return Path(spec).expanduser()
    if not tracking_enabled():
        raise TrackingError(f"{spec}: a model URI needs MLflow, but tracking is off (VAEINPAINT_TRACKING=0)")
    import mlflow

    uri = tracking_uri()
    reason = unreachable_reason(uri)
    if reason:
        raise TrackingError(f"{spec}: the MLflow server at {uri} does not answer ({reason})")
    if not local_store_exists(uri):
        raise TrackingError(f"{spec}: there is no MLflow store at {uri} (train a model first, or set MLFLOW_TRACKING_URI)")
    mlflow_client = client(uri)
    try:
        location, key = _model_location(mlflow_client, spec)
        return _cached_checkpoint(location, key)
    except mlflow.exceptions.MlflowException as exc:
        raise TrackingError(f"{spec}: {one_line(exc, 200, typed=False)}") from None


def _model_location(mlflow_client: Any, spec: str) -> tuple[str, str]:
    """(artifact URI of the logged model's folder or of a checkpoint file, cache key)."""
    if match := MODELS_URI.match(spec):
        name, alias, version = match["name"], match["alias"], match["version"]
        model_version = mlflow_client.get_model_version_by_alias(name, alias) if alias else mlflow_client.get_model_version(name, version)
        # The SQL stores leave model_id empty; the source then names the logged model.
        logged = LOGGED_MODEL_URI.match(model_version.source or "")
        model_id = model_version.model_id or (logged["id"] if logged else None)
        if model_id:
            model = mlflow_client.get_logged_model(model_id)
            return model.artifact_location, model.model_id
        return model_version.source, f"{name}-{model_version.version}"
    match = RUNS_URI.match(spec)
    if not match:
        raise TrackingError(f"{spec}: not a model URI (expected runs:/RUN_ID/model, models:/NAME@ALIAS or models:/NAME/VERSION)")
    run_id, path = match["run"], match["path"].strip("/")
    run = mlflow_client.get_run(run_id)
    if path.endswith(".pt"):  # a checkpoint among the run's artifacts
        return spec, f"{run_id}-{path.replace('/', '-')}"
    page = mlflow_client.search_logged_models([run.info.experiment_id], filter_string=f"name = '{path}'", max_results=100)
    models = [m for m in page if m.source_run_id == run_id]
    if not models:
        raise TrackingError(f"{spec}: run {run_id} has no logged model named {path!r}")
    model = max(models, key=lambda m: m.creation_timestamp)
    return model.artifact_location, model.model_id


def _cached_checkpoint(location: str, key: str) -> Path:
    """Download the checkpoint at `location` (a pyfunc model folder: its `checkpoint`
    artifact; or a .pt file) into the cache, unless it is there already."""
    from mlflow.artifacts import download_artifacts

    store = hashlib.sha256(tracking_uri().encode()).hexdigest()[:12]
    target = cache_root() / store / key / "checkpoint.pt"
    if target.exists():
        return target
    target.parent.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(dir=target.parent) as tmp:
        if location.endswith(".pt"):
            downloaded = Path(download_artifacts(artifact_uri=location, dst_path=tmp))
        else:
            mlmodel = yaml.safe_load(Path(download_artifacts(artifact_uri=f"{location}/MLmodel", dst_path=tmp)).read_text())
            try:
                relative = mlmodel["flavors"]["python_function"]["artifacts"]["checkpoint"]["path"]
            except (KeyError, TypeError):
                raise TrackingError(f"{location}: not a vaeinpaint model (its MLmodel has no checkpoint artifact)") from None
            downloaded = Path(download_artifacts(artifact_uri=f"{location}/{relative}", dst_path=tmp))
        shutil.move(downloaded, target.with_suffix(".part"))
        os.replace(target.with_suffix(".part"), target)
    return target
