"""group_norm_act: GroupNorm with the SiLU that follows it, and the per-channel bias added before it, as NCSN++'s
blocks use them: act(GroupNorm(x + e[:, :, None, None])).

out = act(w_c (x + e_nc - mu_ng) rstd_ng + b_c) with mu, rstd the mean and 1/sqrt(biased var + eps) of group g's
channels of x + e over all pixels; e (N, C) optional (the embedding projection a residual block adds before its
second norm); act SiLU or none (the attention block's norm). One statistics pass and one apply pass: the sum
x + e and the activation never touch memory. Inputs float32/float16/bfloat16, NCHW or channels_last;
arithmetic in float32; the output keeps x's dtype and layout. Inference only (no autograd).
"""

from __future__ import annotations

import torch
import torch.nn.functional as F

from . import _backends

DTYPES = {torch.float32: 0, torch.float16: 1, torch.bfloat16: 2}


def group_norm_act_ref(x: torch.Tensor, weight: torch.Tensor, bias: torch.Tensor, groups: int, eps: float,
                       add: torch.Tensor | None = None, silu: bool = True) -> torch.Tensor:
    """The reference: PyTorch's ops in the original's order, in float32 (float64 stays float64)."""
    dtype = x.dtype
    x = x.float() if dtype != torch.float64 else x
    if add is not None:
        x = x + add.to(x.dtype)[:, :, None, None]
    out = F.group_norm(x, groups, weight.to(x.dtype), bias.to(x.dtype), eps)
    return (F.silu(out) if silu else out).to(dtype)


def _channels_last(x: torch.Tensor) -> bool:
    return not x.is_contiguous() and x.is_contiguous(memory_format=torch.channels_last)


@_backends.fused_op("ncsn_fast::group_norm_act", mutates_args=())
def _group_norm_act_op(x: torch.Tensor, weight: torch.Tensor, bias: torch.Tensor, add: torch.Tensor | None,
                       groups: int, eps: float, silu: bool, backend: str) -> torch.Tensor:
    channels_last = _channels_last(x)
    if backend == "torch":
        fmt = torch.channels_last if channels_last else torch.contiguous_format
        return group_norm_act_ref(x, weight, bias, groups, eps, add, silu).contiguous(memory_format=fmt)
    if not (channels_last or x.is_contiguous()):
        x = x.contiguous()
    out = torch.empty_like(x)  # keeps the memory format
    n, c, h, w = x.shape
    weight, bias = weight.float().contiguous(), bias.float().contiguous()
    add = add.float().contiguous() if add is not None else None
    add_ptr = add.data_ptr() if add is not None else 0
    if backend == "cpu":
        _backends.ext().group_norm_act_cpu(x.data_ptr(), out.data_ptr(), DTYPES[x.dtype], n, c, h * w, channels_last,
                                           groups, eps, weight.data_ptr(), bias.data_ptr(), add_ptr, silu)
    elif backend == "cuda":
        work = torch.empty(2 * n * groups, dtype=torch.float32, device=x.device)
        _backends.ext().group_norm_act_cuda(x.data_ptr(), out.data_ptr(), DTYPES[x.dtype], n, c, h * w,
                                            channels_last, groups, eps, weight.data_ptr(), bias.data_ptr(), add_ptr,
                                            silu, work.data_ptr(), _backends.stream(x.device))
    elif backend == "triton":
        from ..kernels.group_norm_act import group_norm_act_triton
        group_norm_act_triton(x, out, weight, bias, add, groups, eps, silu, channels_last)
    else:
        raise ValueError(f"group_norm_act: no {backend!r} implementation")
    return out


@_group_norm_act_op.register_fake
def _(x, weight, bias, add, groups, eps, silu, backend):
    return torch.empty_like(x)


def group_norm_act(x: torch.Tensor, weight: torch.Tensor, bias: torch.Tensor, groups: int, eps: float = 1e-6,
                   add: torch.Tensor | None = None, silu: bool = True, backend: str = "auto") -> torch.Tensor:
    """SiLU (if silu) of GroupNorm(x + add[:, :, None, None]) with `groups` groups, affine weight/bias (C,)."""
    if x.dim() != 4:
        raise ValueError(f"x must be (N, C, H, W), got shape {tuple(x.shape)}")
    if x.dtype not in DTYPES:
        raise ValueError(f"x must be float32, float16 or bfloat16, got {x.dtype}")
    n, c = x.shape[:2]
    if groups < 1 or c % groups:
        raise ValueError(f"{c} channels do not split into {groups} groups")
    for name, t in (("weight", weight), ("bias", bias)):
        if tuple(t.shape) != (c,):
            raise ValueError(f"{name} must have shape ({c},), got {tuple(t.shape)}")
    if add is not None and tuple(add.shape) != (n, c):
        raise ValueError(f"add must have shape ({n}, {c}), got {tuple(add.shape)}")
    chosen = _backends.choose(backend, x.device)
    return _group_norm_act_op(x, weight, bias, add, groups, float(eps), silu, chosen)
