"""Triton ELU (alpha 1) over a dense buffer (definition: ncsn_fast/ops/elu.py)."""

import triton
import triton.language as tl

from . import few_programs
from .instance_norm_plus import _expm1


@triton.jit
def _elu_kernel(X, OUT, numel, BLOCK: tl.constexpr):
    i = tl.program_id(0).to(tl.int64) * BLOCK + tl.arange(0, BLOCK)
    m = i < numel
    v = tl.load(X + i, mask=m, other=0.0).to(tl.float32)
    y = tl.where(v > 0, v, _expm1(tl.minimum(v, 0.0)))  # the unselected branch must not overflow
    y = tl.where(v != v, v, y)
    tl.store(OUT + i, y.to(OUT.dtype.element_ty), mask=m)


def elu_triton(x, out):
    numel = x.numel()
    block = 1 << 16 if few_programs() else 1024
    _elu_kernel[(triton.cdiv(numel, block),)](x, out, numel, BLOCK=block)
    return out
