"""Numerics as documented: the latent noise drawn in fp32 under autocast, evaluation in
exact fp32 (TF32 off on CUDA), training's backend switches set explicitly."""

from __future__ import annotations

import pytest
import torch

from vaeinpaint.evaluation import evaluate as evaluate_module
from vaeinpaint.modeling import precision as precision_module
from vaeinpaint.modeling.checkpoint import load_checkpoint, model_from_checkpoint
from vaeinpaint.modeling.model import reparameterise

from conftest import synthetic_images

CPU, CUDA = torch.device("cpu"), torch.device("cuda")  # CUDA: only its type is looked at here


def test_the_latent_noise_is_drawn_in_fp32_under_bf16_autocast():
    mu = torch.randn(4, 3, 5, 5).to(torch.bfloat16)
    logvar = torch.randn(4, 3, 5, 5).to(torch.bfloat16)
    z = reparameterise(mu, logvar, True, torch.Generator().manual_seed(7))
    noise = torch.randn(mu.shape, generator=torch.Generator().manual_seed(7), dtype=torch.float32)
    assert z.dtype == torch.bfloat16
    assert torch.equal(z, (mu.float() + noise * torch.exp(0.5 * logvar.float())).to(torch.bfloat16))
    assert not torch.equal(
        z, mu + torch.randn(mu.shape, generator=torch.Generator().manual_seed(7), dtype=torch.bfloat16) * torch.exp(0.5 * logvar)
    )


def test_in_fp32_the_latent_noise_is_what_it_always_was():
    mu, logvar = torch.randn(4, 3, 5, 5), torch.randn(4, 3, 5, 5)
    before = mu + torch.randn(mu.shape, generator=torch.Generator().manual_seed(3), dtype=mu.dtype) * torch.exp(0.5 * logvar)
    assert torch.equal(reparameterise(mu, logvar, True, torch.Generator().manual_seed(3)), before)


def test_evaluation_runs_with_tf32_off_and_puts_the_switches_back(tiny_checkpoint):
    model, size = model_from_checkpoint(load_checkpoint(tiny_checkpoint))
    seen = []
    model.register_forward_pre_hook(lambda module, args: seen.append(precision_module._tf32()))
    before = precision_module._tf32()
    images = synthetic_images(3, size)
    evaluate_module.restore(model, images, (images > 128).astype("uint8"))
    assert seen == [precision_module.tf32_switches(False)] and precision_module._tf32() == before


@pytest.mark.parametrize("precision, tf32", [("bf16", True), ("fp16", True), ("fp32", False)])
def test_training_on_cuda_autotunes_and_sets_tf32_by_its_precision(precision, tf32):
    before = torch.backends.cudnn.benchmark, precision_module._tf32()
    with precision_module.training_backends(CUDA, precision):
        assert torch.backends.cudnn.benchmark and precision_module._tf32() == precision_module.tf32_switches(tf32)
    assert (torch.backends.cudnn.benchmark, precision_module._tf32()) == before
    with precision_module.training_backends(CPU, precision):  # a CPU: nothing to switch
        assert (torch.backends.cudnn.benchmark, precision_module._tf32()) == before
