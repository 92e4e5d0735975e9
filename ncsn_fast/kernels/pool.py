"""Triton kernel of the CRP 5x5 pooling (definition: ncsn_fast/ops/pool.py): one program per block of
output elements, NCHW or NHWC through the strides; the window visited row by row as PyTorch does."""

import triton
import triton.language as tl

from . import few_programs


@triton.jit
def _pool5x5_kernel(X, OUT, total, C, H, W, CHANNELS_LAST: tl.constexpr, IS_MAX: tl.constexpr,
                    BLOCK: tl.constexpr):
    i = tl.program_id(0).to(tl.int64) * BLOCK + tl.arange(0, BLOCK)
    m = i < total
    if CHANNELS_LAST:
        c = i % C
        ow = (i // C) % W
        oh = (i // (C * W)) % H
        n = i // (C * W * H)
        base = n * H * W * C + c
        sh = W * C
        sw = C
    else:
        ow = i % W
        oh = (i // W) % H
        base = (i // (W * H)) * H * W
        sh = W
        sw = 1
    if IS_MAX:
        acc = tl.full([BLOCK], float("-inf"), tl.float32)
        nan = tl.zeros([BLOCK], dtype=tl.int1)
    else:
        acc = tl.zeros([BLOCK], dtype=tl.float32)
    for dh in tl.static_range(5):
        for dw in tl.static_range(5):
            h = oh + dh - 2
            w = ow + dw - 2
            inside = m & (h >= 0) & (h < H) & (w >= 0) & (w < W)
            v = tl.load(X + base + h * sh + w * sw, mask=inside, other=0.0).to(tl.float32)
            if IS_MAX:
                nan = nan | (inside & (v != v))
                acc = tl.where(inside & (v > acc), v, acc)
            else:
                acc += v
    if IS_MAX:
        acc = tl.where(nan, float("nan"), acc)
    else:
        acc = acc / 25.0
    tl.store(OUT + i, acc.to(OUT.dtype.element_ty), mask=m)


def pool5x5_triton(x, out, is_max: bool, channels_last: bool):
    n, c, h, w = x.shape
    total = x.numel()
    block = 1 << 16 if few_programs() else 512  # the interpreter costs per program instance: few, large ones
    _pool5x5_kernel[(triton.cdiv(total, block),)](x, out, total, c, h, w, CHANNELS_LAST=channels_last,
                                                  IS_MAX=is_max, BLOCK=block)
    return out
