import subprocess
import sys
from concurrent.futures import ProcessPoolExecutor

import pytest

from vaeinpaint import tracking

from conftest import run_env


def test_store_is_anchored_to_dvc_root_not_the_working_directory(tmp_path, monkeypatch):
    root, copy = tmp_path / "project", tmp_path / "project/.dvc/tmp/exps/abc"
    copy.mkdir(parents=True)
    monkeypatch.chdir(copy)
    monkeypatch.setenv("DVC_ROOT", str(root))
    assert tracking.tracking_uri() == f"sqlite:///{root.resolve()}/mlflow.db"
    monkeypatch.setenv("MLFLOW_TRACKING_URI", "http://127.0.0.1:5000")
    assert tracking.tracking_uri() == "http://127.0.0.1:5000"


def test_without_dvc_the_root_is_the_folder_holding_dvc_yaml(tmp_path, monkeypatch):
    (tmp_path / "dvc.yaml").write_text("stages: {}\n")
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
    }
    assert tracking.flat_metrics(results) == {"test_ssim_mean": 0.9, "test_ssim_std": 0.05, "test_biharmonic_ssim_mean": 0.87}


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
