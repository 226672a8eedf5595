import numpy as np
import pytest
import torch

from vaeinpaint.errors import DataError, TrainingError
from vaeinpaint.evaluation.evaluate import restore, score_model, summarize
from vaeinpaint.masks.generator import occlude
from vaeinpaint.modeling import train as train_module
from vaeinpaint.modeling.checkpoint import load_checkpoint, model_from_checkpoint, save_checkpoint
from vaeinpaint.modeling.train import fingerprint, holdout, lr_factor, train_model

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


def test_fixed_masks_mode_trains(data):
    result = train_model(tiny_params(train={"epochs": 1, "masks": "fixed"}), *data)
    assert len(result.history) == 1


def test_resume_after_interruption_is_bitwise_identical(data, tmp_path):
    params = tiny_params(train={"epochs": 3})
    unbroken = train_model(params, *data, resume_path=tmp_path / "unbroken.pt")

    resume = tmp_path / "state.pt"

    def die_after_first_epoch(record):
        if record["epoch"] == 1:
            raise KeyboardInterrupt  # the process is killed after epoch 1 was saved

    with pytest.raises(KeyboardInterrupt):
        train_model(params, *data, resume_path=resume, on_epoch=die_after_first_epoch)
    assert load_checkpoint(resume)["epoch"] == 1
    resumed = train_model(params, *data, resume_path=resume)
    assert resumed.resumed_from_epoch == 1
    assert [r["train_loss"] for r in resumed.history] == [r["train_loss"] for r in unbroken.history]
    assert same_weights(weights(resumed.model), weights(unbroken.model))


def test_non_finite_loss_names_epoch_and_step_and_keeps_last_good_state(data, tmp_path, monkeypatch):
    real_loss = train_module.inpainting_loss
    calls = {"n": 0}
    steps_per_epoch = (N - 5) // 8  # 5 held out, batches of 8

    def poisoned(*args, **kwargs):
        calls["n"] += torch.is_grad_enabled()  # count training steps, not validation
        loss, recon, kl = real_loss(*args, **kwargs)
        if torch.is_grad_enabled() and calls["n"] == steps_per_epoch + 3:  # epoch 2, step 3
            loss = loss * float("nan")
        return loss, recon, kl

    monkeypatch.setattr(train_module, "inpainting_loss", poisoned)
    resume = tmp_path / "state.pt"
    with pytest.raises(TrainingError, match=r"epoch 2, step 3.*last good checkpoint is epoch 1"):
        train_model(tiny_params(train={"epochs": 3}), *data, resume_path=resume)
    assert load_checkpoint(resume)["epoch"] == 1


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
    assert fingerprint(tiny_params(train={"max_minutes": 5}), [data_file]) == base
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
