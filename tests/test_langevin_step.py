"""langevin_step_: every backend x labelled shapes x dtypes x layouts against the PyTorch reference."""

import pytest
import torch
from conftest import skip_unless_backend

from ncsn_fast.ops import langevin_coefs, langevin_step_, langevin_step_ref, philox_normal, philox_normal_ref
from ncsn_fast.ops._backends import why_not

CPU = torch.device("cpu")
BACKENDS = ["torch", "cpu", "triton"]
SHAPES = {"minimal": (1, 1, 1, 1), "odd": (3, 3, 5, 7), "cifar": (4, 3, 32, 32), "gray_28": (2, 1, 28, 28)}
# dtypes of h: x and the update stay float32; h is only read.
DTYPES = [torch.float32, torch.float16, torch.bfloat16]



@pytest.mark.parametrize("backend", BACKENDS)
@pytest.mark.parametrize("shape", SHAPES.values(), ids=SHAPES.keys())
@pytest.mark.parametrize("dtype", DTYPES, ids=str)
@pytest.mark.parametrize("channels_last", [False, True], ids=["nchw", "nhwc"])
def test_matches_reference(backend, shape, dtype, channels_last):
    skip_unless_backend(backend)
    g = torch.Generator().manual_seed(0)
    x0 = torch.randn(shape, generator=g) * 3
    h = torch.randn(shape, generator=g).to(dtype)
    if channels_last:
        h = h.to(memory_format=torch.channels_last)
    ids = torch.arange(10, 10 + shape[0])
    coefs = langevin_coefs(step_size=0.37, score_scale=1 / 0.2)  # NCSNv2-like c = 1/sigma
    x = x0.clone()
    norms = langevin_step_(x, h, coefs, seed=1234, step=77, sample_ids=ids, with_stats=True, backend=backend)
    z = philox_normal_ref(1234, 77, ids, x0[0].numel())
    ref = langevin_step_ref(x0, h, coefs, z)
    # Noise normals agree to 1e-6 across backends; the update itself rounds a few times in float32.
    tol = coefs[2].item() * 1e-6 + 4 * torch.finfo(torch.float32).eps * (x0.abs() + 2 * 1.85 * h.float().abs()).max()
    assert (x - ref).abs().max() <= tol
    hf = h.float().reshape(shape[0], -1)
    torch.testing.assert_close(norms[:, 0], hf.norm(dim=1) * 5.0, rtol=1e-5, atol=1e-5)
    torch.testing.assert_close(norms[:, 1], z.norm(dim=1), rtol=1e-5, atol=1e-5)


@pytest.mark.parametrize("backend", BACKENDS)
def test_in_kernel_noise_is_the_stream(backend):
    """With a = 0 and b = 1 the update adds exactly the stream's z for (seed, sample, step)."""
    skip_unless_backend(backend)
    x = torch.zeros(3, 2, 6, 6)
    ids = torch.tensor([7, 2 ** 35, 0])
    langevin_step_(x, torch.randn(3, 2, 6, 6), langevin_coefs(0.0, 1.0, 1.0), seed=9, step=4, sample_ids=ids,
                   backend=backend)
    assert torch.equal(x.reshape(3, -1), philox_normal(9, 4, ids, 72, backend=backend))


@pytest.mark.parametrize("backend", BACKENDS)
def test_sample_update_independent_of_batch(backend):
    skip_unless_backend(backend)
    x0, h = torch.randn(5, 3, 4, 4), torch.randn(5, 3, 4, 4)
    coefs = langevin_coefs(0.1)
    full = x0.clone()
    langevin_step_(full, h, coefs, seed=1, step=3, sample_ids=torch.arange(5), backend=backend)
    part = x0[[3, 1]].clone()
    langevin_step_(part, h[[3, 1]], coefs, seed=1, step=3, sample_ids=torch.tensor([3, 1]), backend=backend)
    assert torch.equal(part, full[[3, 1]])


def test_seed_step_coefs_from_tensors():
    x = torch.zeros(2, 1, 2, 2)
    langevin_step_(x, torch.ones(2, 1, 2, 2), langevin_coefs(0.5), seed=torch.tensor([3]), step=torch.tensor([1]),
                   sample_ids=torch.arange(2), backend="cpu" if not why_not("cpu", CPU) else "torch")
    y = torch.zeros(2, 1, 2, 2)
    langevin_step_(y, torch.ones(2, 1, 2, 2), langevin_coefs(0.5), seed=3, step=1, sample_ids=torch.arange(2),
                   backend="torch")
    torch.testing.assert_close(x, y, rtol=0, atol=1e-6)


@pytest.mark.parametrize("backend", BACKENDS)
def test_opcheck(backend):
    skip_unless_backend(backend)
    args = (torch.randn(2, 3, 4, 4), torch.randn(2, 3, 4, 4), torch.tensor([1]), torch.tensor([2]), torch.arange(2),
            langevin_coefs(0.2), torch.zeros(2, 2), True, backend)
    torch.library.opcheck(torch.ops.ncsn_fast.langevin_step_.default, args)


def test_bad_inputs_name_the_tensor():
    x, h, ids, c = torch.zeros(2, 3), torch.zeros(2, 3), torch.arange(2), langevin_coefs(0.1)
    with pytest.raises(ValueError, match="x must be a contiguous float32"):
        langevin_step_(x.double(), h, c, seed=0, step=0, sample_ids=ids)
    with pytest.raises(ValueError, match="h must have x's shape"):
        langevin_step_(x, torch.zeros(2, 4), c, seed=0, step=0, sample_ids=ids)
    with pytest.raises(ValueError, match="sample_ids"):
        langevin_step_(x, h, c, seed=0, step=0, sample_ids=ids.int())
    with pytest.raises(ValueError, match="coefs"):
        langevin_step_(x, h, c[:2], seed=0, step=0, sample_ids=ids)
