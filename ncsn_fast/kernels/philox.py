"""Triton implementation of the noise stream (see ncsn_fast/ops/philox.py for the definition).

Each program draws BLOCK_Q groups of 4 elements of one sample: one Philox4x32-10 call per group,
Box-Muller on its word pairs. Seed and step are read from device memory, so a captured CUDA graph
draws fresh noise when they are updated between replays.
"""

import triton
import triton.language as tl

from . import INTERPRET, few_programs

# Globals read by compiled kernels must be tl.constexpr instances (an annotation is not enough: the
# interpreter accepts it, the GPU compiler does not; tests/triton_cuda_compile.py checks the compiled path).
PHILOX_M0 = tl.constexpr(0xD2511F53)
PHILOX_M1 = tl.constexpr(0xCD9E8D57)
PHILOX_W0 = tl.constexpr(0x9E3779B9)
PHILOX_W1 = tl.constexpr(0xBB67AE85)

if INTERPRET:  # module-level aliases of tl.* are not patched by the interpreter: wrap them
    @triton.jit
    def _log(x):
        return tl.log(x)

    @triton.jit
    def _cos(x):
        return tl.cos(x)

    @triton.jit
    def _sin(x):
        return tl.sin(x)
else:  # accurate device functions: the default lowering of cos/sin may use fast approximations
    from triton.language.extra import libdevice

    _log, _cos, _sin = libdevice.log, libdevice.cos, libdevice.sin


@triton.jit
def philox4x32_10(c0, c1, c2, c3, k0, k1):
    for _ in tl.static_range(10):
        _c0, _c2 = c0, c2
        c0 = tl.umulhi(PHILOX_M1, _c2) ^ c1 ^ k0
        c2 = tl.umulhi(PHILOX_M0, _c0) ^ c3 ^ k1
        c1 = PHILOX_M1 * _c2
        c3 = PHILOX_M0 * _c0
        k0 = k0 + PHILOX_W0
        k1 = k1 + PHILOX_W1
    return c0, c1, c2, c3


@triton.jit
def noise_words(seed, sample, step, q):
    """The 4 words of groups q (uint32 tensor) of one sample; seed/sample int64, step int64."""
    k0 = (seed & 0xFFFFFFFF).to(tl.uint32)
    k1 = ((seed >> 32) & 0xFFFFFFFF).to(tl.uint32)
    c1 = (sample & 0xFFFFFFFF).to(tl.uint32) + tl.zeros_like(q)
    c2 = ((sample >> 32) & 0xFFFFFFFF).to(tl.uint32) + tl.zeros_like(q)
    c3 = (step & 0xFFFFFFFF).to(tl.uint32) + tl.zeros_like(q)
    return philox4x32_10(q, c1, c2, c3, k0, k1)


@triton.jit
def word_to_uniform(w):
    return ((w >> 8).to(tl.float32) + 0.5) * (1.0 / 16777216.0)


@triton.jit
def box_muller(wa, wb):
    r = tl.sqrt(-2.0 * _log(word_to_uniform(wa)))
    theta = word_to_uniform(wb) * 6.283185307179586
    return r * _cos(theta), r * _sin(theta)


@triton.jit
def noise4(seed, sample, step, q):
    """Four normals (z0, z1, z2, z3) for elements 4q .. 4q+3."""
    w0, w1, w2, w3 = noise_words(seed, sample, step, q)
    z0, z1 = box_muller(w0, w1)
    z2, z3 = box_muller(w2, w3)
    return z0, z1, z2, z3


@triton.jit
def stream_position(IDS, SEED, STEP, BLOCK_Q: tl.constexpr):
    """This program's sample row and groups q, and the stream's seed, sample and step from device memory."""
    row = tl.program_id(0)
    q = tl.program_id(1) * BLOCK_Q + tl.arange(0, BLOCK_Q)
    return row, q, tl.load(IDS + row), tl.load(SEED), tl.load(STEP)


@triton.jit
def _philox_kernel(
    OUT,  # (N, numel) float32 normals, or int64 words when WORDS
    IDS,  # (N,) int64 global sample indices
    SEED,  # (1,) int64
    STEP,  # (1,) int64
    numel,
    WORDS: tl.constexpr,
    BLOCK_Q: tl.constexpr,
):
    row, q, sample, seed, step = stream_position(IDS, SEED, STEP, BLOCK_Q)
    qu = q.to(tl.uint32)
    if WORDS:
        a, b, c, d = noise_words(seed, sample, step, qu)
        a, b, c, d = a.to(tl.int64), b.to(tl.int64), c.to(tl.int64), d.to(tl.int64)
    else:
        a, b, c, d = noise4(seed, sample, step, qu)
    base = OUT + row.to(tl.int64) * numel + 4 * q.to(tl.int64)
    e = 4 * q
    tl.store(base, a, mask=e < numel)
    tl.store(base + 1, b, mask=e + 1 < numel)
    tl.store(base + 2, c, mask=e + 2 < numel)
    tl.store(base + 3, d, mask=e + 3 < numel)


def philox_triton(out, sample_ids, seed, step, words: bool = False, block_q: int | None = None):
    """Fill `out` (N, numel): normals (float32) or raw words (int64). Tensors on one device."""
    n, numel = out.shape
    n_groups = triton.cdiv(numel, 4)
    block_q = block_q or (min(triton.next_power_of_2(n_groups), 4096) if few_programs() else 256)
    grid = (n, triton.cdiv(n_groups, block_q))
    _philox_kernel[grid](out, sample_ids, seed, step, numel, WORDS=words, BLOCK_Q=block_q)
    return out
