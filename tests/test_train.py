import numpy as np
import pytest
import torch

from vaeinpaint.errors import DataError, TrainingError
from vaeinpaint.evaluation.evaluate import restore, score_model, summarize
from vaeinpaint.masks.generator import occlude
from vaeinpaint.modeling import epoch as epoch_module  # where the training loop looks up its step and loss
from vaeinpaint.modeling import precision as precision_module
from vaeinpaint.modeling import schedule as schedule_module
from vaeinpaint.modeling import train as train_module
from vaeinpaint.modeling.checkpoint import load_checkpoint, model_from_checkpoint, save_checkpoint
from vaeinpaint.modeling.schedule import lr_factor
from vaeinpaint.modeling.train import fingerprint, holdout, train_model

from conftest import synthetic_images, tiny_params

N = 48


@pytest.fixture(scope="module")
def data():
    params = tiny_params()
    images = synthetic_images(N, params.prepare.size)
    ids = [f"{i:016x}" for i in range(N)]
    masks = occlude(ids, params.prepare.size, params.occlusion).masks
    return images, masks, ids


def weights(model):
    return {k: v.clone() for k, v in model.state_dict().items()}


def same_weights(a, b):
    return a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)


def test_loss_goes_down(data):
    result = train_model(tiny_params(train={"epochs": 6, "lr": 3e-3}), *data)
    losses = [r["train_loss"] for r in result.history]
    assert len(losses) == 6 and losses[-1] < 0.7 * losses[0]
    assert all(np.isfinite(r["val_loss"]) for r in result.history)


def test_same_params_same_result_on_cpu(data):
    params = tiny_params(train={"epochs": 2})
    a, b = train_model(params, *data), train_model(params, *data)
    assert a.history == [dict(r) for r in b.history]
    assert same_weights(weights(a.model), weights(b.model))
    images, masks, _ = data
    scores = [summarize(score_model(images, masks, restore(r.model, images, masks))) for r in (a, b)]
    assert scores[0] == scores[1]
    c = train_model(tiny_params(train={"epochs": 2, "seed": 1}), *data)
    assert not same_weights(weights(a.model), weights(c.model))


def spy_on_steps(monkeypatch) -> list[dict]:
    """Record what every training step saw: its masks and the learning rate it used."""
    seen: list[dict] = []
    real_step = epoch_module.training_step

    def step(model, optimizer, x, m, *args, **kwargs):
        seen.append({"masks": m.detach().clone(), "lr": optimizer.param_groups[0]["lr"]})
        return real_step(model, optimizer, x, m, *args, **kwargs)

    monkeypatch.setattr(epoch_module, "training_step", step)
    return seen


def test_fixed_masks_mode_trains_on_the_stored_masks_and_random_mode_does_not(data, monkeypatch):
    images, masks, ids = data
    stored = {m.tobytes() for m in masks}
    seen = spy_on_steps(monkeypatch)
    train_model(tiny_params(train={"epochs": 1, "masks": "fixed"}), *data)
    drawn = [m[0].to(torch.uint8).numpy().tobytes() for step in seen for m in step["masks"]]
    assert len(drawn) == (N - 5) // 8 * 8 and set(drawn) <= stored  # every training mask is a stored one
    seen.clear()
    train_model(tiny_params(train={"epochs": 1, "masks": "random"}), *data)
    drawn = [m[0].to(torch.uint8).numpy().tobytes() for step in seen for m in step["masks"]]
    assert len(set(drawn) - stored) > len(drawn) // 2  # fresh squares, mostly not the stored ones


def test_resume_after_interruption_is_bitwise_identical(data, tmp_path):
    params = tiny_params(train={"epochs": 3})
    unbroken = train_model(params, *data, resume_path=tmp_path / "unbroken.pt")

    resume = tmp_path / "state.pt"

    first_session_minutes = []

    def die_after_first_epoch(record):
        if record["epoch"] == 1:
            first_session_minutes.append(record["minutes"])
            raise KeyboardInterrupt  # the process is killed after epoch 1 was saved

    with pytest.raises(KeyboardInterrupt):
        train_model(params, *data, resume_path=resume, on_epoch=die_after_first_epoch)
    assert load_checkpoint(resume)["epoch"] == 1
    resumed = train_model(params, *data, resume_path=resume)
    assert resumed.resumed_from_epoch == 1
    # train.json's training_minutes counts the killed session too; "seconds" is this session's
    assert resumed.minutes > first_session_minutes[0] > 0
    assert train_module.summary(resumed, params, torch.device("cpu"))["training_minutes"] == round(resumed.minutes, 3)
    assert [r["train_loss"] for r in resumed.history] == [r["train_loss"] for r in unbroken.history]
    assert same_weights(weights(resumed.model), weights(unbroken.model))


def same_state(a, b, where="state"):
    """Checkpoint contents alike key by key, in the same order, tensors bitwise."""
    if isinstance(a, torch.Tensor):
        assert isinstance(b, torch.Tensor) and a.dtype == b.dtype and torch.equal(a, b), where
    elif isinstance(a, dict):
        assert list(a) == list(b), where
        for key in a:
            same_state(a[key], b[key], f"{where}/{key}")
    elif isinstance(a, (list, tuple)):
        assert len(a) == len(b), where
        for i, (x, y) in enumerate(zip(a, b)):
            same_state(x, y, f"{where}[{i}]")
    else:
        assert a == b or (a != a and b != b), where  # NaN val_loss without a holdout


@pytest.mark.parametrize(
    "train",
    [
        {"ema": 0.9, "augment": "flip+crop"},
        {"ema": 0.9, "augment": "flip+crop", "masks": "fixed"},
        {"ema": 0, "augment": "flip", "masks": "fixed", "ssim_weight": 0.5},
    ],
    ids=["ema-augment", "ema-augment-fixed-masks", "no-ema-flip-fixed-masks-ssim"],
)
def test_resume_is_bitwise_identical_with_average_augmentation_and_stored_masks(data, tmp_path, train):
    # Every stream an epoch draws from (order, masks, noise, augmentation) and everything the
    # state carries (the average included) comes back alike: the final checkpoint too.
    params = tiny_params(train={"epochs": 3, **train})
    unbroken = train_model(params, *data, resume_path=tmp_path / "a" / "state.pt", run_id="r1")
    resume = tmp_path / "b" / "state.pt"

    def die_after_first_epoch(record):
        if record["epoch"] == 1:
            raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        train_model(params, *data, resume_path=resume, on_epoch=die_after_first_epoch, run_id="r1")
    resumed = train_model(params, *data, resume_path=resume, run_id="r1")
    assert resumed.resumed_from_epoch == 1
    assert resumed.history == unbroken.history
    assert same_weights(weights(resumed.model), weights(unbroken.model))
    same_state(resumed.state, unbroken.state)
    assert list(unbroken.state) == ["model", "optimizer", "scheduler", "epoch", "history", "config", "fingerprint"]


def test_non_finite_loss_names_epoch_and_step_and_keeps_last_good_state(data, tmp_path, monkeypatch):
    real_loss = epoch_module.inpainting_loss
    calls = {"n": 0}
    steps_per_epoch = (N - 5) // 8  # 5 held out, batches of 8

    def poisoned(*args, **kwargs):
        calls["n"] += torch.is_grad_enabled()  # count training steps, not validation
        loss, recon, kl = real_loss(*args, **kwargs)
        if torch.is_grad_enabled() and calls["n"] == steps_per_epoch + 3:  # epoch 2, step 3
            loss = loss * float("nan")
        return loss, recon, kl

    monkeypatch.setattr(epoch_module, "inpainting_loss", poisoned)
    resume = tmp_path / "state.pt"
    with pytest.raises(TrainingError, match=r"epoch 2, step 3.*last good checkpoint is epoch 1"):
        train_model(tiny_params(train={"epochs": 3}), *data, resume_path=resume)
    assert load_checkpoint(resume)["epoch"] == 1


@pytest.mark.parametrize("content", [b"", b"PK\x03\x04 half a zip", "valid but foreign"])
def test_an_empty_or_corrupt_resume_state_starts_over_with_a_warning(data, tmp_path, caplog, content):
    # A power loss can leave a zero-length file; a foreign one must not be trusted either.
    params = tiny_params(train={"epochs": 1})
    resume = tmp_path / "state.pt"
    if content == "valid but foreign":
        torch.save({"model": {}, "config": {}}, resume)  # loads, but is no training state
    else:
        resume.write_bytes(content)
    with caplog.at_level("WARNING", logger="vaeinpaint.modeling.train"):
        result = train_model(params, *data, resume_path=resume)
    assert result.resumed_from_epoch == 0 and len(result.history) == 1
    assert "starting over" in caplog.text and str(resume) in caplog.text
    fresh = train_model(params, *data)
    assert same_weights(weights(result.model), weights(fresh.model))
    assert load_checkpoint(resume)["epoch"] == 1  # the bad file was replaced by a good state


def test_the_resume_state_names_the_run_from_before_the_first_epoch_ends(data, tmp_path, monkeypatch):
    # A kill in the first epoch must not orphan the MLflow run: its id is on disk at once.
    real_step = epoch_module.training_step

    def killed_in_step_2(*args, _calls=[0], **kwargs):  # noqa: B006 (a counter)
        _calls[0] += 1
        if _calls[0] == 2:
            raise KeyboardInterrupt
        return real_step(*args, **kwargs)

    monkeypatch.setattr(epoch_module, "training_step", killed_in_step_2)
    resume = tmp_path / "state.pt"
    with pytest.raises(KeyboardInterrupt):
        train_model(tiny_params(train={"epochs": 2}), *data, resume_path=resume, run_id="abc123")
    state = load_checkpoint(resume)
    assert state["epoch"] == 0 and state["run_id"] == "abc123"
    assert train_module.interrupted_run(resume) == ("abc123", [])
    monkeypatch.setattr(epoch_module, "training_step", real_step)
    resumed = train_model(tiny_params(train={"epochs": 2}), *data, resume_path=resume, run_id="abc123")
    unbroken = train_model(tiny_params(train={"epochs": 2}), *data)
    assert resumed.history == unbroken.history
    assert same_weights(weights(resumed.model), weights(unbroken.model))
    assert "run_id" not in resumed.state  # the final checkpoint stays the same bytes run after run


def test_time_budget_stops_after_the_epoch(data):
    result = train_model(tiny_params(train={"epochs": 5, "max_minutes": 1e-6}), *data)
    assert result.stopped_early and len(result.history) == 1


def test_checkpoint_round_trip_and_bad_files(data, tmp_path):
    result = train_model(tiny_params(train={"epochs": 1}), *data)
    path = tmp_path / "model.pt"
    save_checkpoint(path, result.state)
    model, size = model_from_checkpoint(load_checkpoint(path))
    assert size == 32 and same_weights(weights(model), weights(result.model))
    with pytest.raises(DataError, match="not found"):
        load_checkpoint(tmp_path / "missing.pt")
    (tmp_path / "junk.pt").write_bytes(b"not a checkpoint")
    with pytest.raises(DataError, match="cannot be loaded safely"):
        load_checkpoint(tmp_path / "junk.pt")


def test_checkpoint_loading_refuses_pickled_code(tmp_path):
    class Payload:
        def __reduce__(self):
            return (print, ("this must never run",))

    path = tmp_path / "evil.pt"
    torch.save({"model": Payload(), "config": {}}, path)
    with pytest.raises(DataError, match="cannot be loaded safely"):
        load_checkpoint(path)


def test_fingerprint_tracks_what_training_depends_on(tmp_path):
    data_file = tmp_path / "images.npy"
    data_file.write_bytes(b"a")
    base = fingerprint(tiny_params(), [data_file])
    assert fingerprint(tiny_params(train={"max_minutes": 5}), [data_file]) != base  # a budget drives the schedule
    assert fingerprint(tiny_params(train={"rdzv_endpoint": "node0:29400"}), [data_file]) == base  # where, not what
    assert fingerprint(tiny_params(train={"lr": 1e-4}), [data_file]) != base
    assert fingerprint(tiny_params(occlusion={"count": 2}), [data_file]) != base
    data_file.write_bytes(b"b")
    assert fingerprint(tiny_params(), [data_file]) != base


def test_holdout_and_schedule():
    held = holdout([f"{i:016x}" for i in range(100)], 0.1, seed=0)
    assert held.sum() == 10
    assert lr_factor(0, 100) < lr_factor(2, 100) <= 1.0
    assert lr_factor(99, 100) == pytest.approx(0.01, abs=1e-3)


def test_checkpoint_of_another_architecture_is_a_one_line_error(data, tmp_path):
    state = train_model(tiny_params(train={"epochs": 1}), *data).state
    state["config"]["model"]["width"] = 16  # weights no longer fit the model it describes
    with pytest.raises(DataError, match="^checkpoint: does not match this version's models"):
        model_from_checkpoint(state)
    del state["config"]["size"]
    with pytest.raises(DataError, match="^checkpoint: does not match"):
        model_from_checkpoint(state)


def test_ssim_loss_term_matches_the_reported_metric():
    from vaeinpaint.evaluation.metrics import ssim
    from vaeinpaint.modeling.train import ssim_map

    rng = np.random.default_rng(0)
    a = rng.random((2, 1, 40, 40))
    b = np.clip(a + 0.1 * rng.standard_normal(a.shape), 0, 1)
    maps = ssim_map(torch.from_numpy(a), torch.from_numpy(b))
    for i in range(2):
        assert maps[i].mean().item() == pytest.approx(ssim(a[i, 0], b[i, 0]), abs=1e-6)


# ----------------------------------------------------------------- time-driven schedule


class FakeTime:
    """The training clock's view of `time`: a clock that moves only when a training step runs."""

    def __init__(self, seconds_per_step: float):
        self.now, self.seconds_per_step = 1000.0, seconds_per_step

    def perf_counter(self) -> float:
        return self.now


def fake_time(monkeypatch, seconds_per_step: float) -> FakeTime:
    clock = FakeTime(seconds_per_step)
    monkeypatch.setattr(schedule_module, "time", clock)
    real_step = epoch_module.training_step

    def step(*args, **kwargs):
        clock.now += clock.seconds_per_step
        return real_step(*args, **kwargs)

    monkeypatch.setattr(epoch_module, "training_step", step)
    return clock


STEPS = (N - 5) // 8  # steps per epoch of the tiny data


def test_without_a_budget_the_schedule_follows_the_epochs_exactly(data, monkeypatch):
    seen = spy_on_steps(monkeypatch)
    train_model(tiny_params(train={"epochs": 3}), *data)
    total = 3 * STEPS
    assert [s["lr"] for s in seen] == [2e-3 * lr_factor(i, total) for i in range(total)]


def test_with_a_budget_the_learning_rate_follows_elapsed_time(data, monkeypatch):
    # "Train for 15 seconds", with epochs set high as a user would: the schedule must end
    # when the budget does (one step = 1 s here, so the budget is 3 epochs).
    fake_time(monkeypatch, seconds_per_step=1.0)
    seen = spy_on_steps(monkeypatch)
    result = train_model(tiny_params(train={"epochs": 1000, "max_minutes": 15 * STEPS / 5 / 60}), *data)
    assert result.stopped_early and len(result.history) == 3
    lrs = [s["lr"] / 2e-3 for s in seen]
    assert lrs[0] == pytest.approx(0.01)  # warm-up starts low...
    assert max(lrs) > 0.9  # ...reaches the peak...
    peak = lrs.index(max(lrs))
    assert all(a >= b for a, b in zip(lrs[peak:], lrs[peak + 1 :]))  # ...then only decays...
    assert lrs[-1] < 0.05  # ...to the floor by the last step
    assert result.history[-1]["lr"] == pytest.approx(0.01 * 2e-3)
    for i, lr in enumerate(lrs[2:], start=2):  # once the step time is measured, the schedule is the clock's
        assert lr == pytest.approx(schedule_module.lr_at(i / (3 * STEPS)), abs=1e-9)


def test_a_budget_longer_than_the_epochs_ends_the_schedule_with_the_epochs(data, monkeypatch):
    fake_time(monkeypatch, seconds_per_step=1.0)
    seen = spy_on_steps(monkeypatch)
    result = train_model(tiny_params(train={"epochs": 2, "max_minutes": 60}), *data)
    assert not result.stopped_early and len(result.history) == 2
    assert seen[-1]["lr"] / 2e-3 < 0.05 and result.history[-1]["lr"] == pytest.approx(0.01 * 2e-3)


def test_a_time_budgeted_training_resumes_exactly(data, tmp_path, monkeypatch):
    # With the clock made deterministic, an interrupted budgeted training must continue
    # exactly as the unbroken one: the elapsed time is part of the resume state.
    params = tiny_params(train={"epochs": 1000, "max_minutes": 15 * STEPS / 5 / 60})
    fake_time(monkeypatch, seconds_per_step=1.0)
    unbroken = train_model(params, *data)

    def die_after_first_epoch(record):
        if record["epoch"] == 1:
            raise KeyboardInterrupt

    resume = tmp_path / "state.pt"
    with pytest.raises(KeyboardInterrupt):
        train_model(params, *data, resume_path=resume, on_epoch=die_after_first_epoch)
    resumed = train_model(params, *data, resume_path=resume)
    assert resumed.resumed_from_epoch == 1 and resumed.stopped_early
    assert resumed.history == unbroken.history
    assert same_weights(weights(resumed.model), weights(unbroken.model))


def test_lr_at_warms_up_then_decays_to_the_floor():
    lr_at = schedule_module.lr_at
    assert lr_at(0.0) == pytest.approx(0.01) and lr_at(0.03) == pytest.approx(1.0)
    assert lr_at(0.5) == pytest.approx(0.01 + 0.99 * 0.5 * (1 + np.cos(np.pi * 0.47 / 0.97)))
    assert lr_at(1.0) == pytest.approx(0.01) and lr_at(7.0) == pytest.approx(0.01)


# ------------------------------------------------------------------------- precision


@pytest.mark.parametrize(("native_bf16", "expected"), [(True, "bf16"), (False, "fp16")])
def test_auto_precision_on_cuda_uses_bf16_only_where_the_card_has_it(monkeypatch, native_bf16, expected):
    calls = []

    def is_bf16_supported(including_emulation=True):
        calls.append(including_emulation)
        return native_bf16 or including_emulation  # a V100 or T4 "supports" bf16 only by emulation

    monkeypatch.setattr(torch.cuda, "is_bf16_supported", is_bf16_supported)
    assert precision_module.resolve_precision(torch.device("cuda"), "auto") == expected
    assert calls and not any(calls)  # asked about native support, not emulation
    assert precision_module.resolve_precision(torch.device("cuda"), "fp32") == "fp32"


def test_bf16_asked_for_on_a_card_without_it_is_a_param_error(monkeypatch):
    from vaeinpaint.errors import ParamError

    monkeypatch.setattr(torch.cuda, "is_bf16_supported", lambda including_emulation=True: including_emulation)
    with pytest.raises(ParamError, match="^train.precision: bf16"):
        precision_module.resolve_precision(torch.device("cuda"), "bf16")


def test_fp16_trains_with_a_gradient_scaler_and_resumes_exactly(data, tmp_path):
    params = tiny_params(train={"epochs": 2, "precision": "fp16"})
    unbroken = train_model(params, *data)
    assert unbroken.precision == "fp16"
    assert unbroken.state["scaler"]["scale"] > 0  # the scaler's state is kept with the model
    assert all(np.isfinite(r["train_loss"]) for r in unbroken.history)

    def die_after_first_epoch(record):
        if record["epoch"] == 1:
            raise KeyboardInterrupt

    resume = tmp_path / "state.pt"
    with pytest.raises(KeyboardInterrupt):
        train_model(params, *data, resume_path=resume, on_epoch=die_after_first_epoch)
    assert "scaler" in load_checkpoint(resume)
    resumed = train_model(params, *data, resume_path=resume)
    assert resumed.history == unbroken.history
    assert same_weights(weights(resumed.model), weights(unbroken.model))


def test_the_precision_used_is_in_the_summary(data):
    result = train_model(tiny_params(train={"epochs": 1, "precision": "fp32"}), *data)
    assert result.precision == "fp32"
    assert train_module.summary(result, tiny_params(), torch.device("cpu"))["precision"] == "fp32"


# ------------------------------------------------------------- several processes: setup


def test_sync_bn_converts_batch_norm_on_cuda_under_ddp_only():
    model = train_module.build_model(tiny_params().model)
    tp = tiny_params(train={"sync_bn": True}).train
    converted = train_module.with_sync_bn(model, tp, torch.device("cuda"), world=2)
    kinds = {type(m).__name__ for m in converted.modules()}
    assert "SyncBatchNorm" in kinds and "BatchNorm2d" not in kinds
    same = train_module.build_model(tiny_params().model)
    for device, world, sync in ((torch.device("cpu"), 2, True), (torch.device("cuda"), 1, True), (torch.device("cuda"), 2, False)):
        tp = tiny_params(train={"sync_bn": sync}).train
        kinds = {type(m).__name__ for m in train_module.with_sync_bn(same, tp, device, world).modules()}
        assert "SyncBatchNorm" not in kinds, (device, world, sync)


@pytest.mark.parametrize(
    ("batch", "world", "sync_bn", "warns"),
    [(64, 8, False, True), (64, 8, True, False), (128, 8, False, False), (8, 1, False, False), (24, 2, False, True)],
)
def test_a_small_per_process_batch_warns(batch, world, sync_bn, warns):
    message = train_module.small_batch_warning(batch, world, sync_bn_active=sync_bn)
    assert bool(message) == warns
    if warns:
        assert f"train.batch_size: {batch} is the global batch" in message and str(batch // world) in message


def test_ddp_wraps_the_compiled_module_not_the_other_way_round(tmp_path):
    # PyTorch's guide to torch.compile ("Where to apply torch.compile?"): compile the module, then wrap it in DDP.
    import torch.distributed as tdist

    tdist.init_process_group("gloo", store=tdist.FileStore(str(tmp_path / "store"), 1), rank=0, world_size=1)
    try:
        model = train_module.build_model(tiny_params().model)
        wrapped = train_module.wrap_for_training(model, tiny_params(train={"compile": True}).train, torch.device("cpu"), world=2)
        assert isinstance(wrapped, torch.nn.parallel.DistributedDataParallel)
        assert isinstance(wrapped.module, torch._dynamo.eval_frame.OptimizedModule)
        assert wrapped.module._orig_mod is model
        assert not isinstance(model, torch._dynamo.eval_frame.OptimizedModule)  # the state's model stays eager
        alone = train_module.wrap_for_training(model, tiny_params(train={"compile": True}).train, torch.device("cpu"), world=1)
        assert isinstance(alone, torch._dynamo.eval_frame.OptimizedModule) and alone._orig_mod is model
    finally:
        tdist.destroy_process_group()


def test_the_same_state_saves_to_the_same_bytes(tmp_path):
    """A checkpoint's bytes depend on its contents only (not on the temporary file it was
    written through), so DVC hashes the same weights the same in every run."""
    from vaeinpaint.modeling.model import build_model

    state = {"model": build_model(tiny_params().model).state_dict(), "epoch": 3}
    save_checkpoint(tmp_path / "a.pt", state)
    save_checkpoint(tmp_path / "sub" / "checkpoint.pt", state)
    assert (tmp_path / "a.pt").read_bytes() == (tmp_path / "sub" / "checkpoint.pt").read_bytes()
