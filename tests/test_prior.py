"""The learned prior (issue 21): KL(q || p) in closed form, a prior that never sees the hole,
free bits that free the posterior but not the prior, training that resumes bitwise, checkpoints
that say which prior they carry, and a standard model that ignores all of it."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from vaeinpaint.errors import ParamError
from vaeinpaint.evaluation.evaluate import restore
from vaeinpaint.masks.generator import occlude
from vaeinpaint.modeling.checkpoint import checkpoint_prior, load_checkpoint, model_config, model_from_checkpoint
from vaeinpaint.modeling.loss import inpainting_loss, learned_kl
from vaeinpaint.modeling.model import InpaintVAE, PosteriorEncoder, build_model, gaussian_kl, kl_divergence
from vaeinpaint.modeling.train import train_model
from vaeinpaint.params import ModelParams, from_dict

from conftest import synthetic_images, tiny_params

N = 48
LEARNED = {"width": 8, "latent_channels": 4, "prior": "learned"}


@pytest.fixture(scope="module")
def data():
    params = tiny_params()
    images = synthetic_images(N, params.prepare.size)
    ids = [f"{i:016x}" for i in range(N)]
    return images, occlude(ids, params.prepare.size, params.occlusion).masks, ids


def learned_model(seed: int = 0) -> InpaintVAE:
    torch.manual_seed(seed)
    return build_model(ModelParams(**LEARNED)).eval()


def inputs(n: int = 3, size: int = 32, seed: int = 0) -> tuple[torch.Tensor, torch.Tensor]:
    g = torch.Generator().manual_seed(seed)
    image = torch.rand(n, 1, size, size, generator=g)
    mask = torch.zeros(n, 1, size, size)
    mask[:, :, 8:20, 10:24] = 1
    return image, mask


def test_kl_between_gaussians_matches_the_closed_form():
    g = torch.Generator().manual_seed(0)
    q_mu, q_logvar, p_mu, p_logvar = (torch.randn(4, 3, 5, 5, generator=g) for _ in range(4))
    q = torch.distributions.Normal(q_mu, torch.exp(0.5 * q_logvar))
    p = torch.distributions.Normal(p_mu, torch.exp(0.5 * p_logvar))
    assert torch.allclose(gaussian_kl(q_mu, q_logvar, p_mu, p_logvar), torch.distributions.kl_divergence(q, p), atol=1e-5)
    # One dimension by hand: q = N(1, 2^2), p = N(0, 1): log(1/2) + (4 + 1) / 2 - 1/2 = 2 - log 2.
    value = gaussian_kl(torch.tensor(1.0), torch.tensor(4.0).log(), torch.tensor(0.0), torch.tensor(0.0))
    assert float(value) == pytest.approx(2 - np.log(2), abs=1e-6)
    # Against N(0, I) it is the standard model's KL; q = p gives 0.
    assert torch.allclose(
        gaussian_kl(q_mu, q_logvar, torch.zeros_like(p_mu), torch.zeros_like(p_logvar)).flatten(1).sum(1), kl_divergence(q_mu, q_logvar)
    )
    assert torch.equal(gaussian_kl(p_mu, p_logvar, p_mu, p_logvar), torch.zeros_like(p_mu))


def test_the_loss_has_kl_to_the_learned_prior_and_the_generative_path():
    tp = tiny_params(train={"generative_weight": 0.5, "kl_weight": 0.01}).train
    image, mask = inputs()
    model = learned_model().train()
    out, q_mu, q_logvar, p_mu, p_logvar, generated = model(
        image * (1 - mask), mask, generator=torch.Generator().manual_seed(0), image=image, generative=True
    )
    loss, recon, kl = inpainting_loss(out, image, mask, q_mu, q_logvar, tp, p_mu, p_logvar, generated)
    out, q_mu, q_logvar, p_mu, p_logvar, generated = (t.detach() for t in (out, q_mu, q_logvar, p_mu, p_logvar, generated))
    pixels = image[0].numel()
    expected_kl = gaussian_kl(q_mu, q_logvar, p_mu, p_logvar).flatten(1).sum(1).mean() / pixels
    weight = 1 + (tp.hole_weight - 1) * mask
    expected_recon = (weight * (out - image).abs()).mean() + 0.5 * (weight * (generated - image).abs()).mean()
    assert float(kl) == pytest.approx(float(expected_kl), rel=1e-5)
    assert float(recon) == pytest.approx(float(expected_recon), rel=1e-5)
    assert float(loss.detach()) == pytest.approx(float(expected_recon + 0.01 * expected_kl), rel=1e-5)


def test_kl_weight_auto_weighs_each_priors_kl_by_its_own_default():
    image, mask = inputs()
    model = learned_model().train()
    out, q_mu, q_logvar, p_mu, p_logvar = (t.detach() for t in model(image * (1 - mask), mask, sample=False, image=image))
    auto, explicit = (tiny_params(train={"kl_weight": w}).train for w in ("auto", 30.0))
    assert float(inpainting_loss(out, image, mask, q_mu, q_logvar, auto, p_mu, p_logvar)[0]) == pytest.approx(
        float(inpainting_loss(out, image, mask, q_mu, q_logvar, explicit, p_mu, p_logvar)[0]), rel=1e-6
    )
    standard = tiny_params(train={"kl_weight": 1e-3}).train
    assert float(inpainting_loss(out, image, mask, p_mu, p_logvar, auto)[0]) == pytest.approx(
        float(inpainting_loss(out, image, mask, p_mu, p_logvar, standard)[0]), rel=1e-6
    )
    # and the two defaults differ, so the learned prior's KL is not weighed at the standard's 0.001
    assert float(inpainting_loss(out, image, mask, q_mu, q_logvar, auto, p_mu, p_logvar)[0]) != pytest.approx(
        float(inpainting_loss(out, image, mask, q_mu, q_logvar, standard, p_mu, p_logvar)[0]), rel=1e-6
    )


def test_free_bits_free_the_posterior_but_the_prior_still_follows_it():
    q_mu = torch.tensor([[0.1, 3.0]], requires_grad=True)  # dimension 0: KL 0.005 nats; dimension 1: 4.5
    p_mu = torch.zeros(1, 2, requires_grad=True)
    zeros = torch.zeros(1, 2)
    term, kl = learned_kl(q_mu, zeros, p_mu, zeros, free_bits=0.5)
    assert float(term.detach()) == pytest.approx(float(kl.detach())) == pytest.approx(0.005 + 4.5)  # the value is the KL either way
    term.backward()
    assert q_mu.grad[0, 0] == 0 and q_mu.grad[0, 1] == pytest.approx(3.0)  # below 0.5 nats the posterior is free
    assert p_mu.grad[0, 0] == pytest.approx(-0.1) and p_mu.grad[0, 1] == pytest.approx(-3.0)  # the prior follows everywhere
    q_mu.grad = p_mu.grad = None
    term, _ = learned_kl(q_mu, zeros, p_mu, zeros, free_bits=0.0)
    term.backward()
    assert q_mu.grad[0, 0] == pytest.approx(0.1)


def test_the_prior_never_sees_the_hole():
    model = learned_model()
    image, mask = inputs()
    other = torch.where(mask > 0, torch.rand_like(image), image)  # the same visible pixels, another hole
    x, y = image * (1 - mask), other * (1 - mask)
    with torch.no_grad():
        a = model(x, mask, image=image)
        b = model(y, mask, image=other)
    assert torch.equal(a[3], b[3]) and torch.equal(a[4], b[4])  # p(z | visible) alike
    assert not torch.equal(a[1], b[1])  # q(z | image) sees the hole
    # What a user gets (restore, the engine) is drawn from p: alike draw for draw.
    images = [np.rint(t[:, 0].numpy() * 255).astype(np.uint8) for t in (image, other)]
    masks = mask[:, 0].numpy().astype(np.uint8)
    draws = [restore(model, im, masks, sample=True, generator=torch.Generator().manual_seed(3)) for im in images]
    hole = masks.astype(bool)
    assert np.array_equal(draws[0][hole], draws[1][hole])


def test_draws_come_from_the_prior_seeded_and_the_mean_is_deterministic():
    model = learned_model()
    image, mask = inputs()
    damaged = image * (1 - mask)
    with torch.no_grad():
        saved = model.to_latent.bias[4:].clone()
        model.to_latent.bias[4:] = 2.0  # a wide prior: draws differ visibly
        draw = lambda seed: model(damaged, mask, generator=torch.Generator().manual_seed(seed))[0]  # noqa: E731
        assert torch.equal(draw(5), draw(5)) and not torch.equal(draw(5), draw(6))
        mean = model(damaged, mask, sample=False)[0]
        assert torch.equal(mean, model(damaged, mask, sample=False)[0])
        model.to_latent.bias[4:] = -30.0  # a collapsed prior: every draw is the mean
        assert torch.allclose(draw(5), model(damaged, mask, sample=False)[0], atol=1e-6)
        model.to_latent.bias[4:] = saved


def test_a_standard_model_ignores_the_whole_image():
    torch.manual_seed(0)
    model = build_model(ModelParams(width=8, latent_channels=4)).eval()
    assert model.posterior is None
    image, mask = inputs()
    with torch.no_grad():
        plain = model(image * (1 - mask), mask, sample=False)
        given = model(image * (1 - mask), mask, sample=False, image=image, generative=True)
    assert len(plain) == len(given) == 3 and all(torch.equal(a, b) for a, b in zip(plain, given))


def test_the_posterior_encoder_lines_up_with_the_prior_at_odd_sizes():
    for size in (32, 37, 100):
        model = learned_model()
        image, mask = inputs(2, size)
        with torch.no_grad():
            out, q_mu, _, p_mu, _, generated = model(image * (1 - mask), mask, image=image, generative=True)
        assert q_mu.shape == p_mu.shape and out.shape == generated.shape == image.shape
    assert isinstance(learned_model().posterior, PosteriorEncoder)


def test_learned_with_the_paper_arch_is_a_one_line_error():
    with pytest.raises(ParamError) as err:
        from_dict({"model": {"arch": "paper", "prior": "learned"}})
    assert str(err.value).startswith("model.prior: 'learned' needs model.arch: inpaint") and "\n" not in str(err.value)


def test_checkpoints_record_the_prior_and_old_ones_load_as_standard():
    model = learned_model()
    state = {"model": model.state_dict(), "config": model_config(ModelParams(**LEARNED), 32)}
    assert checkpoint_prior(state) == "learned"
    loaded, _ = model_from_checkpoint(state)
    assert loaded.prior == "learned" and loaded.posterior is not None
    standard = build_model(ModelParams(width=8, latent_channels=4))
    config = model_config(ModelParams(width=8, latent_channels=4), 32)
    del config["model"]["prior"]  # a checkpoint from before the param
    old = {"model": standard.state_dict(), "config": config}
    assert checkpoint_prior(old) == "standard" and model_from_checkpoint(old)[0].posterior is None
    assert checkpoint_prior({"model": {}, "config": None}) == "standard"


@pytest.mark.parametrize(
    "train", [{"free_bits": 0.0}, {"free_bits": 0.05, "generative_weight": 0.0, "ema": 0}], ids=["default", "free-bits-no-generative-path"]
)
def test_learned_training_resumes_bitwise(data, tmp_path, train):
    params = tiny_params(model={"prior": "learned"}, train={"epochs": 3, **train})
    unbroken = train_model(params, *data, resume_path=tmp_path / "a" / "state.pt", run_id="r1")
    resume = tmp_path / "b" / "state.pt"

    def die_after_first_epoch(record):
        if record["epoch"] == 1:
            raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        train_model(params, *data, resume_path=resume, on_epoch=die_after_first_epoch, run_id="r1")
    assert load_checkpoint(resume)["epoch"] == 1
    resumed = train_model(params, *data, resume_path=resume, run_id="r1")
    assert resumed.resumed_from_epoch == 1 and resumed.history == unbroken.history
    a, b = resumed.model.state_dict(), unbroken.model.state_dict()
    assert a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)
    assert any(k.startswith("posterior.") for k in a) and resumed.state["config"]["model"]["prior"] == "learned"
    assert all(np.isfinite(r["val_loss"]) and r["train_kl"] > 0 for r in unbroken.history)
