"""MLflow tracking: the only module that imports mlflow.

Where runs go: `MLFLOW_TRACKING_URI` if set, else the SQLite store `mlflow.db` at the
project root (`DVC_ROOT`, which DVC points at the real root even for queued experiments
running in temporary copies). `VAEINPAINT_TRACKING=0` turns tracking off; the stages then
run without importing mlflow at all.

One run per train + evaluate: train creates it and writes its id to `data/model/run.json`;
evaluate reopens that run to add its metrics and artifacts.
"""

from __future__ import annotations

import os
import subprocess
import time
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from vaeinpaint.files import file_hash
from vaeinpaint.paths import MLFLOW_DB, project_root

# mlflow sets up its own logger when imported; keep its routine INFO lines out of stage output.
os.environ.setdefault("MLFLOW_LOGGING_LEVEL", "WARNING")

EXPERIMENT = "vae-inpainting"
ARTIFACTS_DIR = "mlartifacts"


def tracking_enabled() -> bool:
    return os.environ.get("VAEINPAINT_TRACKING", "1").lower() not in ("0", "off", "false", "no")


def tracking_uri() -> str:
    return os.environ.get("MLFLOW_TRACKING_URI") or f"sqlite:///{project_root() / MLFLOW_DB}"


class NullRun:
    """Stands in for a run when tracking is off: every call does nothing."""

    run_id = ""

    def log_params(self, params: Mapping[str, Any]) -> None: ...
    def log_metrics(self, metrics: Mapping[str, float], step: int | None = None) -> None: ...
    def set_tags(self, tags: Mapping[str, str]) -> None: ...
    def log_artifact(self, path: str | Path, artifact_path: str | None = None) -> None: ...
    def log_model(self, model: Any, name: str, example: Any = None) -> None: ...
    def logged_steps(self, key: str) -> set[int]:
        return set()

    def end(self, status: str = "FINISHED") -> None: ...


class Run:
    """One MLflow run, driven through MlflowClient (no global 'active run' state)."""

    def __init__(self, client: Any, run_id: str):
        self.client, self.run_id = client, run_id

    def log_params(self, params: Mapping[str, Any]) -> None:
        from mlflow.entities import Param

        existing = self.client.get_run(self.run_id).data.params
        fresh = [Param(k, str(v)) for k, v in params.items() if k not in existing]
        for i in range(0, len(fresh), 100):
            self.client.log_batch(self.run_id, params=fresh[i : i + 100])

    def log_metrics(self, metrics: Mapping[str, float], step: int | None = None) -> None:
        from mlflow.entities import Metric

        now = int(time.time() * 1000)
        batch = [Metric(k, float(v), now, step or 0) for k, v in metrics.items() if v is not None]
        self.client.log_batch(self.run_id, metrics=batch)

    def set_tags(self, tags: Mapping[str, str]) -> None:
        from mlflow.entities import RunTag

        self.client.log_batch(self.run_id, tags=[RunTag(k, str(v)) for k, v in tags.items() if v is not None])

    def log_artifact(self, path: str | Path, artifact_path: str | None = None) -> None:
        self.client.log_artifact(self.run_id, str(path), artifact_path)

    def log_model(self, model: Any, name: str, example: Any = None) -> None:
        """Log a torch module with mlflow.pytorch (signature inferred from `example`)."""
        import mlflow

        with _active(self.run_id):
            mlflow.pytorch.log_model(model, name=name, input_example=example)

    def logged_steps(self, key: str) -> set[int]:
        """The steps at which metric `key` has been logged (an interrupted run's epochs)."""
        return {m.step for m in self.client.get_metric_history(self.run_id, key)}

    def end(self, status: str = "FINISHED") -> None:
        self.client.set_terminated(self.run_id, status)


class _active:
    """Make `run_id` mlflow's active run for the fluent APIs that need one."""

    def __init__(self, run_id: str):
        self.run_id = run_id

    def __enter__(self):
        import mlflow

        mlflow.set_tracking_uri(tracking_uri())
        self.run = mlflow.start_run(run_id=self.run_id)
        return self.run

    def __exit__(self, *exc):
        import mlflow

        mlflow.end_run("RUNNING")  # the run's real end is Run.end()


def _client_and_experiment():
    """Open the store and the experiment. Several processes opening a fresh SQLite store
    at once race on its schema migration and on creating the experiment (mlflow issues
    4123 and 6490), so that part holds an inter-process lock next to the database."""
    from filelock import FileLock
    from mlflow import MlflowClient

    uri = tracking_uri()
    lock = FileLock(str(project_root() / f".{MLFLOW_DB}.lock")) if uri.startswith("sqlite:") else None
    if lock:
        lock.acquire(timeout=120)
    try:
        client = MlflowClient(tracking_uri=uri)
        experiment = client.get_experiment_by_name(EXPERIMENT)
        if experiment:
            experiment_id = experiment.experiment_id
        else:  # a local store keeps artifacts beside it at the root, not in the working directory
            location = (project_root() / ARTIFACTS_DIR).as_uri() if lock else None
            experiment_id = client.create_experiment(EXPERIMENT, artifact_location=location)
    finally:
        if lock:
            lock.release()
    return client, experiment_id


def start_run(run_name: str | None = None, tags: Mapping[str, str] | None = None) -> Run | NullRun:
    """A new run in experiment `vae-inpainting` (or a NullRun with tracking off)."""
    if not tracking_enabled():
        return NullRun()
    client, experiment_id = _client_and_experiment()
    run = client.create_run(experiment_id, run_name=run_name, tags=dict(tags or {}))
    return Run(client, run.info.run_id)


def resume_run(run_id: str) -> Run | NullRun:
    """Reopen a run made by an earlier stage (train -> evaluate)."""
    if not tracking_enabled() or not run_id:
        return NullRun()
    client, _ = _client_and_experiment()
    client.update_run(run_id, status="RUNNING")
    return Run(client, run_id)


def run_exists(run_id: str) -> bool:
    """Whether the store holds run `run_id`, not deleted (an interrupted training's run may
    have been deleted since, or the store moved)."""
    if not tracking_enabled() or not run_id:
        return False
    from mlflow.exceptions import MlflowException

    client, _ = _client_and_experiment()
    try:
        return client.get_run(run_id).info.lifecycle_stage == "active"
    except MlflowException:
        return False


def git_commit(root: Path | None = None) -> str:
    try:
        out = subprocess.run(["git", "rev-parse", "HEAD"], cwd=root or Path.cwd(), capture_output=True, text=True, timeout=10)
    except (OSError, subprocess.SubprocessError):
        return ""
    return out.stdout.strip() if out.returncode == 0 else ""


def run_tags(data_files: Mapping[str, str | Path]) -> dict[str, str]:
    """Tags every run carries: the DVC experiment, the git commit, and the MD5 of its inputs."""
    commit = git_commit()
    tags = {
        "dvc.exp_name": os.environ.get("DVC_EXP_NAME", ""),
        "dvc.baseline_rev": os.environ.get("DVC_EXP_BASELINE_REV", ""),
        "git.commit": commit,
        "mlflow.source.git.commit": commit,
    }
    for name, path in data_files.items():
        if Path(path).exists():
            tags[f"data.{name}.md5"] = file_hash(path)
    return {k: v for k, v in tags.items() if v}


def run_name() -> str | None:
    """The DVC experiment's name when `dvc exp run` drives us (MLflow picks one otherwise)."""
    return os.environ.get("DVC_EXP_NAME") or None


def flat_metrics(results: Mapping[str, Any]) -> dict[str, float]:
    """evaluate.json -> MLflow metric names: `test_ssim_mean`, `train_hole_psnr`, ...,
    and for baselines `test_biharmonic_ssim_mean`."""
    flat: dict[str, float] = {}
    for subset, values in results.items():
        if subset == "baselines":
            for method, by_subset in values.items():
                for sub, numbers in by_subset.items():
                    flat.update({f"{sub}_{method}_{k}": v for k, v in numbers.items() if k != "n"})
        else:
            flat.update({f"{subset}_{k}": v for k, v in values.items() if k != "n"})
    return flat
