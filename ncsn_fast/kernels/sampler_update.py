"""Triton kernel of the fused sampler step (definition: ncsn_fast/ops/sampler_update.py).

One program updates BLOCK_Q groups of 4 elements of one sample; one Philox call per group gives the 4
normals. Seed, step, the coefficient row and the sample's multipliers are read from device memory (a CUDA
graph replays them fresh). Each sum is an explicit tl.fma, x' = fma(b, z, fma(a_p, p, fma(g, h, a_x x))), the
CUDA kernel's pairing (csrc/sampler_update.h), so annealed Langevin's row is fma(b, z, fma(g, h, x)) whatever the
compiler contracts; the interpreter rounds each product and sum, as the CPU build does. A row that keeps p
((p_x, p_h, p_p) = (0, 0, 1)) does not store it, and loads it only if a_p != 0.
"""

import triton
import triton.language as tl

from . import few_programs
from .philox import noise4, stream_position


@triton.jit
def _update(X, P, H, row_off, e, numel, hw, C, a_x, g, a_p, b, p_x, p_h, p_p, read_p, write_p, z,
            CHANNELS_LAST: tl.constexpr):
    mask = e < numel
    if CHANNELS_LAST:
        h_off = (e % hw) * C + e // hw
    else:
        h_off = e
    x = tl.load(X + row_off + e, mask=mask, other=0.0)
    p = tl.load(P + row_off + e, mask=tl.where(read_p, mask, False), other=0.0)
    h = tl.load(H + row_off + h_off, mask=mask, other=0.0).to(tl.float32)
    tl.store(X + row_off + e, tl.fma(b, z, tl.fma(a_p, p, tl.fma(g, h, a_x * x))), mask=mask)
    tl.store(P + row_off + e, tl.fma(p_p, p, tl.fma(p_h, h, p_x * x)), mask=tl.where(write_p, mask, False))


@triton.jit
def _sampler_update_kernel(
    X, P,  # (N, numel) float32, updated in place
    H,  # (N, C, H, W) network output, NCHW or NHWC storage, fp32/fp16/bf16
    IDS,  # (N,) int64 global sample indices
    SEED, STEP,  # (1,) int64
    COEFS,  # (8,) float32: a_x, a_h, a_p, a_z, p_x, p_h, p_p, c
    MULT,  # (N, 2) float32: m_h, m_z
    numel, hw, C,
    CHANNELS_LAST: tl.constexpr,
    BLOCK_Q: tl.constexpr,
):
    row, q, sample, seed, step = stream_position(IDS, SEED, STEP, BLOCK_Q)
    a_x = tl.load(COEFS)
    g = tl.load(COEFS + 1) * tl.load(MULT + 2 * row)
    a_p = tl.load(COEFS + 2)
    b = tl.load(COEFS + 3) * tl.load(MULT + 2 * row + 1)
    p_x = tl.load(COEFS + 4)
    p_h = tl.load(COEFS + 5)
    p_p = tl.load(COEFS + 6)
    write_p = (p_x != 0.0) | (p_h != 0.0) | (p_p != 1.0)  # p' = p: neither stored nor, without a_p, loaded
    read_p = (a_p != 0.0) | write_p
    z0, z1, z2, z3 = noise4(seed, sample, step, q.to(tl.uint32))
    row_off = row.to(tl.int64) * numel
    e = 4 * q.to(tl.int64)
    _update(X, P, H, row_off, e, numel, hw, C, a_x, g, a_p, b, p_x, p_h, p_p, read_p, write_p, z0,
            CHANNELS_LAST)
    _update(X, P, H, row_off, e + 1, numel, hw, C, a_x, g, a_p, b, p_x, p_h, p_p, read_p, write_p, z1,
            CHANNELS_LAST)
    _update(X, P, H, row_off, e + 2, numel, hw, C, a_x, g, a_p, b, p_x, p_h, p_p, read_p, write_p, z2,
            CHANNELS_LAST)
    _update(X, P, H, row_off, e + 3, numel, hw, C, a_x, g, a_p, b, p_x, p_h, p_p, read_p, write_p, z3,
            CHANNELS_LAST)


def sampler_update_triton(x, p, h, sample_ids, seed, step, coefs, mult, channels_last: bool):
    n, numel = x.shape[0], x[0].numel()
    c = h.shape[1]
    hw = numel // c
    groups = triton.cdiv(numel, 4)
    block_q = min(triton.next_power_of_2(groups), 4096) if few_programs() else 256
    grid = (n, triton.cdiv(groups, block_q))
    _sampler_update_kernel[grid](x, p, h, sample_ids, seed, step, coefs, mult, numel, hw, c,
                                 CHANNELS_LAST=channels_last, BLOCK_Q=block_q)
