"""train.ema: a moving average of the weights is what is validated, saved and evaluated, and a
training with it resumes exactly."""

import pytest
import torch

from vaeinpaint.masks.generator import occlude
from vaeinpaint.modeling.checkpoint import load_checkpoint, model_from_checkpoint
from vaeinpaint.modeling.ema import WeightAverage
from vaeinpaint.modeling.model import InpaintVAE
from vaeinpaint.modeling.train import train_model

from conftest import synthetic_images, tiny_params

N = 40


@pytest.fixture(scope="module")
def data():
    params = tiny_params()
    ids = [f"{i:016x}" for i in range(N)]
    return synthetic_images(N, params.prepare.size), occlude(ids, params.prepare.size, params.occlusion).masks, ids


def test_the_decay_warms_up_to_its_value():
    average = WeightAverage(torch.nn.Linear(2, 2), decay=0.99)
    factors = []
    for _ in range(2000):
        factors.append(average.factor())
        average.updates += 1
    assert factors[0] == pytest.approx(0.1)  # (1 + 0) / (10 + 0): the first update moves 90% of the way
    assert all(a <= b for a, b in zip(factors, factors[1:]))
    assert factors[-1] == 0.99 and max(factors) == 0.99


def test_an_update_moves_the_average_towards_the_weights_and_copies_counters():
    model = InpaintVAE(width=4, latent_channels=2)
    average = WeightAverage(model, decay=0.5)
    before = {k: v.clone() for k, v in average.model.state_dict().items()}
    with torch.no_grad():
        for p in model.parameters():
            p.add_(1.0)
        model.enc1[0][1].num_batches_tracked += 7
    d = average.factor()
    average.update(model)
    after, trained = average.model.state_dict(), model.state_dict()
    key = "enc1.0.0.weight"
    assert torch.allclose(after[key], d * before[key] + (1 - d) * trained[key])
    assert after["enc1.0.1.num_batches_tracked"] == trained["enc1.0.1.num_batches_tracked"] == 7
    assert not any(p.requires_grad for p in average.model.parameters())


def update_as_before(average: WeightAverage, model: torch.nn.Module) -> None:
    """WeightAverage.update as it was before its lists were kept and its copies fused
    (commit ac045bd): the reference the kept lists must match bit for bit."""
    d = average.factor()
    pairs = [(a, b) for a, b in zip([*average.model.parameters(), *average.model.buffers()], [*model.parameters(), *model.buffers()])]
    floats = [(a, b.detach()) for a, b in pairs if a.is_floating_point()]
    with torch.no_grad():
        torch._foreach_lerp_([a for a, _ in floats], [b for _, b in floats], 1.0 - d)
        for a, b in pairs:
            if not a.is_floating_point():
                a.copy_(b)
    average.updates += 1


def test_the_kept_lists_and_fused_copies_average_bitwise_as_before():
    torch.manual_seed(0)
    model = InpaintVAE(width=8, latent_channels=4, context=1, attention=True)
    new, old = WeightAverage(model, decay=0.99), WeightAverage(model, decay=0.99)
    for step in range(30):
        with torch.no_grad():  # what an optimiser step and a forward pass do: everything moves, in place
            for t in [*model.parameters(), *model.buffers()]:
                if t.is_floating_point():
                    t.add_(torch.randn_like(t) * 0.1)
                else:
                    t.add_(step % 3)
        new.update(model)
        update_as_before(old, model)
        a, b = new.model.state_dict(), old.model.state_dict()
        assert a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a), step
    restored = WeightAverage(model, decay=0.99)
    restored.load_state_dict(old.state_dict())  # in place: the kept lists stay the model's
    new.update(model)
    restored.update(model)
    assert all(torch.equal(x, y) for x, y in zip(new.model.state_dict().values(), restored.model.state_dict().values()))


def test_with_ema_the_saved_model_is_the_average_not_the_trained_weights(data, tmp_path):
    plain = train_model(tiny_params(train={"epochs": 2, "ema": 0.0}), *data)
    averaged = train_model(tiny_params(train={"epochs": 2, "ema": 0.9}), *data)
    # Same data, same steps: the trained weights are the same, what is saved differs.
    state = averaged.state["model"]
    assert any(not torch.equal(state[k], plain.state["model"][k]) for k in state)
    model, _ = model_from_checkpoint(averaged.state)
    assert all(torch.equal(model.state_dict()[k], v) for k, v in averaged.model.state_dict().items())
    assert len(averaged.history) == 2 and all(r["val_loss"] == r["val_loss"] for r in averaged.history)


def test_a_training_with_ema_resumes_bitwise(data, tmp_path):
    params = tiny_params(train={"epochs": 3, "ema": 0.9})
    unbroken = train_model(params, *data)
    resume = tmp_path / "state.pt"

    def die_after_first_epoch(record):
        if record["epoch"] == 1:
            raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        train_model(params, *data, resume_path=resume, on_epoch=die_after_first_epoch)
    state = load_checkpoint(resume)
    assert state["ema"]["updates"] > 0 and "model" in state["ema"]
    resumed = train_model(params, *data, resume_path=resume)
    assert resumed.resumed_from_epoch == 1
    assert [r["val_loss"] for r in resumed.history] == [r["val_loss"] for r in unbroken.history]
    a, b = resumed.state["model"], unbroken.state["model"]
    assert a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)


def test_ema_outside_its_range_is_a_param_error():
    from vaeinpaint.errors import ParamError
    from vaeinpaint.params import validate

    validate(tiny_params(train={"ema": 0.999}), check_paths=False)
    with pytest.raises(ParamError, match=r"train\.ema: .* must be in \[0, 1\)"):
        validate(tiny_params(train={"ema": 1.0}), check_paths=False)
