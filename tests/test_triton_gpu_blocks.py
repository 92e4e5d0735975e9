"""The Triton kernels in the interpreter with the GPU's block sizes.

The other Triton tests launch few, large programs (the interpreter costs ~10 ms per program), so every loop
runs once and no mask cuts a block short. Here the launchers use the block sizes a GPU run uses, on shapes
that need several programs per axis, partial last blocks and multi-pass loops (instance norm statistics over
planes larger than a block, channel blocks that do not divide the channels).
"""

import pytest
import torch
from conftest import skip_unless_backend

from ncsn_fast.ops import (
    elu,
    instance_norm_plus,
    instance_norm_plus_ref,
    langevin_coefs,
    philox_normal,
    philox_normal_ref,
    pool5x5,
    pool5x5_ref,
)


@pytest.fixture(autouse=True)
def _gpu_blocks():
    skip_unless_backend("triton")
    from ncsn_fast.kernels import few_programs, gpu_block_sizes
    with gpu_block_sizes():
        assert not few_programs()
        yield


@pytest.mark.parametrize("channels_last", [False, True], ids=["nchw", "nhwc"])
@pytest.mark.parametrize("dtype", [torch.float32, torch.bfloat16], ids=str)
def test_langevin_row_and_noise(channels_last, dtype):
    """Annealed Langevin's row of the sampler update (x + a c h + b z; p untouched), then the stream alone."""
    from ncsn_fast.ops.sampler_update import sampler_update_
    g = torch.Generator().manual_seed(0)
    shape = (2, 3, 20, 20)  # 300 groups of 4 per sample: two programs of 256, the second partial
    x0, h = torch.randn(shape, generator=g), torch.randn(shape, generator=g).to(dtype)
    if channels_last:
        h = h.to(memory_format=torch.channels_last)
    ids, coefs = torch.tensor([4, 9]), langevin_coefs(0.2, 3.0)
    x, p = x0.clone(), torch.zeros(shape)
    sampler_update_(x, p, h, coefs, torch.ones(2, 2), seed=3, step=8, sample_ids=ids, backend="triton")
    z = philox_normal_ref(3, 8, ids, 1200).view(shape)
    ref = (x0 + coefs[1] * h.float()) + coefs[3] * z
    assert (x - ref).abs().max() <= 1e-6 + 4 * 2 ** -23 * (x0.abs() + 6 * h.float().abs()).max()
    assert not p.any()
    zz = philox_normal(3, 8, ids, 1201, backend="triton")  # not a multiple of 4
    assert (zz - philox_normal_ref(3, 8, ids, 1201)).abs().max() <= 1e-6


@pytest.mark.parametrize("channels_last", [False, True], ids=["nchw", "nhwc"])
def test_sampler_update(channels_last):
    from ncsn_fast.ops.sampler_update import sampler_update_, sampler_update_ref
    g = torch.Generator().manual_seed(2)
    shape = (2, 3, 20, 20)  # two programs of 256 groups per sample, the second partial
    x0, p0 = torch.randn(shape, generator=g), torch.randn(shape, generator=g)
    h = torch.randn(shape, generator=g).to(torch.bfloat16)
    if channels_last:
        h = h.to(memory_format=torch.channels_last)
    coefs, ids = torch.tensor([0.9, -0.37, 0.25, 0.6, 1.0, 0.8, -0.5, 0.2]), torch.tensor([4, 9])
    mult = 1 + torch.rand(2, 2, generator=g)
    x, p = x0.clone(), p0.clone()
    sampler_update_(x, p, h, coefs, mult, seed=3, step=8, sample_ids=ids, backend="triton")
    ref_x, ref_p = sampler_update_ref(x0, p0, h, coefs, mult, philox_normal_ref(3, 8, ids, 1200))
    assert (x - ref_x).abs().max() <= 1e-6 * 1.2 + 6 * 2 ** -23 * (x0.abs() + 2 * h.float().abs() + p0.abs()).max()
    assert (p - ref_p).abs().max() <= 6 * 2 ** -23 * (x0.abs() + h.float().abs() + p0.abs()).max()


@pytest.mark.parametrize("channels_last", [False, True], ids=["nchw", "nhwc"])
@pytest.mark.parametrize("cond,use_elu", [(False, True), (True, False)], ids=["in_elu", "cin"])
def test_instance_norm_plus(channels_last, cond, use_elu):
    g = torch.Generator().manual_seed(1)
    shape = (2, 40, 13, 23)  # 299 pixels: 2 passes of 256 (NCHW) or 5 of 64 (NHWC); 40 channels: blocks of 32 + 8
    x = torch.randn(shape, generator=g) * 2 + 3
    if channels_last:
        x = x.to(memory_format=torch.channels_last)
    ps = (2, 40) if cond else (40,)
    gamma, alpha, beta = (1 + 0.2 * torch.randn(ps, generator=g) for _ in range(3))
    out = instance_norm_plus(x, gamma, alpha, beta, elu=use_elu, backend="triton")
    ref = instance_norm_plus_ref(x.double(), gamma.double(), alpha.double(), beta.double(), use_elu)
    assert (out.double() - ref).abs().max() <= 1e-5 * ref.abs().max()


@pytest.mark.parametrize("channels_last", [False, True], ids=["nchw", "nhwc"])
@pytest.mark.parametrize("mode", ["max", "avg"])
def test_pool5x5_and_elu(channels_last, mode):
    g = torch.Generator().manual_seed(2)
    x = torch.randn(2, 3, 9, 31, generator=g)  # 1674 outputs: 4 programs of 512, the last partial
    if channels_last:
        x = x.to(memory_format=torch.channels_last)
    out, ref = pool5x5(x, mode, backend="triton"), pool5x5_ref(x, mode)
    if mode == "max":
        assert torch.equal(out, ref)
    else:
        assert (out - ref).abs().max() <= 8 * 2 ** -24 * ref.abs().max() + 1e-7
    e = torch.randn(3001, generator=g) * 4  # 3 programs of 1024
    assert ((elu(e, backend="triton") - torch.nn.functional.elu(e)).abs() <= 4 * 2 ** -24 * e.abs() + 2 ** -23).all()
