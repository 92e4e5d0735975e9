"""pool5x5 (the CRP 5x5 pooling) on every backend available here, against PyTorch's pooling."""

import pytest
import torch
from conftest import skip_unless_backend

from ncsn_fast.ops import pool5x5, pool5x5_ref

SHAPES = [(2, 3, 8, 8), (1, 4, 5, 7), (2, 2, 3, 2), (1, 1, 1, 1)]  # planes smaller than the window too


@pytest.mark.parametrize("backend", ["torch", "cpu", "triton"])
@pytest.mark.parametrize("mode", ["max", "avg"])
@pytest.mark.parametrize("channels_last", [False, True])
@pytest.mark.parametrize("shape", SHAPES, ids=str)
def test_pool_matches_pytorch(backend, mode, channels_last, shape):
    skip_unless_backend(backend)
    x = torch.randn(shape, generator=torch.Generator().manual_seed(sum(shape)))
    if channels_last:
        x = x.to(memory_format=torch.channels_last)
    out = pool5x5(x, mode, backend=backend)
    ref = pool5x5_ref(x.contiguous(), mode)
    assert out.is_contiguous(memory_format=torch.channels_last if channels_last else torch.contiguous_format)
    if mode == "max" or backend in ("torch", "cpu"):
        assert torch.equal(out, ref)  # max is exact; avg sums in PyTorch's CPU order
    else:
        torch.testing.assert_close(out, ref, rtol=4 * 2 ** -23, atol=4 * 2 ** -23 * ref.abs().max().item())


@pytest.mark.parametrize("backend", ["cpu", "triton"])
@pytest.mark.parametrize("dtype", [torch.float16, torch.bfloat16])
def test_pool_16_bit(backend, dtype):
    skip_unless_backend(backend)
    x = torch.randn(2, 3, 9, 6, generator=torch.Generator().manual_seed(0)).to(dtype)
    assert torch.equal(pool5x5(x, "max", backend=backend), pool5x5_ref(x, "max"))
    avg = pool5x5(x, "avg", backend=backend)  # float32 sum, one rounding to 16 bits at the end
    exact = pool5x5_ref(x.float(), "avg")
    assert avg.dtype == dtype and ((avg.float() - exact).abs() <= exact.abs() * 2 ** -7 + 1e-6).all()


@pytest.mark.parametrize("backend", ["cpu", "triton"])
def test_pool_max_nan_and_inf_as_pytorch(backend):
    skip_unless_backend(backend)
    x = torch.randn(1, 2, 9, 9, generator=torch.Generator().manual_seed(1))
    x[0, 0, 4, 4] = float("nan")
    x[0, 1, 0, 0] = float("inf")
    x[0, 1, 8, 8] = float("-inf")
    out, ref = pool5x5(x, "max", backend=backend), pool5x5_ref(x, "max")
    assert torch.equal(out.isnan(), ref.isnan()) and out.isnan().sum() == 25
    assert torch.equal(out.nan_to_num(0.0), ref.nan_to_num(0.0))


@pytest.mark.parametrize("backend", ["cpu", "triton"])
@pytest.mark.parametrize("shape", [(2, 3, 8, 8), (1, 4, 3, 5), (2, 2, 1, 1), (4, 16, 32, 32)], ids=str)
@pytest.mark.parametrize("channels_last", [False, True], ids=["nchw", "nhwc"])
def test_pool_max_bit_identical_with_many_inf_and_nan(backend, shape, channels_last):
    skip_unless_backend(backend)
    x = torch.randn(shape, generator=torch.Generator().manual_seed(0))
    x.view(-1)[:: 7] = float("inf")
    x.view(-1)[3:: 11] = -float("inf")
    x.view(-1)[5:: 13] = float("nan")
    if channels_last:
        x = x.to(memory_format=torch.channels_last)
    ours, ref = pool5x5(x, "max", backend=backend), pool5x5_ref(x, "max")
    assert torch.equal(ours.isnan(), ref.isnan())
    assert torch.equal(torch.nan_to_num(ours, nan=0.0), torch.nan_to_num(ref, nan=0.0))


def test_pool_rejects_bad_input():
    with pytest.raises(ValueError, match="mode"):
        pool5x5(torch.zeros(1, 1, 4, 4), "min")
    with pytest.raises(ValueError, match="N, C, H, W"):
        pool5x5(torch.zeros(4, 4))
    with pytest.raises(ValueError, match="float32"):
        pool5x5(torch.zeros(1, 1, 4, 4, dtype=torch.float64))
