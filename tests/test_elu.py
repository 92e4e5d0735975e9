"""elu (alpha 1) on every backend available here against F.elu."""

import pytest
import torch
import torch.nn.functional as F
from conftest import skip_unless_backend

from ncsn_fast.ops import elu


@pytest.mark.parametrize("backend", ["torch", "cpu", "triton"])
@pytest.mark.parametrize("channels_last", [False, True])
def test_elu_matches_pytorch(backend, channels_last):
    skip_unless_backend(backend)
    g = torch.Generator().manual_seed(0)
    x = torch.cat([torch.randn(2, 3, 7, 9, generator=g) * s for s in (1e-6, 1.0, 30.0)])
    x.view(-1)[:4] = torch.tensor([0.0, -0.0, float("inf"), -float("inf")])
    x.view(-1)[5] = float("nan")
    if channels_last:
        x = x.to(memory_format=torch.channels_last)
    out, ref = elu(x, backend=backend), F.elu(x)
    assert out.stride() == x.stride()
    assert torch.equal(out.isnan(), ref.isnan())
    # the polynomial expm1: ~2 ulp of |expm1(x)| + 1 ulp of 1 (csrc/instance_norm_plus.h); the Triton
    # interpreter has no libdevice and uses exp(x) - 1: also within 1 ulp of 1
    diff = (out - ref).nan_to_num(0.0).abs()
    assert (diff <= 4 * 2 ** -24 * ref.abs().nan_to_num(0.0) + 2 ** -23).all(), diff.max()
    assert torch.equal(out[x > 0], x[x > 0])  # the positive side is the identity, exactly


@pytest.mark.parametrize("backend", ["cpu", "triton"])
@pytest.mark.parametrize("dtype", [torch.float16, torch.bfloat16])
def test_elu_16_bit(backend, dtype):
    skip_unless_backend(backend)
    x = (torch.randn(4, 5, 6, 7, generator=torch.Generator().manual_seed(1)) * 3).to(dtype)
    out = elu(x, backend=backend)
    exact = F.elu(x.float())
    assert out.dtype == dtype and ((out.float() - exact).abs() <= exact.abs() * 2 ** -7 + 1e-6).all()


def test_elu_rejects_float64():
    with pytest.raises(ValueError, match="float32"):
        elu(torch.zeros(3, dtype=torch.float64))
