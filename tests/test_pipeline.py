"""End to end: the real dvc.yaml and stages, on a tiny configuration, in a temporary git repo."""

from __future__ import annotations

import json
import re
import subprocess
import time

import pandas as pd
import pytest
import yaml

from conftest import copy_project, run_env

pytestmark = pytest.mark.slow

TINY = {
    "data": {"builtin_count": 48},
    "prepare": {"size": 48},
    "split": {"train": 0.75, "test": 0.25},
    "model": {"width": 8, "latent_channels": 4},
    "train": {"epochs": 2, "batch_size": 16},
    "baselines": {"train_limit": 12},
    "evaluate": {"grid_images": 4},
}


def sh(*args: str, cwd, check: bool = True) -> subprocess.CompletedProcess:
    out = subprocess.run(list(args), cwd=cwd, env=run_env(VAEINPAINT_TRACKING="1"), capture_output=True, text=True)
    if check and out.returncode != 0:
        raise AssertionError(f"{' '.join(args)} failed ({out.returncode}):\n{out.stdout[-3000:]}\n{out.stderr[-3000:]}")
    return out


def stages_run(output: str) -> set[str]:
    return set(re.findall(r"Running stage '([\w-]+)'", output))


@pytest.fixture(scope="module")
def project(tmp_path_factory):
    """A copy of the project with TINY params, as a fresh git + DVC repo."""
    return copy_project(tmp_path_factory.mktemp("e2e") / "project", TINY)


@pytest.fixture(scope="module")
def repro(project):
    return sh("dvc", "repro", cwd=project)


def test_repro_runs_every_stage_and_writes_metrics(project, repro):
    assert stages_run(repro.stdout) == {"download", "prepare", "split", "occlude", "baselines", "train", "evaluate"}
    results = json.loads((project / "metrics/evaluate.json").read_text())
    assert results["train"]["n"] == 36 and results["test"]["n"] == 12
    for subset in ("train", "test"):
        assert 0 < results[subset]["ssim_mean"] <= 1 and results[subset]["ssim_std"] >= 0
    assert set(results["baselines"]) == {"corrupted", "biharmonic", "telea"}
    prepare = json.loads((project / "metrics/prepare.json").read_text())
    assert prepare["n_images"] == 48 and prepare["n_skipped"] == 0
    assert (project / "data/eval/samples.png").stat().st_size > 0
    train = json.loads((project / "metrics/train.json").read_text())
    assert train["epochs"] == 2
    occlusion = json.loads((project / "metrics/occlude.json").read_text())
    assert occlusion["shape"] == "square" and occlusion["test"]["n"] == 12
    assert occlusion["test"]["share_mean"] == occlusion["target_share"] == round(21 * 21 / 48**2, 6)  # 21 px squares at 48 px
    by_size = pd.read_csv(project / "metrics/by_hole_size.csv")
    assert set(by_size["method"]) == {"model", "corrupted", "biharmonic", "telea"}
    assert set(by_size["bin"]) == {"10-20%"} and set(by_size["n"]) == {12}
    model = by_size[by_size["method"] == "model"].iloc[0]
    assert model["ssim"] == pytest.approx(results["test"]["ssim_mean"], abs=1e-6)  # one bin: the whole test set


def test_repro_logged_one_mlflow_run_at_the_root(project, repro):
    from mlflow import MlflowClient

    client = MlflowClient(tracking_uri=f"sqlite:///{project}/mlflow.db")
    experiment = client.get_experiment_by_name("vae-inpainting")
    runs = client.search_runs([experiment.experiment_id])
    assert len(runs) == 1
    run = runs[0]
    results = json.loads((project / "metrics/evaluate.json").read_text())
    assert run.data.metrics["test_ssim_mean"] == pytest.approx(results["test"]["ssim_mean"])
    assert run.data.metrics["train_ssim_std"] == pytest.approx(results["train"]["ssim_std"])
    assert run.data.params["occlusion.ratio"] == "0.2" and run.data.params["train.epochs"] == "2"
    assert [m.step for m in client.get_metric_history(run.info.run_id, "train_loss")] == [1, 2]
    assert run.data.metrics["test_ssim_bin_10_20"] == pytest.approx(results["test"]["ssim_mean"], abs=1e-6)
    assert "test_biharmonic_hole_psnr_bin_10_20" in run.data.metrics
    head = sh("git", "rev-parse", "HEAD", cwd=project).stdout.strip()
    assert run.data.tags["git.commit"] == head
    assert run.info.status == "FINISHED"


def test_nothing_to_do_on_a_second_repro(project, repro):
    again = sh("dvc", "repro", cwd=project)
    assert stages_run(again.stdout) == set()


def test_exp_run_reruns_only_what_occlusion_touches(project, repro):
    sh("git", "add", "-A", cwd=project)
    sh("git", "commit", "-qm", "baseline results", cwd=project)
    exp = sh("dvc", "exp", "run", "-n", "two-squares", "-S", "occlusion.count=2", cwd=project)
    assert stages_run(exp.stdout) == {"occlude", "baselines", "train", "evaluate"}
    show = json.loads(sh("dvc", "exp", "show", "--json", cwd=project).stdout)
    text = json.dumps(show)
    assert "two-squares" in text and "ssim_mean" in text

    from mlflow import MlflowClient

    client = MlflowClient(tracking_uri=f"sqlite:///{project}/mlflow.db")
    experiment = client.get_experiment_by_name("vae-inpainting")
    runs = client.search_runs([experiment.experiment_id], "tags.`dvc.exp_name` = 'two-squares'")
    assert len(runs) == 1 and runs[0].data.params["occlusion.count"] == "2"
    # `dvc exp run` leaves the experiment in the workspace: go back to the baseline.
    sh("git", "checkout", "--", "params.yaml", "dvc.lock", cwd=project)
    sh("dvc", "checkout", "--force", cwd=project)


def test_colour_experiment_reruns_prepare_and_what_reads_pixels(project, repro):
    """`-S prepare.color=rgb`: prepare re-runs; the index is unchanged (the split goes by the
    files' content), so split and occlude are skipped; baselines, train and evaluate re-run
    on colour pixels."""
    import numpy as np
    import torch

    sh("git", "add", "-A", cwd=project)
    sh("git", "commit", "-qm", "before colour", "--allow-empty", cwd=project)
    split_before = (project / "data/split/split.csv").read_bytes()
    exp = sh("dvc", "exp", "run", "-n", "colour", "-S", "prepare.color=rgb", cwd=project)
    assert stages_run(exp.stdout) == {"prepare", "baselines", "train", "evaluate"}
    assert np.load(project / "data/prepared/images.npy", mmap_mode="r").shape == (48, 48, 48, 3)
    assert (project / "data/split/split.csv").read_bytes() == split_before
    state = torch.load(project / "data/model/checkpoint.pt", weights_only=True)
    assert state["config"]["color"] == "rgb"
    results = json.loads((project / "metrics/evaluate.json").read_text())
    assert 0 < results["test"]["ssim_mean"] <= 1 and set(results["baselines"]) == {"corrupted", "biharmonic", "telea"}
    sh("git", "checkout", "--", "params.yaml", "dvc.lock", "metrics", cwd=project)
    sh("dvc", "checkout", "--force", cwd=project)


def test_colour_and_strokes_experiment(project, repro):
    """The issue's tiny colour + strokes experiment: prepare re-runs for the colour, occlude for
    the strokes; split (same content) and download do not."""
    sh("git", "add", "-A", cwd=project)
    sh("git", "commit", "-qm", "results", "--allow-empty", cwd=project)
    args = ["-S", "prepare.color=rgb", "-S", "occlusion.shape=strokes", "-S", "occlusion.ratio=0.3"]
    exp = sh("dvc", "exp", "run", "-n", "colour-strokes", *args, cwd=project)
    # The colour experiment above already prepared these colour images: DVC may take them from its run cache.
    restored = set(re.findall(r"Stage '([\w-]+)' is cached - skipping run", exp.stdout))
    assert stages_run(exp.stdout) | restored == {"prepare", "occlude", "baselines", "train", "evaluate"}
    assert stages_run(exp.stdout) >= {"occlude", "train"}
    occlusion = json.loads((project / "metrics/occlude.json").read_text())
    assert occlusion["shape"] == "strokes" and abs(occlusion["test"]["share_mean"] - 0.3) < 0.03
    by_size = pd.read_csv(project / "metrics/by_hole_size.csv")
    assert set(by_size["method"]) == {"model", "corrupted", "biharmonic", "telea"} and set(by_size["bin"]) >= {"20-30%", "30-40%"}
    sh("git", "checkout", "--", "params.yaml", "dvc.lock", "metrics", cwd=project)
    sh("dvc", "checkout", "--force", cwd=project)


def test_evaluate_only_param_does_not_retrain(project, repro):
    params = yaml.safe_load((project / "params.yaml").read_text())
    params["evaluate"]["grid_images"] = 2
    (project / "params.yaml").write_text(yaml.safe_dump(params, sort_keys=False))
    out = sh("dvc", "repro", cwd=project)
    assert stages_run(out.stdout) == {"evaluate"}


def test_params_that_change_no_output_rerun_nothing(project, repro):
    """What MLflow logs (train.image_every), where nodes meet, and how many processes decode or
    fill change no output DVC keeps: dvc.yaml lists params key by key to leave them out."""
    before = (project / "params.yaml").read_text()
    params = yaml.safe_load(before)
    params["train"].update(image_every=7, rdzv_endpoint="node0:29400")
    params["prepare"]["workers"] = 1
    params["baselines"]["workers"] = 1
    (project / "params.yaml").write_text(yaml.safe_dump(params, sort_keys=False))
    try:
        status = sh("dvc", "status", cwd=project)
        assert "up to date" in status.stdout, status.stdout
    finally:
        (project / "params.yaml").write_text(before)


def test_a_number_as_dvc_writes_it_is_accepted(project, repro):
    """`-S train.resident_fraction=1e-9` goes into params.yaml as `1e-09`, which YAML reads as a
    string: the params code takes it as the number it is (the set is then streamed)."""
    sh("git", "add", "-A", cwd=project)
    sh("git", "commit", "-qm", "before the streaming experiment", cwd=project)
    exp = sh("dvc", "exp", "run", "-n", "streamed", "-S", "train.resident_fraction=1e-9", cwd=project)
    assert "1e-09" in (project / "params.yaml").read_text()
    assert stages_run(exp.stdout) == {"train", "evaluate"}
    assert json.loads((project / "metrics/train.json").read_text())["streamed"] is True
    sh("git", "checkout", "--", "params.yaml", "dvc.lock", cwd=project)
    sh("dvc", "checkout", "--force", cwd=project)


def test_dvc_plots_show_renders_the_loss_curve_and_the_sample_grid(project, repro):
    out = sh("dvc", "plots", "show", "-o", "plots", cwd=project)
    page = (project / "plots/index.html").read_text()
    assert "samples.png" in page and "train_loss" in page, out.stdout
    assert "SSIM by hole size" in page and "Hole PSNR by hole size" in page and '"method": "biharmonic"' in page
    images = list((project / "plots").rglob("*samples.png"))
    assert images and images[0].read_bytes() == (project / "data/eval/samples.png").read_bytes()


def test_the_run_carries_its_artifacts(project, repro):
    from mlflow import MlflowClient

    client = MlflowClient(tracking_uri=f"sqlite:///{project}/mlflow.db")
    run_id = json.loads((project / "data/model/run.json").read_text())["run_id"]
    names = {a.path for a in client.list_artifacts(run_id, "evaluate")}
    assert {"evaluate/samples.png", "evaluate/per_image.csv", "evaluate/params.yaml"} <= names
    # The checkpoint travels inside the run's logged pyfunc model, `runs:/RUN_ID/model`.
    import mlflow

    mlflow.set_tracking_uri(f"sqlite:///{project}/mlflow.db")  # MLflow resolves the logged model with the global URI
    model_files = {a.path for a in mlflow.artifacts.list_artifacts(f"runs:/{run_id}/model")}
    assert {"model/MLmodel", "model/model_code.py", "model/artifacts"} <= model_files
    assert (project / "mlartifacts").is_dir()  # beside the store at the root, not in a working copy
    tags = client.get_run(run_id).data.tags
    assert {"data.images.md5", "data.split.md5", "data.masks.md5"} <= tags.keys()


def test_queued_experiments_run_in_parallel_and_land_in_the_root_store(project, repro):
    sh("git", "add", "-A", cwd=project)
    sh("git", "commit", "-qm", "before queue", "--allow-empty", cwd=project)
    sh("dvc", "exp", "run", "--queue", "-n", "ratio-30", "-S", "occlusion.ratio=0.3", cwd=project)
    sh("dvc", "exp", "run", "--queue", "-n", "ratio-35", "-S", "occlusion.ratio=0.35", cwd=project)
    sh("dvc", "queue", "start", "-j", "2", cwd=project)
    deadline = time.time() + 600
    while True:
        status = sh("dvc", "queue", "status", cwd=project).stdout
        if not re.search(r"\b(Queued|Running)\b", status):
            break
        assert time.time() < deadline, status
        time.sleep(3)
    logs = "\n".join(sh("dvc", "queue", "logs", name, cwd=project, check=False).stdout[-3000:] for name in ("ratio-30", "ratio-35"))
    assert status.count("Success") >= 2, status + logs
    show = json.dumps(json.loads(sh("dvc", "exp", "show", "--json", cwd=project).stdout))
    assert "ratio-30" in show and "ratio-35" in show

    from mlflow import MlflowClient

    client = MlflowClient(tracking_uri=f"sqlite:///{project}/mlflow.db")
    experiment = client.get_experiment_by_name("vae-inpainting")
    for name, ratio in (("ratio-30", "0.3"), ("ratio-35", "0.35")):
        runs = client.search_runs([experiment.experiment_id], f"tags.`dvc.exp_name` = '{name}'")
        assert len(runs) == 1, name
        assert runs[0].data.params["occlusion.ratio"] == ratio
        assert "test_ssim_mean" in runs[0].data.metrics
    assert not list((project / ".dvc/tmp/exps").rglob("mlflow.db"))  # nothing went to the temporary copies


def test_inpaint_with_the_pipelines_model(project, repro, tmp_path):
    import numpy as np
    from PIL import Image

    rng = np.random.default_rng(0)
    photo = (rng.random((90, 130, 3)) * 255).astype(np.uint8)  # any size: the model works at 48 px here
    Image.fromarray(photo).save(tmp_path / "photo.png")
    sh(
        "vaeinpaint",
        "inpaint",
        str(tmp_path / "photo.png"),
        "-o",
        str(tmp_path / "out.png"),
        "--box",
        "30,20,40,35",
        cwd=project / "stages",
    )
    out = np.asarray(Image.open(tmp_path / "out.png"))
    hole = np.zeros(photo.shape[:2], bool)
    hole[20:55, 30:70] = True
    assert np.array_equal(out[~hole], photo[~hole])  # outside the box: bit-identical
    assert (out[hole] != photo[hole]).mean() > 0.9  # inside: filled by the model
