"""Triton kernel of the fused Langevin update (definition: ncsn_fast/ops/langevin_step.py).

One program updates BLOCK_Q groups of 4 elements of one sample: one Philox call per group gives the
4 normals, so no noise tensor is ever written. Seed, step and the coefficients are read from device
memory (a CUDA graph replays them fresh). Per-sample sums of h^2 and z^2 are added atomically.
"""

import triton
import triton.language as tl

from . import few_programs
from .philox import noise4, stream_position


@triton.jit
def _update(X, H, x_row, h_row, e, numel, hw, C, g, b, z, CHANNELS_LAST: tl.constexpr):
    mask = e < numel
    if CHANNELS_LAST:
        h_off = (e % hw) * C + e // hw
    else:
        h_off = e
    x = tl.load(X + x_row + e, mask=mask, other=0.0)
    h = tl.load(H + h_row + h_off, mask=mask, other=0.0).to(tl.float32)
    gh = g * h
    bz = b * z
    tl.store(X + x_row + e, (x + gh) + bz, mask=mask)
    return tl.where(mask, h * h, 0.0), tl.where(mask, z * z, 0.0)


@triton.jit
def _langevin_step_kernel(
    X,  # (N, numel) float32, updated in place
    H,  # (N, C, H, W) network output, NCHW or NHWC storage, fp32/fp16/bf16
    IDS,  # (N,) int64 global sample indices
    SEED, STEP,  # (1,) int64
    COEFS,  # (3,) float32: a, c, b
    STATS,  # (N, 2) float32: sum h^2, sum z^2 (accumulated)
    numel, hw, C,
    CHANNELS_LAST: tl.constexpr,
    WITH_STATS: tl.constexpr,
    BLOCK_Q: tl.constexpr,
):
    row, q, sample, seed, step = stream_position(IDS, SEED, STEP, BLOCK_Q)
    g = tl.load(COEFS) * tl.load(COEFS + 1)
    b = tl.load(COEFS + 2)
    z0, z1, z2, z3 = noise4(seed, sample, step, q.to(tl.uint32))
    row_off = row.to(tl.int64) * numel
    e = 4 * q.to(tl.int64)
    h0, s0 = _update(X, H, row_off, row_off, e, numel, hw, C, g, b, z0, CHANNELS_LAST)
    h1, s1 = _update(X, H, row_off, row_off, e + 1, numel, hw, C, g, b, z1, CHANNELS_LAST)
    h2, s2 = _update(X, H, row_off, row_off, e + 2, numel, hw, C, g, b, z2, CHANNELS_LAST)
    h3, s3 = _update(X, H, row_off, row_off, e + 3, numel, hw, C, g, b, z3, CHANNELS_LAST)
    if WITH_STATS:
        tl.atomic_add(STATS + 2 * row, tl.sum(h0 + h1 + h2 + h3, axis=0))
        tl.atomic_add(STATS + 2 * row + 1, tl.sum(s0 + s1 + s2 + s3, axis=0))


def langevin_step_triton(x, h, sample_ids, seed, step, coefs, stats, channels_last: bool, with_stats: bool):
    n, numel = x.shape[0], x[0].numel()
    c = h.shape[1]
    hw = numel // c
    groups = triton.cdiv(numel, 4)
    block_q = min(triton.next_power_of_2(groups), 4096) if few_programs() else 256
    grid = (n, triton.cdiv(groups, block_q))
    _langevin_step_kernel[grid](x, h, sample_ids, seed, step, coefs, stats, numel, hw, c,
                                CHANNELS_LAST=channels_last, WITH_STATS=with_stats, BLOCK_Q=block_q)
