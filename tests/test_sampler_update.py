"""sampler_update_: every backend x labelled shapes x dtypes x layouts against the PyTorch reference; annealed
Langevin's row of it against the Langevin update it replaces, bit for bit."""

import pytest
import torch
from conftest import skip_unless_backend

from ncsn_fast.ops import langevin_coefs, philox_normal, philox_normal_ref
from ncsn_fast.ops._backends import why_not
from ncsn_fast.ops.sampler_update import sampler_update_, sampler_update_ref

BACKENDS = ["torch", "cpu", "triton"]
SHAPES = {"minimal": (1, 1, 1, 1), "odd": (3, 3, 5, 7), "cifar": (4, 3, 32, 32), "gray_16": (2, 1, 16, 16)}
DTYPES = [torch.float32, torch.float16, torch.bfloat16]
# A row with every coefficient in use, values of the size the samplers give them.
COEFS = torch.tensor([0.9, -0.37, 0.25, 0.6, 1.0, 0.8, -0.5, 0.2], dtype=torch.float32)


def _inputs(shape, dtype, channels_last, seed=0):
    g = torch.Generator().manual_seed(seed)
    x0, p0 = torch.randn(shape, generator=g) * 3, torch.randn(shape, generator=g)
    h = torch.randn(shape, generator=g).to(dtype)
    if channels_last:
        h = h.to(memory_format=torch.channels_last)
    mult = 0.5 + torch.rand(shape[0], 2, generator=g)
    return x0, p0, h, mult


def _tol(x0, p0, h, coefs, mult):
    """Four float32 roundings of terms at most this large, plus the 1e-6 on the normals."""
    big = (x0.abs() + h.float().abs() * mult.max() + p0.abs()).max() * coefs.abs().max()
    return coefs[3].abs() * mult[:, 1].max() * 1e-6 + 6 * torch.finfo(torch.float32).eps * big


@pytest.mark.parametrize("backend", BACKENDS)
@pytest.mark.parametrize("shape", SHAPES.values(), ids=SHAPES.keys())
@pytest.mark.parametrize("dtype", DTYPES, ids=str)
@pytest.mark.parametrize("channels_last", [False, True], ids=["nchw", "nhwc"])
def test_matches_reference(backend, shape, dtype, channels_last):
    skip_unless_backend(backend)
    x0, p0, h, mult = _inputs(shape, dtype, channels_last)
    ids = torch.arange(10, 10 + shape[0])
    x, p = x0.clone(), p0.clone()
    sampler_update_(x, p, h, COEFS, mult, seed=1234, step=77, sample_ids=ids, backend=backend)
    z = philox_normal_ref(1234, 77, ids, x0[0].numel())
    ref_x, ref_p = sampler_update_ref(x0, p0, h, COEFS, mult, z)
    tol = _tol(x0, p0, h, COEFS, mult)
    assert (x - ref_x).abs().max() <= tol
    assert (p - ref_p).abs().max() <= tol


def test_reference_formula():
    """The reference itself, element by element against the docstring's formula in float64."""
    x0, p0, h, mult = _inputs((2, 1, 2, 3), torch.float32, False, seed=3)
    z = torch.randn(2, 6)
    x, p = sampler_update_ref(x0, p0, h, COEFS, mult, z)
    c = COEFS.double()
    for n in range(2):
        xn, pn, hn, zn = x0[n].double().flatten(), p0[n].double().flatten(), h[n].double().flatten(), z[n].double()
        want_x = c[0] * xn + c[1] * mult[n, 0] * hn + c[2] * pn + c[3] * mult[n, 1] * zn
        want_p = c[4] * xn + c[5] * hn + c[6] * pn
        torch.testing.assert_close(x[n].double().flatten(), want_x, rtol=1e-6, atol=1e-6)
        torch.testing.assert_close(p[n].double().flatten(), want_p, rtol=1e-6, atol=1e-6)


@pytest.mark.parametrize("backend", BACKENDS)
def test_noise_only_row_adds_the_stream(backend):
    """a = (1, 0, 0, 1): x gains exactly the stream's z for (seed, sample, step); p = (0, 0, 1) keeps p."""
    skip_unless_backend(backend)
    x, p = torch.zeros(3, 2, 6, 6), torch.randn(3, 2, 6, 6)
    p0 = p.clone()
    ids = torch.tensor([7, 2 ** 35, 0])
    coefs = torch.tensor([1, 0, 0, 1, 0, 0, 1, 1], dtype=torch.float32)
    sampler_update_(x, p, torch.randn(3, 2, 6, 6), coefs, torch.ones(3, 2), seed=9, step=4, sample_ids=ids,
                    backend=backend)
    assert torch.equal(x.reshape(3, -1), philox_normal(9, 4, ids, 72, backend=backend))
    assert torch.equal(p, p0)


@pytest.mark.parametrize("backend", BACKENDS)
def test_per_sample_multipliers_and_batch_independence(backend):
    """A sample's update depends on its own multipliers and index only: batch of 5 == its rows run alone."""
    skip_unless_backend(backend)
    x0, p0, h, mult = _inputs((5, 3, 4, 4), torch.float32, False, seed=5)
    full_x, full_p = x0.clone(), p0.clone()
    sampler_update_(full_x, full_p, h, COEFS, mult, seed=1, step=3, sample_ids=torch.arange(5), backend=backend)
    for i in (0, 3):
        xi, pi = x0[i:i + 1].clone(), p0[i:i + 1].clone()
        sampler_update_(xi, pi, h[i:i + 1], COEFS, mult[i:i + 1], seed=1, step=3, sample_ids=torch.tensor([i]),
                        backend=backend)
        assert torch.equal(xi[0], full_x[i]) and torch.equal(pi[0], full_p[i])


def test_bad_arguments():
    x, p, h = torch.zeros(2, 3), torch.zeros(2, 3), torch.zeros(2, 3)
    ids, mult = torch.arange(2), torch.ones(2, 2)
    with pytest.raises(ValueError, match="coefs"):
        sampler_update_(x, p, h, torch.zeros(3), mult, seed=0, step=0, sample_ids=ids)
    with pytest.raises(ValueError, match="mult"):
        sampler_update_(x, p, h, COEFS, torch.ones(2), seed=0, step=0, sample_ids=ids)
    with pytest.raises(ValueError, match="p and h"):
        sampler_update_(x, torch.zeros(2, 4), h, COEFS, mult, seed=0, step=0, sample_ids=ids)
    with pytest.raises(ValueError, match="contiguous float32"):
        sampler_update_(x.double(), p, h, COEFS, mult, seed=0, step=0, sample_ids=ids)


def test_opcheck():
    x0, p0, h, mult = _inputs((2, 3, 4, 4), torch.float32, False)
    from ncsn_fast.ops.sampler_update import _sampler_update_op
    args = (x0.clone(), p0.clone(), h, torch.tensor([3]), torch.tensor([1]), torch.arange(2), COEFS, mult, "cpu")
    torch.library.opcheck(_sampler_update_op.op, args)


@pytest.mark.parametrize("backend", ["torch", "cpu"])
def test_writes_in_place_are_seen_by_autograd(backend):
    """A plain eager call skips the dispatcher, but bumps x's and p's version counters as it would: a tensor
    saved for a backward and then updated makes the backward refuse instead of using the new values."""
    skip_unless_backend(backend)
    x, p, h, mult = _inputs((2, 3, 4, 4), torch.float32, False)
    w = torch.ones_like(x, requires_grad=True)
    loss = (w * x).sum() + (w * p).sum()  # saves x and p for w's gradient
    before = x._version, p._version
    with torch.no_grad():
        sampler_update_(x, p, h, COEFS, mult, seed=3, step=1, sample_ids=torch.arange(2), backend=backend)
    assert x._version > before[0] and p._version > before[1]
    with pytest.raises(RuntimeError, match="modified by an inplace operation"):
        loss.backward()


@pytest.mark.parametrize("backend", BACKENDS)
@pytest.mark.parametrize("shape", SHAPES.values(), ids=SHAPES.keys())
@pytest.mark.parametrize("dtype", DTYPES, ids=str)
@pytest.mark.parametrize("channels_last", [False, True], ids=["nchw", "nhwc"])
def test_langevin_row_is_the_langevin_update(backend, shape, dtype, channels_last):
    """Annealed Langevin's row {1, a c, 0, b, 0, 0, 0, c}: x + (a c) h + b z in float32, in that order, bit for bit
    (on the CPU backends: no FMA contraction), with the stream's z; p, all its coefficients zero, stays zero."""
    skip_unless_backend(backend)
    x0, _, h, _ = _inputs(shape, dtype, channels_last)
    ids = torch.arange(10, 10 + shape[0])
    coefs = langevin_coefs(step_size=0.37, score_scale=1 / 0.2)  # NCSNv2-like c = 1/sigma
    a, c = torch.tensor(0.37), torch.tensor(1 / 0.2)
    assert coefs[1] == a * c and coefs[3] == torch.tensor((2 * 0.37) ** 0.5)  # a c rounded as float32 arithmetic
    x, p = x0.clone(), torch.zeros(shape)
    sampler_update_(x, p, h, coefs, torch.ones(shape[0], 2), seed=1234, step=77, sample_ids=ids, backend=backend)
    z = philox_normal(1234, 77, ids, x0[0].numel(), backend=backend).view(shape)
    assert torch.equal(x, (x0 + coefs[1] * h.float()) + coefs[3] * z)
    assert not p.any()


@pytest.mark.parametrize("backend", BACKENDS)
def test_update_independent_of_batch(backend):
    skip_unless_backend(backend)
    x0, h = torch.randn(5, 3, 4, 4), torch.randn(5, 3, 4, 4)
    coefs = langevin_coefs(0.1)
    full = x0.clone()
    sampler_update_(full, torch.zeros_like(x0), h, coefs, torch.ones(5, 2), seed=1, step=3, sample_ids=torch.arange(5),
                    backend=backend)
    part = x0[[3, 1]].clone()
    sampler_update_(part, torch.zeros_like(part), h[[3, 1]], coefs, torch.ones(2, 2), seed=1, step=3,
                    sample_ids=torch.tensor([3, 1]), backend=backend)
    assert torch.equal(part, full[[3, 1]])


def test_seed_and_step_from_tensors():
    backend = "cpu" if not why_not("cpu", torch.device("cpu")) else "torch"
    outs = []
    for seed, step in ((torch.tensor([3]), torch.tensor([1])), (3, 1)):
        x = torch.zeros(2, 1, 2, 2)
        sampler_update_(x, torch.zeros_like(x), torch.ones(2, 1, 2, 2), langevin_coefs(0.5), torch.ones(2, 2),
                        seed=seed, step=step, sample_ids=torch.arange(2), backend=backend)
        outs.append(x)
    assert torch.equal(*outs)


@pytest.mark.parametrize("backend", BACKENDS)
def test_a_row_that_keeps_p_neither_reads_nor_writes_it(backend):
    """(p_x, p_h, p_p) = (0, 0, 1) with a_p = 0: p is not read (NaN there does not reach x) nor written (its bits
    stay); with a_p != 0 it is read."""
    skip_unless_backend(backend)
    x0, h = torch.randn(2, 3, 4, 4), torch.randn(2, 3, 4, 4)
    p = torch.full_like(x0, float("nan"))
    x, ids, ones = x0.clone(), torch.arange(2), torch.ones(2, 2)
    sampler_update_(x, p, h, langevin_coefs(0.1), ones, seed=1, step=2, sample_ids=ids, backend=backend)
    assert torch.isfinite(x).all() and p.isnan().all()
    reads = torch.tensor([1.0, 0.1, 0.5, 0.0, 0.0, 0.0, 1.0, 1.0])
    sampler_update_(x, p, h, reads, ones, seed=1, step=2, sample_ids=ids, backend=backend)
    assert x.isnan().all() and p.isnan().all()
