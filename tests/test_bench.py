"""`python -m vaeinpaint.bench`: the training figure times the loop's own step at the
pipeline's batch; the mask rows (strokes and mixed beside squares); the speed-up over the
study's architecture at equal batches; evaluation timed after warm-up."""

import pytest
import torch

from vaeinpaint.bench import speed as bench
from vaeinpaint.bench.speed import mask_shapes
from vaeinpaint.masks import generator
from vaeinpaint.masks.generator import occlude
from vaeinpaint.modeling.epoch import EpochSteps
from vaeinpaint.modeling.setup import CPU_BATCH, resolve_batch
from vaeinpaint.modeling.train import train_model
from vaeinpaint.params import ModelParams, Params

from conftest import synthetic_images, tiny_params

CPU = torch.device("cpu")


def test_bench_times_stroke_and_mixed_masks_beside_squares(monkeypatch):
    monkeypatch.setattr(generator, "BANK_SIZE", 64)  # the bank's size does not change a step's cost
    defaults = Params()
    defaults = defaults.model_copy(
        update={"model": defaults.model.model_copy(update={"width": 8, "latent_channels": 4})}
    )  # a tiny model: fast, same masks
    train = defaults.train.model_copy(update={"batch_size": 4, "precision": "fp32"})
    cpu = torch.device("cpu")
    squares = {"img_per_s": 250.0, "mask_ms_per_batch": 1.5}  # as measure_training reports them for squares
    result = mask_shapes(defaults, train, cpu, 2, 1, squares["img_per_s"], squares["mask_ms_per_batch"])
    assert result["mask_ms_per_batch_squares"] == 1.5
    assert set(result) == {
        "mask_ms_per_batch_squares",
        "train_img_per_s_strokes",
        "strokes_vs_squares",
        "mask_ms_per_batch_strokes",
        "stroke_bank_s",
        "train_img_per_s_mixed",
        "mixed_vs_squares",
        "mask_ms_per_batch_mixed",
    }
    for shape in ("strokes", "mixed"):
        assert result[f"train_img_per_s_{shape}"] > 0 and result[f"mask_ms_per_batch_{shape}"] > 0
        ratio = result[f"train_img_per_s_{shape}"] / squares["img_per_s"]
        assert result[f"{shape}_vs_squares"] == pytest.approx(ratio, rel=0.05, abs=6e-4)  # rounded to 3 decimals
    assert result["stroke_bank_s"] > 0


def fake_training(calls: list, speed: dict, heads: list | None = None, head_speed: dict | None = None):
    """A stand-in for measure_training: records (arch, batch) of the gray, square-mask runs (and
    in `heads` the default model's output head of each) and returns `speed[arch] * batch`
    images/s, or for the default model `head_speed[head] * batch` where given."""

    def measure(model_params, train_params, device, steps, warmup, channels=1, occlusion=None):
        ours = model_params.arch == "inpaint"
        if channels == 1 and (occlusion is None or occlusion.shape == "square"):
            calls.append((model_params.arch, train_params.batch_size))
            if heads is not None and ours:
                heads.append(model_params.head)
        per_image = (head_speed or {}).get(model_params.head, speed[model_params.arch]) if ours else speed[model_params.arch]
        return {
            "img_per_s": per_image * train_params.batch_size,
            "checkpoint_mb": 1.0,
            "parameters": 1,
            "mask_setup_s": 0.1,
            "mask_ms_per_batch": 1.0,
        }

    return measure


def test_the_speedup_over_the_paper_compares_equal_batches(monkeypatch):
    calls: list = []
    monkeypatch.setattr(bench, "measure_training", fake_training(calls, {"inpaint": 10.0, "paper": 0.5}))
    monkeypatch.setattr(bench, "measure_eval", lambda *args: 100.0)
    result = bench.run(quick=True, device_name="cpu", compile_check=False, prepare=False)
    batch = resolve_batch(Params().train, torch.device("cpu"))[0]  # ours at the pipeline's batch on a CPU
    assert ("inpaint", batch) in calls and ("paper", 4) in calls and ("inpaint", 4) in calls  # ours at the paper's batch too
    assert result["paper_batch_size"] == 4 and result["train_batch_size"] == batch
    assert result["train_img_per_s"] == 10.0 * batch and result["train_img_per_s_at_paper_batch"] == 40.0
    assert result["train_speedup_vs_paper"] == 20.0  # 40 / 2, not 10 * batch / 2


def test_the_previous_head_is_timed_beside_the_default(monkeypatch):
    heads = []
    measure = fake_training([], {"inpaint": 1.0, "paper": 0.5}, heads, head_speed={"shuffle": 13.7, "transpose": 10.0})
    monkeypatch.setattr(bench, "measure_training", measure)
    monkeypatch.setattr(bench, "measure_eval", lambda *args: 100.0)
    result = bench.run(quick=True, device_name="cpu", compile_check=False, prepare=False)
    assert "transpose" in heads and heads[0] == "shuffle"
    batch = resolve_batch(Params().train, torch.device("cpu"))[0]
    assert result["train_img_per_s_transpose_head"] == 10.0 * batch and result["shuffle_vs_transpose_head"] == 1.37


def test_on_a_gpu_the_paper_gets_our_batch_or_the_largest_that_fits():
    tried = []

    def measure(batch):
        tried.append(batch)
        if batch > 100:
            raise torch.cuda.OutOfMemoryError("CUDA out of memory")
        return {"img_per_s": float(batch)}

    assert bench.largest_batch_that_fits(measure, 512) == (64, {"img_per_s": 64.0})
    assert tried == [512, 256, 128, 64]
    assert bench.largest_batch_that_fits(measure, 32) == (32, {"img_per_s": 32.0})


def count_steps(monkeypatch) -> list[int]:
    """Record the step index of every call of the training loop's per-batch function."""
    calls: list[int] = []
    real = EpochSteps.run

    def run(self, step, images_u8, masks_u8):
        calls.append(step)
        return real(self, step, images_u8, masks_u8)

    monkeypatch.setattr(EpochSteps, "run", run)
    return calls


def test_the_benchmark_times_the_loop_s_own_step(monkeypatch):
    params, ids = tiny_params(train={"epochs": 1}), [f"{i:016x}" for i in range(48)]
    calls = count_steps(monkeypatch)
    train_model(params, synthetic_images(48, 32), occlude(ids, 32, params.occlusion).masks, ids)
    assert calls == list(range((48 - 5) // 8))  # the loop runs EpochSteps.run for every batch (5 held out, batches of 8)
    calls.clear()
    tiny = ModelParams(width=8, latent_channels=4)
    measured = bench.measure_training(tiny, Params().train.model_copy(update={"batch_size": 4}), CPU, steps=3, warmup=2)
    assert calls == [0, 1, 2, 3, 4] and measured["img_per_s"] > 0  # ...and so does the benchmark, warm-up included


def test_the_benchmark_s_steps_are_the_pipeline_s(monkeypatch):
    # The default params' weight average, schedule and masks: the state the loop's step sees.
    seen = []
    real = EpochSteps.run

    def run(self, step, images_u8, masks_u8):
        seen.append((self.state.average is not None, self.tp.masks, masks_u8, self.batches.per_rank, self.state.scheduler.last_epoch))
        return real(self, step, images_u8, masks_u8)

    monkeypatch.setattr(EpochSteps, "run", run)
    defaults = Params()
    bench.measure_training(ModelParams(width=8, latent_channels=4), defaults.train, CPU, steps=1, warmup=1)
    assert seen == [(True, "random", None, CPU_BATCH, 0), (True, "random", None, CPU_BATCH, 1)]


def test_the_benchmark_s_default_batch_is_the_pipeline_s(monkeypatch):
    batches = []

    def measure(model_params, train_params, device, steps, warmup, channels=1, occlusion=None):
        batches.append(train_params.batch_size)
        return {"img_per_s": 1.0, "checkpoint_mb": 1.0, "parameters": 1, "mask_setup_s": 0.1, "mask_ms_per_batch": 1.0}

    monkeypatch.setattr(bench, "measure_training", measure)
    monkeypatch.setattr(bench, "measure_eval", lambda *args: 1.0)
    result = bench.run(quick=True, device_name="cpu", compile_check=False, prepare=False)
    assert result["train_batch_size"] == batches[0] == CPU_BATCH


def test_evaluation_is_timed_after_warm_up_passes_of_the_same_call(monkeypatch):
    passes: list[tuple[bool, tuple]] = []

    class Counting(torch.nn.Module):
        def forward(self, damaged, mask, sample=True, generator=None):
            passes.append((sample, tuple(damaged.shape)))
            return damaged, None, None

    monkeypatch.setattr(bench, "build_model", lambda params: Counting())
    clock = iter(range(100))
    monkeypatch.setattr(bench.time, "perf_counter", lambda: float(next(clock)))
    speed = bench.measure_eval(ModelParams(), torch.device("cpu"), batch=8, steps=4, warmup=3)
    assert passes == [(False, (8, 1, 100, 100))] * 7  # 3 warm-up + 4 timed, all alike
    assert speed == pytest.approx(4 * 8 / 1.0)  # the clock was read only around the 4 timed passes


def test_the_learned_prior_is_timed_beside_the_standard_one(monkeypatch):
    priors = []

    def measure(model_params, train_params, device, steps, warmup, channels=1, occlusion=None):
        if model_params.arch == "inpaint" and channels == 1 and (occlusion is None or occlusion.shape == "square"):
            priors.append((model_params.prior, model_params.head))
        per_image = {"standard": 10.0, "learned": 6.0}[model_params.prior] if model_params.arch == "inpaint" else 0.5
        size = 2 if model_params.prior == "learned" else 1
        return {
            "img_per_s": per_image * train_params.batch_size,
            "checkpoint_mb": 1.0,
            "parameters": size,
            "mask_setup_s": 0.1,
            "mask_ms_per_batch": 1.0,
        }

    monkeypatch.setattr(bench, "measure_training", measure)
    monkeypatch.setattr(bench, "measure_eval", lambda *args: 100.0)
    result = bench.run(quick=True, device_name="cpu", compile_check=False, prepare=False)
    assert priors[0] == ("standard", "shuffle") and ("learned", "shuffle") in priors  # the default model, its prior changed only
    batch = result["train_batch_size"]  # train.batch_size as resolved on this device (auto: 32 on a CPU)
    assert result["train_img_per_s_learned_prior"] == 6.0 * batch and result["learned_vs_standard_prior"] == 0.6
    assert result["learned_prior_parameters"] == 2 and result["parameters"] == 1
