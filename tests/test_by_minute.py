"""Quality against minutes of training: the probe scores at evenly spaced marks of the
schedule, as evaluate scores, and the baselines become flat lines on the same images."""

import numpy as np
import pandas as pd
import pytest
import torch

from vaeinpaint.evaluation.by_minute import Probe, probe_rows, quality_by_minute
from vaeinpaint.evaluation.evaluate import restore, score
from vaeinpaint.masks.generator import occlude
from vaeinpaint.modeling.model import InpaintVAE
from vaeinpaint.modeling.train import train_model

from conftest import synthetic_images, tiny_params


@pytest.fixture(scope="module")
def test_set():
    params = tiny_params()
    ids = [f"{i:016x}" for i in range(12)]
    return synthetic_images(12, params.prepare.size, seed=3), occlude(ids, params.prepare.size, params.occlusion).masks


def probe_epochs(probe: Probe, calls) -> list[int]:
    model = InpaintVAE(width=4, latent_channels=2)
    for epoch, minutes in calls:
        probe(epoch, model, minutes)
    return [r["epoch"] for r in probe.rows]


def test_by_epochs_it_probes_the_first_epoch_and_every_mark(test_set):
    probe = Probe(*test_set, points=4, budget_minutes=0, epochs=20)
    assert probe_epochs(probe, [(e, e * 0.1) for e in range(1, 21)]) == [1, 5, 10, 15, 20]


def test_by_a_budget_it_probes_at_marks_of_the_minutes_whatever_the_epochs(test_set):
    probe = Probe(*test_set, points=2, budget_minutes=10, epochs=1000)
    # epochs of 3 minutes: past 5 at epoch 2 (6 min), past 10 at epoch 4 (12 min)
    assert probe_epochs(probe, [(e, 3.0 * e) for e in range(1, 5)]) == [1, 2, 4]
    probe.finish(4, InpaintVAE(width=4, latent_channels=2), 12.0)
    assert [r["epoch"] for r in probe.rows] == [1, 2, 4]  # the last epoch was probed already
    probe.finish(5, InpaintVAE(width=4, latent_channels=2), 13.0)
    assert [r["epoch"] for r in probe.rows] == [1, 2, 4, 5]


def test_a_resumed_probe_continues_after_its_last_row(test_set):
    rows = [{"epoch": 1, "minutes": 0.5, "ssim": 0.5, "hole_psnr": 10.0}, {"epoch": 5, "minutes": 2.5, "ssim": 0.6, "hole_psnr": 11.0}]
    probe = Probe(*test_set, points=4, budget_minutes=0, epochs=20, rows=rows)
    assert probe_epochs(probe, [(e, e * 0.5) for e in range(6, 21)]) == [1, 5, 10, 15, 20]


def test_the_probe_scores_as_evaluate_does(test_set):
    images, masks = test_set
    torch.manual_seed(0)
    model = InpaintVAE(width=4, latent_channels=2).eval()
    seen = []
    probe = Probe(images, masks, points=1, budget_minutes=0, epochs=1, on_row=seen.append)
    probe(1, model, 0.25)
    expected = score(images, masks, restore(model, images, masks))
    assert seen == probe.rows and len(seen) == 1
    assert seen[0]["ssim"] == pytest.approx(expected["ssim"].mean(), abs=1e-6)
    assert seen[0]["hole_psnr"] == pytest.approx(expected["hole_psnr"].mean(), abs=1e-4)
    assert seen[0]["minutes"] == 0.25


def test_baselines_are_flat_lines_over_the_probe_images_only():
    probe = pd.DataFrame({"epoch": [1, 3], "minutes": [0.5, 1.5], "ssim": [0.7, 0.8], "hole_psnr": [12.0, 14.0]})
    baselines = pd.DataFrame(
        {
            "id": ["a", "b", "c", "a", "b", "c", "a"],
            "subset": ["test"] * 6 + ["train"],
            "method": ["biharmonic"] * 3 + ["telea"] * 3 + ["telea"],
            "ssim": [0.6, 0.8, 0.0, 0.5, 0.7, 0.0, 0.0],
            "hole_psnr": [10.0, 12.0, 0.0, 9.0, 11.0, 0.0, 0.0],
        }
    )
    table = quality_by_minute(probe, ["a", "b"], baselines)
    assert list(table["method"]) == ["model", "model", "biharmonic", "biharmonic", "telea", "telea"]
    assert list(table["minutes"]) == [0.5, 1.5] * 3
    bih = table[table["method"] == "biharmonic"]
    assert (bih["ssim"] == 0.7).all() and (bih["hole_psnr"] == 11.0).all() and (bih["n"] == 2).all()
    assert (table[table["method"] == "telea"]["ssim"] == 0.6).all()  # image c and the train row left out


def test_probe_rows_are_spread_over_the_test_set():
    assert list(probe_rows(10, 100)) == list(range(10))
    chosen = probe_rows(1000, 200)
    assert len(chosen) == 200 and chosen[0] == 0 and chosen[-1] == 999 and np.all(np.diff(chosen) > 0)


def test_probing_is_off_the_training_clock(monkeypatch):
    """Seconds spent in on_model (probing, logging) do not count towards the budget's minutes."""
    from vaeinpaint.modeling import schedule as schedule_module

    class Timer:
        now = 1000.0

        def perf_counter(self):
            return self.now

    timer = Timer()
    monkeypatch.setattr(schedule_module, "time", timer)
    params = tiny_params(train={"epochs": 3})
    images = synthetic_images(24, params.prepare.size)
    ids = [f"{i:016x}" for i in range(24)]
    masks = occlude(ids, params.prepare.size, params.occlusion).masks
    minutes_seen = []

    def slow_probe(epoch, model, minutes):
        minutes_seen.append(minutes)
        timer.now += 600.0  # ten minutes of "probing"

    result = train_model(params, images, masks, ids, on_model=slow_probe)
    assert minutes_seen == [0.0, 0.0, 0.0] and result.minutes == 0.0
