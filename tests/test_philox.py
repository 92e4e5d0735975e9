"""The noise stream: Philox4x32-10 known answers, bit-identical words across backends, batch independence."""

import pytest
import torch
from conftest import skip_unless_backend

from ncsn_fast.ops import philox_noise, philox_normal, philox_normal_ref, philox_words_ref
from ncsn_fast.ops._backends import why_not
from ncsn_fast.ops.philox import philox4x32

CPU = torch.device("cpu")
BACKENDS = [pytest.param(b, marks=pytest.mark.skipif(why_not(b, CPU) is not None, reason=str(why_not(b, CPU))))
            for b in ("cpu", "triton")]
# Labelled shapes: (samples, elements per sample)
SHAPES = {"minimal": (1, 1), "odd": (3, 7 * 5), "cifar_plane": (2, 3 * 32 * 32), "lsun_plane": (1, 3 * 64 * 64)}


@pytest.mark.parametrize("ctr,key,expected", [
    ((0, 0, 0, 0), (0, 0), (0x6627E8D5, 0xE169C58D, 0xBC57AC4C, 0x9B00DBD8)),
    ((0xFFFFFFFF,) * 4, (0xFFFFFFFF,) * 2, (0x408F276D, 0x41C83B0E, 0xA20BC7C6, 0x6D5451FD)),
    ((0x243F6A88, 0x85A308D3, 0x13198A2E, 0x03707344), (0xA4093822, 0x299F31D0),
     (0xD16CFE09, 0x94FDCCEB, 0x5001E420, 0x24126EA1)),
])
def test_philox_known_answers(ctr, key, expected):
    """Random123's published test vectors for philox4x32-10."""
    out = philox4x32(*(torch.tensor([c], dtype=torch.int64) for c in ctr), *key)
    assert tuple(int(w) for w in out) == expected


def _ids(n):
    return torch.tensor([0, 5, 2 ** 33 + 7, 2 ** 40 - 1, 12, 99][:n], dtype=torch.int64) if n <= 6 else torch.arange(n)


@pytest.mark.parametrize("backend", BACKENDS)
@pytest.mark.parametrize("shape", SHAPES.values(), ids=SHAPES.keys())
def test_words_bit_identical(backend, shape):
    n, numel = shape
    ids, seed, step = _ids(n), 2 ** 63 + 12345, 2 ** 31 + 3
    ref = philox_words_ref(seed, step, ids, numel)
    if backend == "cpu":
        from ncsn_fast.ops._backends import ext
        out = torch.empty(n, numel, dtype=torch.int32)
        ext().philox_words_cpu(out.data_ptr(), ids.data_ptr(), n, numel, seed, step)
        out = out.to(torch.int64) & 0xFFFFFFFF
    else:
        from ncsn_fast.kernels.philox import philox_triton
        out = torch.empty(n, numel, dtype=torch.int64)
        philox_triton(out, ids, torch.tensor([seed - 2 ** 64]), torch.tensor([step]), words=True)
    assert torch.equal(out, ref)


@pytest.mark.parametrize("backend", BACKENDS)
@pytest.mark.parametrize("shape", SHAPES.values(), ids=SHAPES.keys())
def test_normals_match_reference(backend, shape):
    n, numel = shape
    ids = _ids(n)
    z = philox_normal(torch.tensor([7]), torch.tensor([123]), ids, numel, backend=backend)
    ref = philox_normal_ref(7, 123, ids, numel)
    assert z.dtype == torch.float32 and z.shape == (n, numel)
    # Same words; float32 log/sqrt/cos/sin of different libraries differ by an ulp or two (|z| < 6).
    assert (z - ref).abs().max() <= 1e-6


def test_normals_are_standard_normal():
    z = philox_normal_ref(0, 0, torch.arange(64), 3 * 32 * 32).flatten().double()
    n = z.numel()  # 196,608 draws: mean within 5 standard errors, var and kurtosis close
    assert abs(z.mean()) < 5 / n ** 0.5
    assert abs(z.var() - 1) < 0.02
    assert abs((z ** 4).mean() - 3) < 0.1
    assert abs(torch.corrcoef(torch.stack([z[:-1], z[1:]]))[0, 1]) < 0.01  # neighbours uncorrelated


def test_sample_noise_independent_of_batch():
    """A sample's noise depends only on (seed, its global index, step): alone or in any batch."""
    big = philox_normal(3, 9, torch.arange(10), 48)
    for ids in (torch.tensor([4]), torch.tensor([7, 4, 1]), torch.arange(3, 6)):
        assert torch.equal(philox_normal(3, 9, ids, 48), big[ids])
    assert not torch.equal(philox_normal(3, 10, torch.arange(10), 48), big)  # other step: other noise
    assert not torch.equal(philox_normal(4, 9, torch.arange(10), 48), big)  # other seed: other noise


def test_seed_and_step_from_tensors_and_64_bit_indices():
    ids = torch.tensor([2 ** 32 + 1, 1], dtype=torch.int64)  # differ only in the high word
    z = philox_normal(torch.tensor([5]), torch.tensor([0]), ids, 16)
    assert not torch.equal(z[0], z[1])
    assert torch.equal(z, philox_normal(5, 0, ids, 16))


@pytest.mark.parametrize("backend", ["torch", "cpu", "triton"])
def test_opcheck(backend):
    skip_unless_backend(backend)
    torch.library.opcheck(torch.ops.ncsn_fast.philox_normal.default,
                          (torch.tensor([1]), torch.tensor([2]), torch.arange(3), 40, backend))


def test_noise_sampler_shapes_like_x():
    draw = philox_noise(11, torch.tensor([3, 8]))
    x = torch.zeros(2, 3, 4, 4)
    z = draw(5, x)
    assert z.shape == x.shape
    assert (z.reshape(2, -1) - philox_normal_ref(11, 5, torch.tensor([3, 8]), 48)).abs().max() <= 1e-6
    with pytest.raises(ValueError, match="sample ids"):
        draw(0, torch.zeros(3, 3, 4, 4))


def test_auto_never_picks_the_interpreter():
    from ncsn_fast.ops._backends import choose
    assert choose("auto", CPU) in ("cpu", "torch")
    assert "interpreter" in __import__("ncsn_fast.ops", fromlist=["explain"]).explain(CPU)


def test_bad_arguments():
    with pytest.raises(ValueError, match="1-D int64"):
        philox_normal(0, 0, torch.arange(3).float(), 4)
    with pytest.raises(ValueError, match="unknown backend|not supported"):
        philox_normal(0, 0, torch.arange(3), 4, backend="fortran")


def test_cpu_block_normals_over_many_draws_and_the_extremes():
    """The CPU kernels draw normals a block at a time with polynomial log / sin / cos (csrc/normals_cpu.h): over
    196,608 draws (every quadrant of theta, u from ~2^-24 to 1) they stay within 1e-6 of the reference, whose
    float32 library functions they round to within an ulp; sizes that are not a multiple of the block too."""
    skip_unless_backend("cpu")
    ids = torch.arange(64)
    z = philox_normal(3, 9, ids, 3 * 32 * 32, backend="cpu")
    ref = philox_normal_ref(3, 9, ids, 3 * 32 * 32)
    assert (z - ref).abs().max() <= 1e-6
    assert ((z - ref).abs() <= 2 ** -21 * ref.abs().clamp_min(1.0)).float().mean() > 0.999  # mostly <= 1 ulp
    odd = philox_normal(3, 9, ids[:3], 131, backend="cpu")  # one block and a partial one
    assert torch.equal(odd, z[:3, :131])
    isa = __import__("ncsn_fast._C", fromlist=["x"]).normals_isa()
    assert isa in ("avx512", "avx2", "baseline")
