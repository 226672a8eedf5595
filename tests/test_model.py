import torch

from vaeinpaint.modeling.model import InpaintVAE, PaperVAE, build_model, count_parameters, kl_divergence
from vaeinpaint.params import ModelParams


def inputs(n=2, size=100):
    x = torch.rand(n, 1, size, size)
    m = torch.zeros_like(x)
    m[..., 20:60, 30:70] = 1
    return x * (1 - m), m


def paper_parameter_count(fc_width: int, latent_dim: int) -> int:
    """The study's architecture, counted layer by layer (conv + batch norm weights)."""
    conv = lambda cin, cout: cin * cout * 9 + 2 * cout  # noqa: E731  (3x3, no bias; BN scale+shift)
    channels = [1, 64, 64, 128, 128, 256, 256, 256, 512, 512, 512, 512, 512, 512, 1024]
    encoder = sum(conv(a, b) for a, b in zip(channels[:-1], channels[1:]))
    flat = 1024 * 4 * 4
    fc = (flat * fc_width + fc_width) + 2 * (fc_width * latent_dim + latent_dim)
    fc += (latent_dim * fc_width + fc_width) + (fc_width * flat + flat)
    up = lambda cin, cout: cin * cout * 9 + cout  # noqa: E731  (3x3 transposed conv with bias)
    decoder = sum(up(a, b) + 2 * b for a, b in [(1024, 512), (512, 256), (256, 128), (128, 64)]) + up(64, 1)
    return encoder + fc + decoder


def test_paper_architecture_shape_and_size():
    model = PaperVAE()  # as published: fc 16384 -> 8000 -> 1500
    assert count_parameters(model) == paper_parameter_count(8000, 1500)
    assert count_parameters(model) > 300_000_000  # ~1.3 GB of float32 weights: the study's 3.5 GB checkpoint with Adam state
    small = build_model(ModelParams(arch="paper", fc_width=256, latent_dim=64))
    assert count_parameters(small) == paper_parameter_count(256, 64)
    out, mu, logvar = small(*inputs())
    assert out.shape == (2, 1, 100, 100) and mu.shape == (2, 64) and logvar.shape == (2, 64)


def test_paper_encoder_flattens_to_16384():
    model = PaperVAE(fc_width=16, latent_dim=4)
    assert model.features(torch.rand(1, 1, 100, 100)).flatten(1).shape == (1, 16384)


def test_inpaint_model_shapes_and_range():
    model = InpaintVAE(width=8, latent_channels=4)
    for size in (100, 64, 37):
        out, mu, logvar = model(*inputs(size=size))
        assert out.shape == (2, 1, size, size)
        assert out.min() >= 0 and out.max() <= 1
    assert mu.shape[1] == 4


def test_mean_latent_is_deterministic_and_samples_vary():
    torch.manual_seed(0)
    model = InpaintVAE(width=8, latent_channels=4).eval()
    damaged, mask = inputs()
    with torch.no_grad():
        a, _, _ = model(damaged, mask, sample=False)
        b, _, _ = model(damaged, mask, sample=False)
        s1, _, _ = model(damaged, mask, sample=True, generator=torch.Generator().manual_seed(1))
        s1_again, _, _ = model(damaged, mask, sample=True, generator=torch.Generator().manual_seed(1))
        s2, _, _ = model(damaged, mask, sample=True, generator=torch.Generator().manual_seed(2))
    assert torch.equal(a, b) and torch.equal(s1, s1_again) and not torch.equal(s1, s2)


def test_kl_is_zero_at_the_prior_and_positive_elsewhere():
    zeros = torch.zeros(3, 10)
    assert torch.allclose(kl_divergence(zeros, zeros), torch.zeros(3))
    assert (kl_divergence(torch.ones(3, 10), zeros) == 5.0).all()  # 0.5 * sum(mu^2)


def test_every_head_and_context_module_keeps_the_shape_at_odd_sizes():
    for kwargs in (
        {"head": "shuffle"},
        {"head": "transpose"},
        {"context": 3, "attention": True},
        {"context": 2, "context_kind": "fourier"},
    ):
        for channels in (1, 3):
            model = InpaintVAE(width=8, latent_channels=4, channels=channels, **kwargs)
            for size in (37, 64):
                x = torch.rand(2, channels, size, size)
                out, _, _ = model(x, torch.zeros(2, 1, size, size))
                assert out.shape == x.shape and out.min() >= 0 and out.max() <= 1, (kwargs, channels, size)


def test_attention_and_dilated_blocks_are_residual():
    from vaeinpaint.modeling.model import DilatedResidual, SelfAttention

    x = torch.rand(2, 16, 13, 13)
    assert torch.equal(SelfAttention(16)(x), x)  # its output projection starts at zero: the identity
    block = DilatedResidual(16, dilation=4)
    assert block.conv.dilation == (4, 4) and block(x).shape == x.shape


def test_a_checkpoint_from_before_the_head_param_loads_with_the_transpose_head():
    from vaeinpaint.modeling.checkpoint import model_config, model_from_checkpoint

    old = build_model(ModelParams(width=8, latent_channels=4, head="transpose"))
    config = model_config(ModelParams(width=8, latent_channels=4), 32)
    for key in ("head", "context", "context_kind", "attention"):  # what a checkpoint of an earlier version records
        del config["model"][key]
    model, size = model_from_checkpoint({"model": old.state_dict(), "config": config})
    assert size == 32 and model.head_kind == "transpose"
    damaged, mask = inputs(size=32)
    with torch.no_grad():
        assert torch.equal(model(damaged, mask, sample=False)[0], old.eval()(damaged, mask, sample=False)[0])
