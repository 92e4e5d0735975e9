"""pool5x5: the 5x5, stride 1, padding 2 pooling of the RefineNets' chained residual pooling.

mode='max' (NCSNv2): F.max_pool2d(x, 5, 1, 2) without the indices PyTorch computes alongside, bit-identical
to it (max is exact; NaN propagates as there). mode='avg' (NCSN v1): F.avg_pool2d(x, 5, 1, 2) with the
padding counted (always / 25), the window summed in PyTorch's order (row by row), so float32 results agree
to rounding (bit for bit with PyTorch's CPU kernel). float32/float16/bfloat16, NCHW or channels_last; the
output keeps x's dtype and layout. Inference only (no autograd): the model modules use PyTorch's pooling
under autograd.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F

from . import _backends
from .instance_norm_plus import DTYPES, _channels_last

MODES = ("max", "avg")


def pool5x5_ref(x: torch.Tensor, mode: str) -> torch.Tensor:
    if mode == "max":
        return F.max_pool2d(x, kernel_size=5, stride=1, padding=2)
    return F.avg_pool2d(x, kernel_size=5, stride=1, padding=2)


@_backends.fused_op("ncsn_fast::pool5x5", mutates_args=())
def _pool5x5_op(x: torch.Tensor, mode: str, backend: str) -> torch.Tensor:
    channels_last = _channels_last(x)
    if backend == "torch":
        fmt = torch.channels_last if channels_last else torch.contiguous_format
        return pool5x5_ref(x, mode).contiguous(memory_format=fmt)
    if not (channels_last or x.is_contiguous()):
        x = x.contiguous()
    out = torch.empty_like(x)
    n, c, h, w = x.shape
    is_max = mode == "max"
    if backend == "cpu":
        _backends.ext().pool5x5_cpu(x.data_ptr(), out.data_ptr(), DTYPES[x.dtype], is_max, n, c, h, w, channels_last)
    elif backend == "cuda":
        _backends.ext().pool5x5_cuda(x.data_ptr(), out.data_ptr(), DTYPES[x.dtype], is_max, n, c, h, w, channels_last,
                                     _backends.stream(x.device))
    elif backend == "triton":
        from ..kernels.pool import pool5x5_triton
        pool5x5_triton(x, out, is_max, channels_last)
    else:
        raise ValueError(f"pool5x5: no {backend!r} implementation")
    return out


@_pool5x5_op.register_fake
def _(x, mode, backend):
    return torch.empty_like(x)


def pool5x5(x: torch.Tensor, mode: str = "max", backend: str = "auto") -> torch.Tensor:
    """5x5 stride-1 pooling of x (N, C, H, W) with padding 2: 'max' or 'avg' (padding counted)."""
    if mode not in MODES:
        raise ValueError(f"mode must be one of {MODES}, got {mode!r}")
    if x.dim() != 4:
        raise ValueError(f"x must be (N, C, H, W), got shape {tuple(x.shape)}")
    if x.dtype not in DTYPES:
        raise ValueError(f"x must be float32, float16 or bfloat16, got {x.dtype}")
    return _pool5x5_op(x, mode, _backends.choose(backend, x.device))
