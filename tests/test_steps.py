"""What a training spends its time on, and what it runs with: the steps timed apart from the
rest (metrics/train.json), `train.batch_size: auto`, resume points bounded by time, and the
epoch's order drawn on the CPU. (The benchmark running the loop's own step: test_bench.py.)"""

from __future__ import annotations

import math
import time

import pytest
import torch

from vaeinpaint.errors import ParamError, TrainingError
from vaeinpaint.masks.generator import TrainingMasks, occlude
from vaeinpaint.modeling import epoch as epoch_module
from vaeinpaint.modeling import state as state_module
from vaeinpaint.modeling import train as train_module
from vaeinpaint.modeling.checkpoint import load_checkpoint
from vaeinpaint.modeling.epoch import EpochSteps, epoch_permutation
from vaeinpaint.modeling.setup import CUDA_BATCH, resolve_batch
from vaeinpaint.modeling.train import fingerprint, summary, train_model
from vaeinpaint.params import Params, from_dict

from conftest import synthetic_images, tiny_params

N = 48
CPU, CUDA = torch.device("cpu"), torch.device("cuda")  # CUDA: only its type is looked at here


@pytest.fixture(scope="module")
def data():
    params = tiny_params()
    ids = [f"{i:016x}" for i in range(N)]
    return synthetic_images(N, params.prepare.size), occlude(ids, params.prepare.size, params.occlusion).masks, ids


def same_weights(a: dict, b: dict) -> bool:
    return a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)


def count_steps(monkeypatch) -> list[int]:
    """Record the step index of every call of the loop's per-batch function."""
    calls: list[int] = []
    real = EpochSteps.run

    def run(self, step, images_u8, masks_u8):
        calls.append(step)
        return real(self, step, images_u8, masks_u8)

    monkeypatch.setattr(EpochSteps, "run", run)
    return calls


# --- the figures: the steps apart from the rest ----------------------------------------


def test_train_json_times_the_steps_apart_from_everything_else(data):
    pause = 0.25
    result = train_model(tiny_params(train={"epochs": 2}), *data, on_epoch=lambda record: time.sleep(pause))
    figures = summary(result, tiny_params(), CPU)
    seen = 2 * ((N - 5) // 8) * 8  # 5 held out, batches of 8, two epochs
    assert figures["overhead_s"] >= 2 * pause  # the callbacks' time is overhead, not steps
    step_seconds = seen / result.step_images_per_s
    assert result.seconds == pytest.approx(step_seconds + result.overhead_s)
    assert result.images_per_s == pytest.approx(seen / result.seconds)
    assert figures["step_images_per_s"] > figures["images_per_s"]
    assert figures["batch_size"] == 8 and figures["lr"] == 2e-3


# --- train.batch_size: auto -----------------------------------------------------------


def test_auto_resolves_to_32_on_a_cpu_and_to_a_larger_batch_with_a_scaled_rate_on_cuda():
    auto = Params().train
    assert auto.batch_size == "auto"
    assert resolve_batch(auto, CPU) == (32, auto.lr) and resolve_batch(auto, CPU, world=2) == (32, auto.lr)
    batch, lr = resolve_batch(auto, CUDA)
    assert batch == CUDA_BATCH == 256 and lr == pytest.approx(auto.lr * math.sqrt(256 / 32))
    assert resolve_batch(auto, CUDA, world=4) == (1024, pytest.approx(auto.lr * math.sqrt(1024 / 32)))
    fixed = auto.model_copy(update={"batch_size": 64})
    assert resolve_batch(fixed, CPU) == resolve_batch(fixed, CUDA) == (64, auto.lr)  # integers as given, lr too


@pytest.mark.parametrize("value", ["big", 0, -3, 2.5, True, "", [32], "Auto"])
def test_a_bad_batch_size_is_one_line_naming_the_param(value):
    with pytest.raises(ParamError, match=r"^train\.batch_size: expected a positive integer or auto, got [^\n]*$"):
        from_dict({"train": {"batch_size": value}})


def test_integers_and_auto_are_accepted():
    assert from_dict({"train": {"batch_size": "16"}}).train.batch_size == 16
    assert from_dict({"train": {"batch_size": 2.0}}).train.batch_size == 16 // 8
    assert from_dict({"train": {"batch_size": "auto"}}).train.batch_size == "auto" == Params().train.batch_size


def test_auto_on_a_cpu_is_the_32_it_replaces_bit_for_bit(data, tmp_path):
    auto, fixed = tiny_params(train={"batch_size": "auto"}), tiny_params(train={"batch_size": 32})
    a, b = train_model(auto, *data), train_model(fixed, *data)
    assert same_weights(a.state["model"], b.state["model"]) and a.history == b.history
    assert summary(a, auto, CPU)["batch_size"] == 32 and summary(a, auto, CPU)["lr"] == auto.train.lr
    inputs = [tmp_path / "none"]
    assert fingerprint(auto, inputs) == fingerprint(fixed, inputs)  # the same training, the same resume state


def test_auto_s_fingerprint_is_that_of_what_it_resolves_to(monkeypatch, tmp_path):
    auto = tiny_params(train={"batch_size": "auto", "device": "auto"})
    on_cpu = fingerprint(auto, [])
    monkeypatch.setattr(train_module, "select_device", lambda name: CUDA)
    on_cuda = fingerprint(auto, [])
    assert on_cuda != on_cpu  # a GPU's resume state (batch 256) is not resumed on a CPU (batch 32)
    resolved = tiny_params(train={"batch_size": CUDA_BATCH, "device": "auto", "lr": auto.train.lr * math.sqrt(CUDA_BATCH / 32)})
    assert fingerprint(resolved, []) == on_cuda


# --- resume points bounded by time ----------------------------------------------------


def written_epochs(monkeypatch) -> list[int]:
    epochs: list[int] = []
    real = state_module.save_checkpoint

    def save(path, state):
        epochs.append(int(state["epoch"]))
        return real(path, state)

    monkeypatch.setattr(state_module, "save_checkpoint", save)
    return epochs


@pytest.mark.parametrize("minutes, expected", [(0, [0, 1, 2, 3]), (60, [0, 3])])
def test_the_resume_state_is_written_at_most_every_resume_minutes_and_after_the_last_epoch(data, tmp_path, monkeypatch, minutes, expected):
    written = written_epochs(monkeypatch)
    train_model(tiny_params(train={"epochs": 3, "resume_minutes": minutes}), *data, resume_path=tmp_path / "state.pt")
    assert written == expected


def test_a_training_stopped_mid_epoch_writes_its_last_complete_epoch_and_resumes_bitwise(data, tmp_path, monkeypatch):
    params = tiny_params(train={"epochs": 4, "resume_minutes": 60, "ema": 0.9})
    unbroken = train_model(params, *data)
    written = written_epochs(monkeypatch)
    calls = count_steps(monkeypatch)
    real = EpochSteps.run  # count_steps' wrapper

    def interrupted(self, step, images_u8, masks_u8):
        if len(calls) == 2 * ((N - 5) // 8) + 2:  # the third step of epoch 3
            raise KeyboardInterrupt
        return real(self, step, images_u8, masks_u8)

    monkeypatch.setattr(EpochSteps, "run", interrupted)
    resume = tmp_path / "state.pt"
    with pytest.raises(KeyboardInterrupt):
        train_model(params, *data, resume_path=resume)
    assert written == [0, 2]  # nothing after epochs 1 and 2 (not due), epoch 2 on the way out
    monkeypatch.setattr(EpochSteps, "run", real)
    resumed = train_model(params, *data, resume_path=resume)
    assert resumed.resumed_from_epoch == 2 and resumed.history == unbroken.history
    assert same_weights(resumed.state["model"], unbroken.state["model"])


def test_a_non_finite_loss_keeps_the_last_good_epoch_even_between_resume_points(data, tmp_path, monkeypatch):
    real_loss = epoch_module.inpainting_loss
    calls = {"n": 0}

    def poisoned(*args, **kwargs):
        calls["n"] += torch.is_grad_enabled()
        loss, recon, kl = real_loss(*args, **kwargs)
        return (loss * float("nan") if calls["n"] == 2 * ((N - 5) // 8) + 1 else loss), recon, kl

    monkeypatch.setattr(epoch_module, "inpainting_loss", poisoned)
    resume = tmp_path / "state.pt"
    with pytest.raises(TrainingError, match="last good checkpoint is epoch 2"):
        train_model(tiny_params(train={"epochs": 3, "resume_minutes": 60}), *data, resume_path=resume)
    assert load_checkpoint(resume)["epoch"] == 2


def test_a_kept_state_is_a_copy_that_training_does_not_change():
    state = {"model": {"w": torch.ones(2)}, "history": [{"epoch": 1}], "clock": {"elapsed": 1.0}}
    kept = state_module.host_copy(state)
    state["model"]["w"].add_(1)
    state["history"].append({"epoch": 2})
    state["history"][0]["epoch"] = 9
    assert torch.equal(kept["model"]["w"], torch.ones(2)) and kept["history"] == [{"epoch": 1}]


# --- the epoch's order, drawn on the CPU ----------------------------------------------


def test_on_a_cpu_the_epoch_order_and_the_masks_after_it_are_drawn_as_before():
    masks = TrainingMasks(32, tiny_params().occlusion, seed=3, device="cpu")
    generator, before = masks.for_epoch(4), masks.for_epoch(4)
    order = epoch_permutation(masks, 4, generator, 100)
    assert torch.equal(order, torch.randperm(100, generator=before, device="cpu"))
    assert torch.equal(generator.get_state(), before.get_state())  # the masks then draw what they drew


def test_off_the_cpu_the_order_comes_from_a_cpu_generator_of_the_same_seed():
    masks = TrainingMasks(32, tiny_params().occlusion, seed=3, device="cpu")

    class OnADevice:  # the epoch's generator as a GPU's would be: not to be drawn from for the order
        device = CUDA

    order = epoch_permutation(masks, 4, OnADevice(), 100)
    assert order.device.type == "cpu" and torch.equal(order, torch.randperm(100, generator=masks.for_epoch(4)))
