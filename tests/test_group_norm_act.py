"""group_norm_act: every backend x shapes x dtypes x layouts x (embedding add, SiLU) against the reference."""

import pytest
import torch
from conftest import skip_unless_backend

from ncsn_fast.ops import group_norm_act, group_norm_act_ref

BACKENDS = ["torch", "cpu", "triton"]
# (N, C, H, W, groups): one channel per group; NCSN++'s min(C // 4, 32) groups; an odd plane; many channels
SHAPES = {"per_channel": (2, 4, 3, 3, 4), "ncsnpp": (2, 16, 8, 8, 4), "odd": (3, 12, 5, 7, 3),
          "deep": (2, 256, 4, 4, 32)}
DTYPES = [torch.float32, torch.float16, torch.bfloat16]


def _inputs(shape, g, offset=3.0):
    n, c, h, w, groups = shape
    x = torch.randn(n, c, h, w, generator=g) * 2 + offset  # a mean offset, as real activations have
    weight, bias = 1 + 0.3 * torch.randn(c, generator=g), 0.3 * torch.randn(c, generator=g)
    return x, weight, bias, 0.5 * torch.randn(n, c, generator=g), groups


def _tol(x, weight, dtype):
    """Float32 arithmetic (statistics over a group, a few ulp of |x - mu| rstd |w|), then one unit of the output
    dtype at the output's scale."""
    scale = (x.double().abs().max() / x.double().std() * weight.abs().max()).item()
    return 16 * torch.finfo(torch.float32).eps * scale + 2 * torch.finfo(dtype).eps * max(scale, 1.0)


@pytest.mark.parametrize("backend", BACKENDS)
@pytest.mark.parametrize("shape", SHAPES.values(), ids=SHAPES.keys())
@pytest.mark.parametrize("dtype", DTYPES, ids=str)
@pytest.mark.parametrize("channels_last", [False, True], ids=["nchw", "nhwc"])
@pytest.mark.parametrize("with_add,silu", [(False, False), (False, True), (True, True)],
                         ids=["gn", "gn_silu", "add_gn_silu"])
def test_matches_reference(backend, shape, dtype, channels_last, with_add, silu):
    skip_unless_backend(backend)
    g = torch.Generator().manual_seed(1)
    x, weight, bias, add, groups = _inputs(shape, g)
    add = add if with_add else None
    x = x.to(dtype)
    if channels_last:
        x = x.to(memory_format=torch.channels_last)
    out = group_norm_act(x, weight, bias, groups, 1e-6, add, silu, backend=backend)
    assert out.dtype == dtype and out.shape == x.shape
    fmt = torch.channels_last if channels_last else torch.contiguous_format
    assert out.is_contiguous(memory_format=fmt)
    ref64 = group_norm_act_ref(x.double(), weight.double(), bias.double(), groups, 1e-6,
                               None if add is None else add.double(), silu)
    ref = group_norm_act_ref(x.float(), weight, bias, groups, 1e-6, add, silu).to(dtype)
    err, ref_err = (out.double() - ref64).abs().max(), (ref.double() - ref64).abs().max()
    assert err <= 2 * ref_err + _tol(x, weight, dtype)


@pytest.mark.parametrize("backend", BACKENDS)
def test_silu_over_its_whole_range(backend):
    """weight 60 spreads the pre-activations over about [-200, 200]: exp(-|y|) underflows, nothing overflows."""
    skip_unless_backend(backend)
    g = torch.Generator().manual_seed(3)
    x = torch.randn(2, 8, 16, 16, generator=g)
    weight, bias = torch.full((8,), 60.0), torch.tensor([0.0, -5.0, 5.0, -1.0, 1.0, 0.0, 2.0, -2.0])
    out = group_norm_act(x, weight, bias, 2, backend=backend)
    ref64 = group_norm_act_ref(x.double(), weight.double(), bias.double(), 2, 1e-6)
    assert torch.isfinite(out).all() and ref64.min() > -0.2785 and ref64.max() > 150
    assert (out.double() - ref64).abs().max() <= 1e-5 * ref64.abs().max()
    x[0, 0, 0, 0] = float("nan")  # a NaN spoils its group's statistics and nothing else
    out = group_norm_act(x, weight, bias, 2, backend=backend)
    assert torch.isnan(out[0, :4]).all() and torch.isfinite(out[0, 4:]).all() and torch.isfinite(out[1]).all()


@pytest.mark.parametrize("backend", BACKENDS)
def test_opcheck(backend):
    skip_unless_backend(backend)
    x = torch.randn(2, 8, 3, 3)
    torch.library.opcheck(torch.ops.ncsn_fast.group_norm_act.default,
                          (x, torch.ones(8), torch.zeros(8), torch.randn(2, 8), 2, 1e-6, True, backend))
    torch.library.opcheck(torch.ops.ncsn_fast.group_norm_act.default,
                          (x, torch.ones(8), torch.zeros(8), None, 4, 1e-6, False, backend))


def test_bad_inputs():
    x = torch.randn(2, 8, 3, 3)
    with pytest.raises(ValueError, match="do not split into 3 groups"):
        group_norm_act(x, torch.ones(8), torch.zeros(8), 3)
    with pytest.raises(ValueError, match="weight must have shape"):
        group_norm_act(x, torch.ones(4), torch.zeros(8), 2)
    with pytest.raises(ValueError, match="add must have shape"):
        group_norm_act(x, torch.ones(8), torch.zeros(8), 2, add=torch.zeros(8))
    with pytest.raises(ValueError, match="N, C, H, W"):
        group_norm_act(torch.randn(8, 3), torch.ones(8), torch.zeros(8), 2)
