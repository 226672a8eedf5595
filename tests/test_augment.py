"""`train.augment`: flips and crops on the device, seeded per epoch, resume still exact."""

from __future__ import annotations

import pytest
import torch
import yaml

from vaeinpaint.errors import ParamError
from vaeinpaint.masks.generator import occlude
from vaeinpaint.modeling.augment import CROP_SCALE, augment, augment_generator
from vaeinpaint.modeling.checkpoint import load_checkpoint
from vaeinpaint.modeling.train import train_model
from vaeinpaint.params import augment_ops, load_params

from conftest import synthetic_images, tiny_params

CPU = torch.device("cpu")


@pytest.mark.parametrize(
    "written, canonical",
    [("none", "none"), ("flip", "flip"), ("flip+crop", "flip+crop"), (["crop", "flip"], "flip+crop"), (["flip"], "flip"), ([], "none")],
)
def test_augment_param_forms(tmp_path, written, canonical):
    path = tmp_path / "params.yaml"
    path.write_text(yaml.safe_dump({"train": {"augment": written}}))
    value = load_params(path, base=tmp_path).train.augment
    assert value == canonical
    assert augment_ops(value) == tuple(op for op in ("flip", "crop") if op in canonical)


def test_unknown_augmentation_names_the_param(tmp_path):
    path = tmp_path / "params.yaml"
    path.write_text(yaml.safe_dump({"train": {"augment": ["flip", "rotate"]}}))
    with pytest.raises(ParamError, match=r"^train.augment: unknown value 'rotate'"):
        load_params(path, base=tmp_path)


def batch(n=64, size=24, channels=3) -> torch.Tensor:
    return torch.rand(n, channels, size, size, generator=torch.Generator().manual_seed(0))


def test_augmentation_is_a_function_of_seed_and_epoch():
    x = batch()
    first = augment(x, ("flip", "crop"), augment_generator(0, 3, CPU))
    again = augment(x, ("flip", "crop"), augment_generator(0, 3, CPU))
    assert torch.equal(first, again)
    assert not torch.equal(first, augment(x, ("flip", "crop"), augment_generator(0, 4, CPU)))  # another epoch
    assert not torch.equal(first, augment(x, ("flip", "crop"), augment_generator(1, 3, CPU)))  # another seed
    assert not torch.equal(first, augment(x, ("flip", "crop"), augment_generator(0, 3, CPU, rank=1)))  # another process


def test_flip_mirrors_about_half_of_the_images_left_right():
    x = batch()
    out = augment(x, ("flip",), augment_generator(0, 0, CPU))
    same = [torch.equal(o, i) for o, i in zip(out, x)]
    mirrored = [torch.equal(o, i.flip(-1)) for o, i in zip(out, x)]
    assert all(s != m for s, m in zip(same, mirrored))  # each image one or the other
    assert 16 < sum(mirrored) < 48


def test_crop_zooms_in_by_at_most_the_crop_scale():
    """On a horizontal ramp a crop of scale s is a ramp with slope s times the original's,
    staying inside the original's range: a zoom of 1 to 1 / CROP_SCALE."""
    size = 64
    ramp = torch.linspace(0, 1, size).expand(8, 1, size, size).contiguous()
    out = augment(ramp, ("crop",), augment_generator(0, 0, CPU))
    slopes = (out[:, 0, :, 40] - out[:, 0, :, 20]).mean(1) / (ramp[0, 0, 0, 40] - ramp[0, 0, 0, 20])
    assert ((slopes >= CROP_SCALE - 0.01) & (slopes <= 1.0 + 1e-5)).all()
    assert slopes.std() > 0.01  # every image draws its own scale
    assert out.min() >= 0 and out.max() <= 1
    assert torch.allclose(out[:, :, 0], out[:, :, -1], atol=1e-6)  # a horizontal ramp stays one


N = 48


@pytest.fixture(scope="module")
def data():
    params = tiny_params()
    images = synthetic_images(N, params.prepare.size)
    ids = [f"{i:016x}" for i in range(N)]
    masks = occlude(ids, params.prepare.size, params.occlusion).masks
    return images, masks, ids


def test_resume_with_augmentation_is_bitwise_identical(data, tmp_path):
    params = tiny_params(train={"epochs": 2, "augment": "flip+crop"})
    unbroken = train_model(params, *data, resume_path=tmp_path / "unbroken.pt")
    plain = train_model(tiny_params(train={"epochs": 2}), *data)
    assert plain.history[0]["train_loss"] != unbroken.history[0]["train_loss"]  # it does augment

    def die_after_first_epoch(record):
        if record["epoch"] == 1:
            raise KeyboardInterrupt

    resume = tmp_path / "state.pt"
    with pytest.raises(KeyboardInterrupt):
        train_model(params, *data, resume_path=resume, on_epoch=die_after_first_epoch)
    assert load_checkpoint(resume)["epoch"] == 1
    resumed = train_model(params, *data, resume_path=resume)
    assert resumed.resumed_from_epoch == 1
    assert [r["train_loss"] for r in resumed.history] == [r["train_loss"] for r in unbroken.history]
    weights = resumed.model.state_dict()
    assert all(torch.equal(weights[k], v) for k, v in unbroken.model.state_dict().items())
