"""NCSN++ with its fused ops (group_norm_act, attention through scaled_dot_product_attention, 1x1 convolutions,
FIR resampling as strided convolutions): the three fixture networks give the original's outputs on every CPU
backend, in both layouts, and in bfloat16 within its precision."""

import copy

import pytest
import torch
from conftest import FIXTURES, skip_unless_backend

from ncsn_fast import load_checkpoint
from ncsn_fast.models import set_backend
from ncsn_fast.models.ncsnpp_layers import fir_kernel, upfirdn2d

NPP = FIXTURES / "ncsnpp"
VARIANTS = ["ncsnpp_cifar10_cont_nf8", "ncsnpp_cifar10_discrete_nf8", "ncsnpp_church_nf8_img64"]


def _case(variant):
    model, _ = load_checkpoint(NPP / f"{variant}_checkpoint.pth", NPP / f"{variant}_config.json")
    io = torch.load(NPP / f"{variant}_model_io.pt", weights_only=True)
    want = io["float64_output"]["out_with_float32_sigmas_buffer"] if "discrete" in variant else io["out"]
    return model, io["x"], io["labels"], want


# Every variant on each backend in both layouts, but the 64x64 network in the Triton interpreter (~23 s a run) only
# channels_last, the fast path's layout (NCHW runs there on the other variants).
FUSED_CASES = [pytest.param(v, b, cl, id=f"{'nhwc' if cl else 'nchw'}-{b}-{v}") for v in VARIANTS
               for b in ("cpu", "triton") for cl in (False, True) if not (b == "triton" and "church" in v and not cl)]


@pytest.mark.parametrize("variant,backend,channels_last", FUSED_CASES)
def test_fused_network_gives_the_original_outputs(variant, backend, channels_last):
    skip_unless_backend(backend)
    model, x, labels, want = _case(variant)
    fused = set_backend(copy.deepcopy(model), backend)
    if channels_last:
        fused, x = fused.to(memory_format=torch.channels_last), x.to(memory_format=torch.channels_last)
    with torch.no_grad():
        out = fused(x, labels)
    assert (out - want).abs().max() <= 1e-5 * want.abs().max()  # the tolerance of the unfused loads
    with torch.enable_grad():  # under autograd the modules run PyTorch's code, as the original
        plain = fused(x, labels).detach()
    if channels_last:  # PyTorch's own channels_last kernels round differently
        assert (plain - want).abs().max() <= 1e-5 * want.abs().max()
    else:
        with torch.no_grad():
            assert torch.equal(plain, model(x, labels))


@pytest.mark.parametrize("variant", VARIANTS)
def test_fused_bfloat16_within_its_precision(variant):
    """bf16 weights and activations (8 bits of mantissa) through ~20 layers: a few percent of the output's scale,
    the same as PyTorch's own ops in bf16."""
    from ncsn_fast.models.fast_copy import fast_copy
    model, x, labels, want = _case(variant)
    fused = fast_copy(model, "cpu", torch.bfloat16, channels_last=True, backend="cpu")
    plain = fast_copy(model, "cpu", torch.bfloat16, channels_last=False, backend="torch")
    assert fused.sigmas.dtype == torch.float64 and all(p.dtype == torch.bfloat16 for n, p in
                                                       fused.named_parameters() if not n.endswith(".W"))
    with torch.no_grad():
        out = fused(x.to(torch.bfloat16).to(memory_format=torch.channels_last), labels).float()
        base = plain(x.to(torch.bfloat16), labels).float()
    err, base_err = (out - want).abs().max(), (base - want).abs().max()
    assert base_err <= 0.05 * want.abs().max()  # the Fourier W kept in float32: rounded to bf16, 0.28
    assert err <= 2 * base_err


@pytest.mark.parametrize("k", [(1, 3, 3, 1), (1, 2, 5, 1)], ids=["published", "asymmetric"])
def test_fir_resampling_as_convolutions_equals_upfirdn2d(k):
    from ncsn_fast.models.ncsnpp_layers import downsample_2d, upsample_2d
    x = torch.randn(2, 3, 8, 8, dtype=torch.float64)
    p = len(k) - 2
    up = upfirdn2d(x, fir_kernel(k, 4).double(), up=2, pad=((p + 1) // 2 + 1, p // 2))
    down = upfirdn2d(x, fir_kernel(k).double(), down=2, pad=((p + 1) // 2, p // 2))
    torch.testing.assert_close(upsample_2d(x, k), up, rtol=0, atol=1e-14)
    torch.testing.assert_close(downsample_2d(x, k), down, rtol=0, atol=1e-14)


@pytest.mark.parametrize("variant", VARIANTS)
def test_a_forward_copies_nothing_from_the_host_after_the_first(variant, monkeypatch):
    """What makes the forward capturable in a CUDA graph: after a first (warm-up) call, nothing is built on the
    host and moved over (the FIR filters are made once per device and dtype)."""
    import ncsn_fast.models.ncsnpp_layers as layers
    from ncsn_fast.models.fast_copy import fast_copy
    model, x, labels, _ = _case(variant)
    fused = fast_copy(model, "cpu", torch.float32, True, "cpu")
    with torch.no_grad():
        fused(x, labels), model(x, labels)

        def refuse(*args, **kwargs):
            raise AssertionError("a host tensor was made inside the forward")
        monkeypatch.setattr(layers, "fir_kernel", refuse)
        monkeypatch.setattr(torch, "from_numpy", refuse)
        fused(x, labels), model(x, labels)


@pytest.mark.parametrize("variant", ["ncsnpp_cifar10_cont_nf8", "ncsnpp_cifar10_discrete_nf8"])
@pytest.mark.parametrize("name", ["pc", "heun"])
def test_device_state_loop_equals_fused_loop(variant, name):
    """The steps a CUDA graph holds (GraphedProgram uncaptured: sigma and the level read from the device-side
    table) on the fused NCSN++ == the fused loop, bit for bit, a second run included."""
    from ncsn_fast.config import ScoreSdeConfig
    from ncsn_fast.models.fast_copy import fast_copy
    from ncsn_fast.sampling import Denoiser, SamplerSettings, plan
    from ncsn_fast.sampling.table import GraphedProgram, run_program
    model, _, _, _ = _case(variant)
    fast = fast_copy(model, "cpu", torch.float32, True, "cpu")
    den = Denoiser.from_ncsnpp(fast, torch.float32, True)
    cfg = ScoreSdeConfig(model.config)
    p = plan(SamplerSettings(name, steps=4), den, cfg)
    ids = torch.tensor([3, 0, 7])
    x0 = p.program.initial_state(den, 1, ids, cfg.image_shape, "cpu")
    want = run_program(p.program, den, x0, seed=1, sample_ids=ids, backend="cpu")
    loop = GraphedProgram(den, 3, cfg.image_shape, "cpu", backend="cpu", steps_per_graph=3, capture=False)
    assert torch.equal(loop(p.program, x0, seed=1, sample_ids=ids), want)
    assert torch.equal(loop(p.program, x0, seed=1, sample_ids=ids), want) and torch.isfinite(want).all()
