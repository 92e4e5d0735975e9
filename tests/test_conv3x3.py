"""The conv3x3 op (Winograd F(4x4, 3x3) on the CPU) against PyTorch's convolution in float64, and the networks'
Conv2d that runs it."""

import pytest
import torch
import torch.nn.functional as F
from conftest import python_stdout, skip_unless_backend

from ncsn_fast.models.conv import Conv2d, adopt_convs, conv_add
from ncsn_fast.ops.conv3x3 import G, conv3x3, why_not_winograd, winograd_weights, winograd_weights_ref

# F(4x4, 3x3) rounds ~10x more than the direct convolution (its transforms' constants reach 8 and 1/24;
# Lavin & Gray 2016, Barabasz et al. 2020): measured up to 34 float32 eps (2^-24) of the scale below, the
# convolution of |x| and |w| (plus |bias| and |residual|), for 8 to 256 in-channels (the direct convolution:
# up to 4.5 eps). Allowed: 64 eps of it.
WINOGRAD_TOL = 64 * 2.0 ** -24


def _cl(t):
    return t.contiguous(memory_format=torch.channels_last)


def _check(x, w, b, d, r, elu=False):
    out = conv3x3(x, w, b, d, r, elu=elu, backend="cpu")
    assert out.is_contiguous(memory_format=torch.channels_last) and out.dtype == torch.float32
    ref = F.conv2d(x.double(), w.double(), None if b is None else b.double(), padding=d, dilation=d)
    scale = F.conv2d(x.double().abs(), w.double().abs(), None if b is None else b.double().abs(), padding=d,
                     dilation=d)
    if r is not None:
        ref, scale = ref + r.double(), scale + r.double().abs()
    if elu:  # 1-Lipschitz: the convolution's error passes through at most as large, plus the ELU's own ~2 ulp
        ref = F.elu(ref)
    err = (out.double() - ref).abs()
    assert (err <= WINOGRAD_TOL * scale.amax()).all(), (err.max() / scale.amax()).item()
    return out


@pytest.mark.parametrize("n,ci,h,w,co,d", [(2, 8, 7, 9, 8, 1), (1, 16, 9, 9, 24, 2), (2, 8, 11, 6, 16, 3),
                                            (1, 16, 4, 4, 32, 4), (3, 32, 8, 8, 32, 1), (1, 8, 1, 5, 8, 1)])
@pytest.mark.parametrize("bias,residual,elu", [(True, False, False), (False, True, False), (True, True, True),
                                               (True, False, True)])
def test_winograd_matches_the_convolution(n, ci, h, w, co, d, bias, residual, elu):
    """Odd sizes (partial tiles), dilations up to the image size, out-channels not a multiple of 16, bias,
    residual and ELU on and off: within the transform's rounding of PyTorch's convolution in float64."""
    skip_unless_backend("cpu")
    x = _cl(torch.randn(n, ci, h, w) * 2 + 0.5)
    wt = torch.randn(co, ci, 3, 3) / (3 * ci ** 0.5)
    b = torch.randn(co) if bias else None
    r = _cl(torch.randn(n, co, h, w)) if residual else None
    _check(x, wt, b, d, r, elu)


def test_transformed_weights_are_g_w_gt():
    """U = G w G^T computed in double and rounded once: within one float32 rounding of the float64 reference;
    packed in panels of 16 output channels, zeros past the last (24 -> 2 panels, the second half empty)."""
    skip_unless_backend("cpu")
    w = torch.randn(24, 16, 3, 3)
    u, ref = winograd_weights(w), winograd_weights_ref(w)
    assert u.shape == (36, 2, 16, 16)
    assert (u[:, 1, :, 8:] == 0).all() and (u[:, 1, :, :8] != 0).any()
    plain = torch.einsum("ai,ocij,bj->abco", G, w.double(), G).reshape(36, 16, 24)  # (36, ci, co), unpacked
    unpacked = torch.cat([ref[:, 0], ref[:, 1, :, :8]], dim=2).double()
    torch.testing.assert_close(unpacked, plain, rtol=2.0 ** -23, atol=2.0 ** -23 * plain.abs().max().item())
    torch.testing.assert_close(u, ref, rtol=2.0 ** -23, atol=2.0 ** -23 * ref.abs().max().item())


def test_large_values_and_a_residual_of_another_layout():
    """A residual handed in NCHW is read in its own layout; values near 1e4 keep their relative accuracy."""
    skip_unless_backend("cpu")
    x = _cl(torch.randn(2, 16, 12, 12) * 1e4)
    w = torch.randn(16, 16, 3, 3)
    _check(x, w, torch.randn(16), 1, torch.randn(2, 16, 12, 12) * 1e4)


def test_what_the_cpu_kernel_refuses():
    skip_unless_backend("cpu")
    w = torch.randn(8, 8, 3, 3)
    assert why_not_winograd(_cl(torch.randn(1, 8, 4, 4)), w, 1) is None
    for x, wt, why in ((torch.randn(1, 8, 4, 4), w, "channels_last"),
                       (_cl(torch.randn(1, 8, 4, 4)).bfloat16(), w, "float32"),
                       (_cl(torch.randn(1, 4, 4, 4)), torch.randn(8, 4, 3, 3), "multiples of 8"),
                       (_cl(torch.randn(1, 8, 4, 4)), torch.randn(12, 8, 3, 3), "multiples of 8"),
                       (_cl(torch.randn(1, 8, 4, 4)), torch.randn(8, 8, 5, 5), "3, 3")):
        with pytest.raises(ValueError, match=why):
            conv3x3(x, wt, backend="cpu")
    with pytest.raises(ValueError, match="residual must have shape"):
        conv3x3(_cl(torch.randn(1, 8, 4, 4)), w, residual=torch.randn(1, 8, 4, 5), backend="cpu")


def test_cpu_results_are_the_same_bits_whatever_the_blocks_and_threads():
    """The blocks of tiles and the output channels' split between threads follow the thread count (and the L2
    cache's size); what is computed per tile and channel does not: the same bits with 1 and 3 threads, on shapes
    of many blocks (the last one partial), of few tiles (channels split) and of a large U (blocks of 36)."""
    skip_unless_backend("cpu")
    code = ("import hashlib, torch; from ncsn_fast.ops.conv3x3 import conv3x3; g = torch.Generator().manual_seed(0)\n"
            "for n, ci, h, w, co, d in ((3, 16, 19, 13, 24, 1), (2, 16, 12, 12, 16, 2), (1, 64, 8, 8, 64, 1),"
            " (1, 512, 8, 8, 232, 1)):\n"
            "  x = torch.randn(n, ci, h, w, generator=g).contiguous(memory_format=torch.channels_last)\n"
            "  y = conv3x3(x, torch.randn(co, ci, 3, 3, generator=g), torch.randn(co, generator=g), d, backend='cpu')\n"
            "  print(hashlib.sha256(y.contiguous().numpy().tobytes()).hexdigest())")
    outs = {threads: python_stdout(code, OMP_NUM_THREADS=threads) for threads in ("1", "3")}
    assert len(outs["1"].split()) == 4 and len(set(outs.values())) == 1, outs


def test_conv2d_module_runs_the_op_when_fused_and_follows_its_weight():
    """Our Conv2d: PyTorch's convolution under backend 'torch' (bit for bit), the op when fused (within its
    rounding), PyTorch's again for what the op does not take (NCHW input, autograd on); a weight changed in place
    is picked up (its transformed copy redone)."""
    skip_unless_backend("cpu")
    conv = Conv2d(16, 16, 3, padding=2, dilation=2).eval()
    x = _cl(torch.randn(2, 16, 16, 16))
    r = _cl(torch.randn(2, 16, 16, 16))
    with torch.no_grad():
        plain = F.conv2d(x, conv.weight, conv.bias, padding=2, dilation=2)
        assert torch.equal(conv(x, residual=r), r + plain)  # backend 'torch' by default
        conv.backend = "auto"
        fused = conv(x, residual=r)
        assert not torch.equal(fused, r + plain)  # another algorithm: other roundings
        torch.testing.assert_close(fused, r + plain, rtol=0, atol=WINOGRAD_TOL * 20 * r.abs().max().item())
        assert torch.equal(conv(x.contiguous(), residual=r), r + F.conv2d(x.contiguous(), conv.weight, conv.bias,
                                                                          padding=2, dilation=2))
        torch.testing.assert_close(conv(x, residual=r, act=torch.nn.ELU()), F.elu(r + plain), rtol=0,
                                   atol=WINOGRAD_TOL * 20 * r.abs().max().item())
        torch.testing.assert_close(conv(x, residual=r, divisor=2 ** 0.5), (r + plain) / 2 ** 0.5, rtol=0,
                                   atol=WINOGRAD_TOL * 20 * r.abs().max().item())
        small = torch.randn(1, 16, 1, 1)  # a residual that broadcasts: PyTorch's add, as the reference
        assert torch.equal(conv(x, residual=small), small + F.conv2d(x, conv.weight, conv.bias, padding=2, dilation=2))
        conv.backend = "torch"  # PyTorch's ops in the reference's order, bit for bit
        assert torch.equal(conv(x, residual=r, divisor=2 ** 0.5), (r + plain) / 2 ** 0.5)
        conv.backend = "auto"
        conv.weight.mul_(-2)
        torch.testing.assert_close(conv(x), F.conv2d(x, conv.weight, conv.bias, padding=2, dilation=2), rtol=0,
                                   atol=1e-4)
    out = conv(x)
    assert out.requires_grad  # autograd on: PyTorch's convolution, differentiable


def test_adopted_convolutions_keep_their_names_and_parameters():
    net = torch.nn.Sequential(torch.nn.Conv2d(8, 8, 3, padding=1), torch.nn.ReLU(), torch.nn.Conv2d(8, 16, 1))
    keys = {k: v.clone() for k, v in net.state_dict().items()}
    params = [id(p) for p in net.parameters()]
    assert adopt_convs(net) == 2
    assert all(isinstance(net[i], Conv2d) for i in (0, 2))
    assert [id(p) for p in net.parameters()] == params
    assert all(torch.equal(v, keys[k]) for k, v in net.state_dict().items()) and net.state_dict().keys() == keys.keys()
    x = torch.randn(1, 8, 5, 5)
    h = torch.randn(1, 8, 5, 5)
    assert torch.equal(conv_add(net[0], h, x), x + net[0](h))
    assert torch.equal(conv_add(torch.nn.Identity(), h, x), x + h)


def test_tiles_counted_per_dilated_sub_grid_and_too_few_run_the_direct_convolution():
    """A 4x4 image is one tile, a 9x9 one at dilation 2 is 4 sub-grids of 5x5 (2x2 tiles each); below MIN_TILES
    the module keeps PyTorch's convolution (bit for bit), at it the op runs."""
    from ncsn_fast.ops.conv3x3 import MIN_TILES, winograd_tiles
    assert winograd_tiles(torch.empty(3, 8, 4, 4), 1) == 3
    assert winograd_tiles(torch.empty(1, 8, 9, 9), 2) == 4 * 4
    assert winograd_tiles(torch.empty(2, 8, 16, 12), 1) == 2 * 4 * 3
    skip_unless_backend("cpu")
    conv = Conv2d(8, 8, 3, padding=1).eval()
    conv.backend = "auto"
    few, enough = _cl(torch.randn(MIN_TILES - 1, 8, 4, 4)), _cl(torch.randn(MIN_TILES, 8, 4, 4))
    with torch.no_grad():
        assert not conv.fuses(few) and conv.fuses(enough)
        assert torch.equal(conv(few), F.conv2d(few, conv.weight, conv.bias, padding=1))
        assert not torch.equal(conv(enough), F.conv2d(enough, conv.weight, conv.bias, padding=1))


def test_the_kept_decision_follows_the_input_the_backend_and_the_weight():
    """Conv2d.fuses keeps its last answer: each thing it depends on, changed, decides again."""
    skip_unless_backend("cpu")
    conv = Conv2d(8, 8, 3, padding=1).eval()
    conv.backend = "auto"
    x = _cl(torch.randn(2, 8, 16, 16))
    with torch.no_grad():
        assert conv.fuses(x) and conv.fuses(x)
        assert not conv.fuses(x.contiguous())  # layout
        assert not conv.fuses(_cl(torch.randn(1, 8, 4, 4)))  # shape: too few tiles
        assert not conv.fuses(x.double()) and conv.fuses(x)  # dtype, then back
        conv.backend = "torch"
        assert not conv.fuses(x)
        conv.backend = "auto"
        conv.double()  # the weight's dtype
        assert not conv.fuses(x)
        conv.float()
        assert conv.fuses(x)
    assert not conv.fuses(x)  # autograd on


def test_fused_elu_is_the_elu_op_bit_for_bit():
    """The ELU in the convolution's pass is the elu op's arithmetic on vectors: the same bits, NaN and -inf too."""
    skip_unless_backend("cpu")
    from ncsn_fast.ops.elu import elu
    x = _cl(torch.randn(3, 16, 9, 11) * 3)
    x[0, 0, 0, 0], x[1, 2, 3, 4] = float("nan"), -float("inf")
    w, b = torch.randn(16, 16, 3, 3), torch.randn(16)
    fused = conv3x3(x, w, b, 1, elu=True, backend="cpu")
    assert torch.equal(fused.nan_to_num(7.0), elu(conv3x3(x, w, b, 1, backend="cpu"), backend="cpu").nan_to_num(7.0))
    assert (fused < -0.5).any() and fused.isnan().any()


def test_dilation_beyond_a_tile_runs_the_direct_convolution():
    """Dilation 4 on 8x8: each sub-grid is 2x2, a tile a quarter full (MIN_FILL): PyTorch's convolution."""
    from ncsn_fast.ops.conv3x3 import winograd_pays
    assert not winograd_pays(torch.empty(64, 8, 8, 8), 4) and winograd_pays(torch.empty(64, 8, 16, 16), 4)
    assert winograd_pays(torch.empty(8, 8, 7, 9), 1)  # partial tiles at the edge: 2/3 full
