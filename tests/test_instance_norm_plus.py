"""instance_norm_plus: every backend x labelled shapes x dtypes x layouts x (cond, elu) against the reference."""

import pytest
import torch
from conftest import skip_unless_backend

from ncsn_fast.ops import cond_instance_norm_plus, instance_norm_plus, instance_norm_plus_ref

CPU = torch.device("cpu")
BACKENDS = ["torch", "cpu", "triton"]
SHAPES = {"minimal": (1, 2, 1, 2), "odd": (3, 5, 7, 3), "ncsn_plane": (2, 16, 32, 32), "deep_plane": (2, 64, 8, 8)}
DTYPES = [torch.float32, torch.float16, torch.bfloat16]



def _params(shape, cond, g):
    n, c = shape[:2]
    ps = (n, c) if cond else (c,)
    gamma, alpha = 1 + 0.2 * torch.randn(ps, generator=g), 1 + 0.2 * torch.randn(ps, generator=g)
    return gamma, alpha, 0.2 * torch.randn(ps, generator=g)


@pytest.mark.parametrize("backend", BACKENDS)
@pytest.mark.parametrize("shape", SHAPES.values(), ids=SHAPES.keys())
@pytest.mark.parametrize("dtype", DTYPES, ids=str)
@pytest.mark.parametrize("channels_last", [False, True], ids=["nchw", "nhwc"])
@pytest.mark.parametrize("cond,elu", [(False, False), (False, True), (True, True)], ids=["in", "in_elu", "cin_elu"])
def test_matches_reference(backend, shape, dtype, channels_last, cond, elu):
    skip_unless_backend(backend)
    g = torch.Generator().manual_seed(1)
    x = (torch.randn(shape, generator=g) * 2 + 3).to(dtype)  # a mean offset, as real activations have
    if channels_last:
        x = x.to(memory_format=torch.channels_last)
    gamma, alpha, beta = _params(shape, cond, g)
    out = instance_norm_plus(x, gamma, alpha, beta, elu=elu, backend=backend)
    assert out.dtype == dtype and out.shape == x.shape
    fmt = torch.channels_last if channels_last else torch.contiguous_format
    assert out.is_contiguous(memory_format=fmt)
    ref64 = instance_norm_plus_ref(x.double(), gamma.double(), alpha.double(), beta.double(), elu)
    ref = instance_norm_plus_ref(x.float(), gamma, alpha, beta, elu).to(dtype)
    assert (out.double() - ref64).abs().max() <= 2 * (ref.double() - ref64).abs().max() + _atol(x, gamma, alpha, dtype)


def _atol(x, gamma, alpha, dtype):
    """What float32 arithmetic cannot avoid, plus one unit of the output dtype.

    m_nc standardises the plane means across channels, so a float32 rounding of mu (a few ulp of |mu|)
    is amplified by 1 / std_c(mu) and scaled by |gamma alpha|; the rest is an ulp of the output.
    """
    mu = x.double().mean(dim=(2, 3))
    cond = (mu.abs().amax(1) / mu.std(dim=1)).max()
    f32 = torch.finfo(torch.float32).eps
    scale = (x.double().std() * gamma.abs().max() + gamma.abs().max() * alpha.abs().max() * 3).item()
    return 8 * f32 * cond * (gamma * alpha).abs().max() + 2 * torch.finfo(dtype).eps * scale


@pytest.mark.parametrize("backend", BACKENDS)
def test_cond_picks_rows_by_label(backend):
    skip_unless_backend(backend)
    g = torch.Generator().manual_seed(2)
    c = 6
    embed = torch.cat([1 + 0.2 * torch.randn(10, 2 * c, generator=g), 0.2 * torch.randn(10, c, generator=g)], 1)
    x, y = torch.randn(3, c, 5, 5, generator=g), torch.tensor([0, 9, 4])
    out = cond_instance_norm_plus(x, embed, y, elu=True, backend=backend)
    gamma, alpha, beta = embed[y].chunk(3, dim=-1)
    torch.testing.assert_close(out, instance_norm_plus_ref(x, gamma, alpha, beta, elu=True), rtol=1e-5, atol=1e-5)


@pytest.mark.parametrize("backend", BACKENDS)
def test_opcheck(backend):
    skip_unless_backend(backend)
    x = torch.randn(2, 4, 3, 3)
    torch.library.opcheck(torch.ops.ncsn_fast.instance_norm_plus.default,
                          (x, torch.ones(4), torch.ones(4), torch.zeros(4), True, backend))


def test_bad_inputs():
    x = torch.randn(2, 4, 3, 3)
    with pytest.raises(ValueError, match="gamma must have shape"):
        instance_norm_plus(x, torch.ones(5), torch.ones(4), torch.zeros(4))
    with pytest.raises(ValueError, match="more than one pixel"):
        instance_norm_plus(torch.randn(2, 4, 1, 1), torch.ones(4), torch.ones(4), torch.zeros(4))
    with pytest.raises(ValueError, match="N, C, H, W"):
        instance_norm_plus(torch.randn(4, 3), torch.ones(4), torch.ones(4), torch.zeros(4))


@pytest.mark.parametrize("backend", BACKENDS)
def test_elu_over_its_whole_range(backend):
    """gamma = 30 spreads the pre-activations over about [-90, 90]: the ELU's exp saturates and underflows."""
    skip_unless_backend(backend)
    g = torch.Generator().manual_seed(3)
    x = torch.randn(2, 4, 64, 64, generator=g)
    gamma, alpha, beta = torch.full((4,), 30.0), torch.full((4,), 0.5), torch.tensor([0.0, -5.0, 5.0, -1.0])
    out = instance_norm_plus(x, gamma, alpha, beta, elu=True, backend=backend)
    ref64 = instance_norm_plus_ref(x.double(), gamma.double(), alpha.double(), beta.double(), elu=True)
    ref = instance_norm_plus_ref(x, gamma, alpha, beta, elu=True)
    assert torch.isfinite(out).all() and out.min() >= -1 and ref64.min() < -0.999999
    assert (out.double() - ref64).abs().max() <= 2 * (ref.double() - ref64).abs().max() + _atol(x, gamma, alpha,
                                                                                                  torch.float32)
