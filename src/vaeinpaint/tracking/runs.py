"""Runs: created by train, reopened by evaluate, driven through MlflowClient (no global
'active run' state), and tolerant of a tracking server that goes away mid-run.

A server that is down when a run starts stops the stage at once (`store.check_reachable`).
One that goes away later does not stop training: the first failed call marks the run lost,
nothing more is sent (each further call would wait out MLflow's retries), and `lost_report()`
says afterwards which run missed which metrics and artifacts.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import Any, Protocol, runtime_checkable

from vaeinpaint.errors import one_line
from vaeinpaint.tracking.lineage import DatasetRecord
from vaeinpaint.tracking.store import client_and_experiment, tracking_enabled, tracking_uri

log = logging.getLogger(__name__)


@runtime_checkable
class RunLike(Protocol):
    """What a stage may do with a run: `Run` (MLflow), `NullRun` (tracking off, or a process
    other than the main one) and the tests' stand-ins all follow it."""

    run_id: str
    model_id: str

    def log_params(self, params: Mapping[str, Any]) -> None: ...
    def log_metrics(self, metrics: Mapping[str, float], step: int | None = None, model_id: str | None = None) -> None: ...
    def set_tags(self, tags: Mapping[str, str]) -> None: ...
    def log_artifact(self, path: str | Path, artifact_path: str | None = None) -> None: ...
    def log_image(self, image: Any, key: str, step: int) -> None: ...
    def log_datasets(self, datasets: Sequence[DatasetRecord]) -> None: ...
    def log_model(self, checkpoint: str | Path, step: int = 0) -> None: ...
    def watch_system(self) -> None: ...
    def logged_steps(self, key: str) -> set[int]: ...
    def end(self, status: str = "FINISHED") -> None: ...
    def lost_report(self) -> str | None: ...
    def unlogged(self) -> dict[str, Any]: ...


class NullRun(RunLike):
    """Stands in for a run when tracking is off: every call does nothing (the protocol's own
    empty methods), and nothing was logged."""

    run_id = ""
    model_id = ""

    def logged_steps(self, key: str) -> set[int]:
        return set()

    def unlogged(self) -> dict[str, Any]:
        return {}


class Run:
    """One MLflow run. Every call that talks to the server goes through `_send`."""

    def __init__(self, client: Any, run_id: str):
        self.client, self.run_id = client, run_id
        self.model_id = ""
        self._monitor: Any = None
        self._lost_reason: str | None = None
        self._lost_metrics: dict[str, list[int]] = {}  # metric -> steps not logged
        self._lost_items: list[str] = []  # artifacts, images, the model, ...

    # --- sending, and what was lost ------------------------------------------------------

    def _send(self, call: Callable[[], Any], lost: str | None = None, metrics: Mapping[str, int] | None = None) -> Any:
        """Run `call`; after the first failure, record what each call would have sent instead."""
        if self._lost_reason is None:
            try:
                return call()
            except Exception as exc:  # connection refused, timeouts, 5xx after MLflow's retries
                self._lost_reason = one_line(exc)
                log.warning(
                    "tracking: lost the MLflow server at %s (%s); run %s goes on without it", tracking_uri(), self._lost_reason, self.run_id
                )
                self._stop_monitor()
        for name, step in (metrics or {}).items():
            self._lost_metrics.setdefault(name, []).append(step)
        if lost:
            self._lost_items.append(lost)
        return None

    def unlogged(self) -> dict[str, Any]:
        """What this run did not get, as data (run.json keeps it)."""
        if self._lost_reason is None:
            return {}
        return {
            "reason": self._lost_reason,
            "metrics": {k: sorted(set(v)) for k, v in self._lost_metrics.items()},
            "items": self._lost_items,
        }

    def lost_report(self) -> str | None:
        """One line naming the run and what it lost, or None if nothing was."""
        if self._lost_reason is None:
            return None
        parts = [f"{', '.join(names)} ({steps_text(steps)})" for steps, names in group_by_steps(self._lost_metrics).items()]
        parts += self._lost_items
        missing = "; ".join(parts) if parts else "its final status"
        return f"tracking: MLflow run {self.run_id} at {tracking_uri()} lost its server ({self._lost_reason}); not logged: {missing}"

    # --- what a run logs -----------------------------------------------------------------

    def log_params(self, params: Mapping[str, Any]) -> None:
        from mlflow.entities import Param

        def send() -> None:
            existing = self.client.get_run(self.run_id).data.params
            fresh = [Param(k, str(v)) for k, v in params.items() if k not in existing]
            for i in range(0, len(fresh), 100):
                self.client.log_batch(self.run_id, params=fresh[i : i + 100])

        self._send(send, lost="params")

    def log_metrics(self, metrics: Mapping[str, float], step: int | None = None, model_id: str | None = None) -> None:
        from mlflow.entities import Metric

        now = int(time.time() * 1000)
        batch = [Metric(k, float(v), now, step or 0, model_id=model_id or None) for k, v in metrics.items() if v is not None]
        self._send(lambda: self.client.log_batch(self.run_id, metrics=batch), metrics={m.key: m.step for m in batch})

    def set_tags(self, tags: Mapping[str, str]) -> None:
        from mlflow.entities import RunTag

        batch = [RunTag(k, str(v)) for k, v in tags.items() if v is not None]
        self._send(lambda: self.client.log_batch(self.run_id, tags=batch), lost=f"tags {', '.join(t.key for t in batch)}")

    def log_artifact(self, path: str | Path, artifact_path: str | None = None) -> None:
        where = f"{artifact_path}/{Path(path).name}" if artifact_path else Path(path).name
        self._send(lambda: self.client.log_artifact(self.run_id, str(path), artifact_path), lost=f"artifact {where}")

    def log_image(self, image: Any, key: str, step: int) -> None:
        """An image under `key` at `step`: the UI's image view slides through the steps."""
        self._send(lambda: self.client.log_image(self.run_id, image, key=key, step=step, synchronous=True), lost=f"image {key} step {step}")

    def log_datasets(self, datasets: Sequence[DatasetRecord]) -> None:
        """Each record as a dataset input of the run (what mlflow.log_input logs)."""
        from mlflow.entities import Dataset, DatasetInput, InputTag
        from mlflow.utils.mlflow_tags import MLFLOW_DATASET_CONTEXT

        inputs = [
            DatasetInput(
                Dataset(d.name, d.digest, d.source_type, d.source, profile=d.profile), tags=[InputTag(MLFLOW_DATASET_CONTEXT, d.context)]
            )
            for d in datasets
        ]
        self._send(lambda: self.client.log_inputs(self.run_id, datasets=inputs), lost=f"datasets {', '.join(d.name for d in datasets)}")

    def log_model(self, checkpoint: str | Path, step: int = 0) -> None:
        """The checkpoint as an MLflow pyfunc model named `model` (see tracking.pyfunc)."""
        from vaeinpaint.tracking.pyfunc import log_pyfunc_model

        info = self._send(
            lambda: log_pyfunc_model(self.run_id, Path(checkpoint), step), lost="the model (pyfunc `model` and its checkpoint)"
        )
        if info is not None:
            self.model_id = info.model_id

    def watch_system(self) -> None:
        """Log CPU, memory, disk, network (and GPU, where nvidia-ml-py finds one) as `system/...`
        metrics every MLFLOW_SYSTEM_METRICS_SAMPLING_INTERVAL seconds (10) until `end()`."""
        from mlflow.system_metrics.system_metrics_monitor import SystemMetricsMonitor

        def start() -> None:
            self._monitor = SystemMetricsMonitor(self.run_id, tracking_uri=tracking_uri())
            self._monitor.start()

        self._send(start, lost="system metrics")

    def logged_steps(self, key: str) -> set[int]:
        """The steps at which metric `key` has been logged (an interrupted run's epochs)."""
        steps = self._send(lambda: {m.step for m in self.client.get_metric_history(self.run_id, key)})
        return steps or set()

    def _stop_monitor(self) -> None:
        monitor, self._monitor = self._monitor, None
        if monitor is not None:
            monitor.finish()

    def end(self, status: str = "FINISHED") -> None:
        if self._lost_reason is None:
            self._stop_monitor()
        self._send(lambda: self.client.set_terminated(self.run_id, status), lost=f"status {status}")


def group_by_steps(lost: Mapping[str, list[int]]) -> dict[tuple[int, ...], list[str]]:
    groups: dict[tuple[int, ...], list[str]] = {}
    for name, steps in lost.items():
        groups.setdefault(tuple(sorted(set(steps))), []).append(name)
    return groups


def steps_text(steps: tuple[int, ...]) -> str:
    """(3, 4, 5) -> 'steps 3-5'; (0,) -> 'step 0'; (2, 5) -> 'steps 2, 5'."""
    if len(steps) == 1:
        return f"step {steps[0]}"
    if list(steps) == list(range(steps[0], steps[-1] + 1)):
        return f"steps {steps[0]}-{steps[-1]}"
    return "steps " + ", ".join(map(str, steps))


def start_run(run_name: str | None = None, tags: Mapping[str, str] | None = None) -> Run | NullRun:
    """A new run in experiment `vae-inpainting` (or a NullRun with tracking off). A tracking
    server that does not answer is a one-line TrackingError, before any work."""
    if not tracking_enabled():
        return NullRun()
    client, experiment_id = client_and_experiment()
    run = client.create_run(experiment_id, run_name=run_name, tags=dict(tags or {}))
    return Run(client, run.info.run_id)


def resume_run(run_id: str) -> Run | NullRun:
    """Reopen a run made by an earlier stage (train -> evaluate)."""
    if not tracking_enabled() or not run_id:
        return NullRun()
    client, _ = client_and_experiment()
    client.update_run(run_id, status="RUNNING")
    return Run(client, run_id)


def run_exists(run_id: str) -> bool:
    """Whether the store holds run `run_id`, not deleted (an interrupted training's run may
    have been deleted since, or the store moved)."""
    if not tracking_enabled() or not run_id:
        return False
    from mlflow.exceptions import MlflowException

    client, _ = client_and_experiment()
    try:
        return client.get_run(run_id).info.lifecycle_stage == "active"
    except MlflowException:
        return False


def flat_metrics(results: Mapping[str, Any]) -> dict[str, float]:
    """evaluate.json -> MLflow metric names: `test_ssim_mean`, `train_hole_psnr`, ...,
    for baselines `test_biharmonic_ssim_mean`, for the realism block `hole_swd_model`; its
    words (`measure`) are not a metric."""
    flat: dict[str, float] = {}
    for subset, values in results.items():
        if subset == "baselines":
            for method, by_subset in values.items():
                for sub, numbers in by_subset.items():
                    flat.update({f"{sub}_{method}_{k}": v for k, v in numbers.items() if k != "n"})
        else:
            flat.update({f"{subset}_{k}": v for k, v in values.items() if k != "n" and not isinstance(v, str)})
    return flat
