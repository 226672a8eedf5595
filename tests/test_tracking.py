import contextlib
import json
import re
import socket
import subprocess
import sys
import time
from concurrent.futures import ProcessPoolExecutor

import pytest

from vaeinpaint import tracking
from vaeinpaint.errors import TrackingError
from vaeinpaint.files import file_hash
from vaeinpaint.params import DataParams
from vaeinpaint.tracking import lifecycle, registry, runs
from vaeinpaint.tracking.lineage import prepared_datasets, run_tags
from vaeinpaint.tracking.runs import Run

from conftest import ROOT, TinyProject, run_env


def test_store_is_anchored_to_dvc_root_not_the_working_directory(tmp_path, monkeypatch):
    root, copy = tmp_path / "project", tmp_path / "project/.dvc/tmp/exps/abc"
    copy.mkdir(parents=True)
    monkeypatch.chdir(copy)
    monkeypatch.setenv("DVC_ROOT", str(root))
    assert tracking.tracking_uri() == f"sqlite:///{root.resolve()}/mlflow.db"
    monkeypatch.setenv("MLFLOW_TRACKING_URI", "http://127.0.0.1:5000")
    assert tracking.tracking_uri() == "http://127.0.0.1:5000"


def test_without_dvc_the_root_is_the_folder_holding_dvc_yaml(tmp_path, monkeypatch):
    TinyProject(tmp_path)
    (tmp_path / "stages").mkdir()
    monkeypatch.chdir(tmp_path / "stages")
    assert tracking.tracking_uri() == f"sqlite:///{tmp_path.resolve()}/mlflow.db"


def test_tracking_off_never_imports_mlflow(tmp_path):
    code = (
        "import sys\n"
        "from vaeinpaint import tracking\n"
        "run = tracking.start_run('x', {})\n"
        "run.log_params({'a': 1}); run.log_metrics({'m': 1.0}, step=1); run.end()\n"
        "assert tracking.resume_run('abc').run_id == ''\n"
        "print('mlflow' in sys.modules)\n"
    )
    out = subprocess.run([sys.executable, "-c", code], cwd=tmp_path, env=run_env(VAEINPAINT_TRACKING="0"), capture_output=True, text=True)
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip() == "False"
    assert not (tmp_path / "mlflow.db").exists()


def test_flat_metric_names():
    results = {
        "test": {"ssim_mean": 0.9, "ssim_std": 0.05, "n": 10},
        "baselines": {"biharmonic": {"test": {"ssim_mean": 0.87, "n": 10}}},
        "hole_swd": {"measure": "words, not a metric", "model": 12.5, "telea": 20.25},
    }
    assert tracking.flat_metrics(results) == {
        "test_ssim_mean": 0.9,
        "test_ssim_std": 0.05,
        "test_biharmonic_ssim_mean": 0.87,
        "hole_swd_model": 12.5,
        "hole_swd_telea": 20.25,
    }


def _make_run(args):
    root, name = args
    import os

    os.environ["DVC_ROOT"] = root
    os.environ["VAEINPAINT_TRACKING"] = "1"
    run = tracking.start_run(name, {"dvc.exp_name": name})
    run.log_params({"occlusion.ratio": 0.2})
    for step in range(1, 4):
        run.log_metrics({"train_loss": 1.0 / step}, step=step)
    run.end()
    return run.run_id


@pytest.mark.slow
def test_runs_land_in_the_root_store_even_from_parallel_processes(tmp_path, monkeypatch):
    monkeypatch.setenv("VAEINPAINT_TRACKING", "1")
    monkeypatch.setenv("DVC_ROOT", str(tmp_path))
    with ProcessPoolExecutor(2) as pool:  # two fresh processes racing to create the store
        run_ids = list(pool.map(_make_run, [(str(tmp_path), "exp-a"), (str(tmp_path), "exp-b")]))
    reopened = tracking.resume_run(run_ids[0])
    reopened.log_metrics({"test_ssim_mean": 0.8})
    reopened.end()

    from mlflow import MlflowClient

    client = MlflowClient(tracking_uri=f"sqlite:///{tmp_path}/mlflow.db")
    experiment = client.get_experiment_by_name("vae-inpainting")
    runs = {r.info.run_id: r for r in client.search_runs([experiment.experiment_id])}
    assert set(runs) == set(run_ids)
    first = runs[run_ids[0]]
    assert first.data.params["occlusion.ratio"] == "0.2"
    assert first.data.metrics["test_ssim_mean"] == 0.8
    assert [m.step for m in client.get_metric_history(run_ids[0], "train_loss")] == [1, 2, 3]
    assert {r.data.tags["dvc.exp_name"] for r in runs.values()} == {"exp-a", "exp-b"}
    assert experiment.artifact_location == (tmp_path / "mlartifacts").as_uri()


# --- mlflow stays in its package; tracking off stays off -----------------------------------

MLFLOW_IMPORT = re.compile(r"^\s*(import mlflow|from mlflow[ .])", re.MULTILINE)


def test_only_the_tracking_package_imports_mlflow():
    importers = sorted(
        str(path.relative_to(ROOT))
        for folder in ("src", "stages")
        for path in (ROOT / folder).rglob("*.py")
        if MLFLOW_IMPORT.search(path.read_text())
    )
    assert importers, "the pattern finds nothing: it is broken"
    assert all(name.startswith("src/vaeinpaint/tracking/") for name in importers), importers


def test_tracking_off_never_imports_mlflow_for_models_either(tmp_path):
    checkpoint = tmp_path / "model.pt"
    code = (
        "import sys\n"
        "from vaeinpaint import cli, tracking\n"
        "import vaeinpaint.apps.inpaint\n"
        "assert tracking.list_registered_models() == []\n"
        f"assert tracking.resolve_checkpoint({str(checkpoint)!r}) == __import__('pathlib').Path({str(checkpoint)!r})\n"
        "try:\n"
        "    tracking.resolve_checkpoint('models:/vae-inpainting@champion')\n"
        "except vaeinpaint.errors.TrackingError as exc:\n"
        "    print(exc)\n"
        "tracking.check_reachable('http://127.0.0.1:9')\n"
        "print('mlflow' in sys.modules)\n"
    )
    out = subprocess.run([sys.executable, "-c", code], cwd=tmp_path, env=run_env(VAEINPAINT_TRACKING="0"), capture_output=True, text=True)
    assert out.returncode == 0, out.stderr
    assert out.stdout.splitlines() == [
        "models:/vae-inpainting@champion: a model URI needs MLflow, but tracking is off (VAEINPAINT_TRACKING=0)",
        "False",
    ]


# --- a server that is down ---------------------------------------------------------------


def closed_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]  # nothing listens once the socket is closed


def test_a_server_that_is_down_stops_a_run_before_it_starts(project_dir, monkeypatch):
    url = f"http://127.0.0.1:{closed_port()}"
    monkeypatch.setenv("VAEINPAINT_TRACKING", "1")
    monkeypatch.setenv("MLFLOW_TRACKING_URI", url)
    started = time.time()
    with pytest.raises(TrackingError) as caught:
        tracking.start_run("x", {})
    assert time.time() - started < 5
    message = str(caught.value)
    assert message.startswith(f"tracking: the MLflow server at {url} does not answer (ConnectionError")
    assert "\n" not in message and "VAEINPAINT_TRACKING=0" in message


def test_listing_models_is_empty_and_quick_without_a_server_or_a_store(project_dir, monkeypatch):
    monkeypatch.setenv("VAEINPAINT_TRACKING", "1")
    assert tracking.list_registered_models() == []
    assert not (project_dir / "mlflow.db").exists()  # listing does not create a store
    monkeypatch.setenv("MLFLOW_TRACKING_URI", f"http://127.0.0.1:{closed_port()}")
    started = time.time()
    assert tracking.list_registered_models() == []
    assert time.time() - started < 3


# --- choosing the best run -----------------------------------------------------------------


@pytest.mark.parametrize(
    "metric, higher",
    [("test_ssim_mean", True), ("test_hole_psnr", True), ("val_loss", False), ("test_hole_l1", False), ("train_kl", False)],
)
def test_which_way_is_better_goes_by_the_metrics_name(metric, higher):
    assert registry.higher_is_better(metric) is higher
    assert registry.higher_is_better(metric, not higher) is (not higher)  # --higher / --lower win


def test_a_metric_of_unknown_direction_needs_higher_or_lower():
    with pytest.raises(TrackingError, match="--best images_per_s: cannot tell whether higher or lower is better; add --higher or --lower"):
        registry.higher_is_better("images_per_s")
    assert registry.higher_is_better("images_per_s", True)


def test_model_uris_are_told_from_paths():
    assert registry.MODELS_URI.match("models:/vae-inpainting@champion")["alias"] == "champion"
    assert registry.MODELS_URI.match("models:/vae-inpainting/3")["version"] == "3"
    assert registry.RUNS_URI.match("runs:/abc123/model")["path"] == "model"
    assert not tracking.is_model_uri("data/model/checkpoint.pt") and tracking.is_model_uri("runs:/abc/model")


# --- a server lost mid-run -------------------------------------------------------------------


class DyingClient:
    """Answers `alive` calls, then fails every call as a dead server does."""

    def __init__(self, alive: int):
        self.alive, self.calls = alive, 0

    def __getattr__(self, name):
        def call(*args, **kwargs):
            self.calls += 1
            if self.calls > self.alive:
                raise ConnectionError("Connection refused")

        return call


def test_a_lost_server_is_reported_with_the_run_and_what_it_missed(caplog):
    client = DyingClient(alive=2)
    run = Run(client, "run123")
    for epoch in range(1, 6):
        run.log_metrics({"train_loss": 1.0 / epoch, "val_loss": 2.0 / epoch}, step=epoch)
    run.log_artifact("metrics/train_loss.csv")
    run.log_metrics({"test_ssim_mean": 0.8})
    run.end()
    assert client.calls == 3  # after the first failure nothing more is sent (each call would wait out retries)
    report = run.lost_report()
    assert report.startswith("tracking: MLflow run run123 at ")
    assert "lost its server (ConnectionError: Connection refused); not logged: " in report
    assert "train_loss, val_loss (steps 3-5)" in report and "test_ssim_mean (step 0)" in report
    assert "artifact train_loss.csv" in report and "status FINISHED" in report
    assert run.unlogged()["metrics"] == {"train_loss": [3, 4, 5], "val_loss": [3, 4, 5], "test_ssim_mean": [0]}
    assert Run(DyingClient(alive=100), "fine").lost_report() is None


def test_steps_read_as_ranges():
    assert runs.steps_text((3, 4, 5)) == "steps 3-5"
    assert runs.steps_text((0,)) == "step 0"
    assert runs.steps_text((2, 5)) == "steps 2, 5"


# --- lineage -----------------------------------------------------------------------------------


def test_datasets_carry_the_dvc_hashes_and_the_source(tmp_path):
    files = {name: tmp_path / name for name in ("images.npy", "split.csv", "masks.npz")}
    for i, path in enumerate(files.values()):
        path.write_bytes(bytes([i]) * 10)
    sizes = {"train": 90, "test": 10}
    train, test = prepared_datasets(DataParams(source="url", url="https://example.org/a.zip", sha256="0" * 64), *files.values(), sizes, 100)
    images_md5, split_md5 = file_hash(files["images.npy"]), file_hash(files["split.csv"])
    assert train.digest == test.digest == images_md5[:16] + split_md5[:16]
    assert (train.name, train.context, test.name, test.context) == ("url-train", "training", "url-test", "testing")
    assert (train.source_type, json.loads(train.source)) == ("http", {"url": "https://example.org/a.zip"})
    assert json.loads(test.profile) == {
        "images": 10,
        "size": "100x100",
        "md5": {"images.npy": images_md5, "split.csv": split_md5, "masks.npz": file_hash(files["masks.npz"])},
    }
    folder = prepared_datasets(DataParams(source="folder", path=str(tmp_path)), *files.values(), sizes, 100)[0]
    assert (folder.source_type, json.loads(folder.source)) == ("local", {"uri": tmp_path.resolve().as_uri()})
    builtin = prepared_datasets(DataParams(), *files.values(), sizes, 100)[0]
    assert builtin.source_type == "code" and json.loads(builtin.source)["tags"]["data.source"] == "builtin"


def test_runs_carry_mlflows_source_tags(project_dir):
    (project_dir / "stages").mkdir()
    tags = run_tags({}, project_dir / "stages/train.py")
    assert tags["mlflow.source.name"] == "stages/train.py" and tags["mlflow.source.type"] == "LOCAL"


def test_dvc_yaml_declares_the_trained_model_as_a_dvc_artifact():
    import yaml

    from vaeinpaint import paths

    dvc = yaml.safe_load((ROOT / "dvc.yaml").read_text())
    artifact = dvc["artifacts"]["vae-inpainting"]
    assert artifact["type"] == "model" and artifact["path"] == paths.CHECKPOINT.as_posix()
    assert paths.CHECKPOINT.parent.as_posix() in dvc["stages"]["train"]["outs"]  # inside train's output


# ------------------------------------------------------- a training's run, start to end


def training_runs(project):
    """(MlflowClient, the runs in the project's store)."""
    from mlflow import MlflowClient

    client = MlflowClient(tracking_uri=f"sqlite:///{project}/mlflow.db")
    return client, client.search_runs([client.get_experiment_by_name("vae-inpainting").experiment_id])


@pytest.mark.parametrize(
    "raised, status", [(None, "FINISHED"), (ValueError("bad"), "FAILED"), (KeyboardInterrupt(), "KILLED")], ids=["ok", "error", "ctrl-c"]
)
def test_a_training_run_ends_by_how_the_block_ended(project_dir, monkeypatch, raised, status):
    monkeypatch.setenv("VAEINPAINT_TRACKING", "1")
    with pytest.raises(type(raised)) if raised else contextlib.nullcontext():
        with tracking.training_run("", [], {}, project_dir / "stages/train.py") as run:
            assert isinstance(run, tracking.RunLike) and run.run_id
            run.log_metrics({"train_loss": 0.5}, step=1)
            if raised:
                raise raised
    client, found = training_runs(project_dir)
    assert [(r.info.run_id, r.info.status) for r in found] == [(run.run_id, status)]
    assert found[0].data.tags["mlflow.source.name"] == "stages/train.py"


def test_an_interrupted_training_run_is_reopened_with_the_epochs_it_missed(project_dir, monkeypatch):
    monkeypatch.setenv("VAEINPAINT_TRACKING", "1")
    records = [{"epoch": e, "train_loss": 1.0 / e, "val_loss": 2.0 / e} for e in (1, 2, 3)]
    with pytest.raises(KeyboardInterrupt):
        with tracking.training_run("", [], {}, project_dir / "stages/train.py") as first:
            first.log_metrics(tracking.epoch_metrics(records[0]), step=1)
            raise KeyboardInterrupt  # killed after epochs 2 and 3 were saved but before they were logged
    with tracking.training_run(first.run_id, records, {}, project_dir / "stages/train.py") as again:
        assert again.run_id == first.run_id
    client, found = training_runs(project_dir)
    assert [(r.info.run_id, r.info.status) for r in found] == [(first.run_id, "FINISHED")]
    assert sorted((m.step, m.value) for m in client.get_metric_history(first.run_id, "train_loss")) == [(1, 1.0), (2, 0.5), (3, 1 / 3)]
    assert "epoch" not in found[0].data.metrics


def test_a_training_run_of_a_deleted_run_starts_a_new_one_and_other_processes_get_none(project_dir, monkeypatch):
    monkeypatch.setenv("VAEINPAINT_TRACKING", "1")
    with tracking.training_run("", [], {}, project_dir / "stages/train.py") as old:
        pass
    client, _ = training_runs(project_dir)
    client.delete_run(old.run_id)
    with tracking.training_run(old.run_id, [{"epoch": 1, "train_loss": 1.0}], {}, project_dir / "stages/train.py") as new:
        assert new.run_id and new.run_id != old.run_id
    with tracking.training_run(new.run_id, [], {}, project_dir / "stages/train.py", main=False) as other:
        assert isinstance(other, tracking.NullRun)
    assert [r.info.run_id for r in training_runs(project_dir)[1]] == [new.run_id]


class EndFails(tracking.NullRun):
    run_id = "r1"

    def end(self, status="FINISHED"):
        raise RuntimeError(f"the store is down (ending {status})")


class LostServer(tracking.NullRun):
    run_id = "r2"

    def lost_report(self):
        return "tracking: MLflow run r2 lost its server; not logged: train_loss (step 2)"


def test_a_failing_end_never_hides_the_error_and_a_lost_server_is_a_warning(monkeypatch, caplog):
    assert isinstance(EndFails(), tracking.RunLike) and isinstance(Run(None, "x"), tracking.RunLike)
    monkeypatch.setattr(lifecycle, "start_run", lambda *args, **kwargs: EndFails())
    with caplog.at_level("WARNING"), pytest.raises(ValueError, match="the training's own error"):
        with tracking.training_run("", [], {}, "stages/train.py"):
            raise ValueError("the training's own error")
    assert "could not mark the MLflow run FAILED" in caplog.text and "the store is down (ending FAILED)" in caplog.text
    caplog.clear()
    monkeypatch.setattr(lifecycle, "start_run", lambda *args, **kwargs: LostServer())
    with caplog.at_level("WARNING"):
        with tracking.training_run("", [], {}, "stages/train.py"):
            pass
    assert "warning: tracking: MLflow run r2 lost its server; not logged: train_loss (step 2); the DVC outputs" in caplog.text
