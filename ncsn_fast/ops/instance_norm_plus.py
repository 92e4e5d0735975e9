"""instance_norm_plus: instance norm++ (NCSNv2) and its conditional form (NCSN v1), ELU optionally fused.

out = gamma_c ((x - mu_nc) / sqrt(v_nc + eps) + alpha_c m_nc) + beta_c, where mu_nc and v_nc are the
per-plane mean and biased variance and m_nc = (mu_nc - mean_c mu_n) / sqrt(var_c mu_n + eps) are the
plane means standardised across channels with the unbiased variance; eps = 1e-5 (the original code's
values, pinned by the fixtures). gamma/alpha/beta are (C,) (NCSNv2) or (N, C) (NCSN v1, looked up by the
noise-level label). Per (n, c) this is an affine map: one statistics pass, then one pass applying
gamma (rstd (x - mu) + alpha m) + beta (the reference's order: folding it into A x + B would cancel terms
gamma times larger); with elu=True the following ELU is applied in the same pass. Inputs float32/float16/
bfloat16, NCHW or channels_last; arithmetic in float32; the output keeps x's dtype and layout.
Inference only (no autograd): the model modules use the reference under autograd.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F

from . import _backends

EPS = 1e-5
DTYPES = {torch.float32: 0, torch.float16: 1, torch.bfloat16: 2}


def instance_norm_plus_ref(x: torch.Tensor, gamma: torch.Tensor, alpha: torch.Tensor, beta: torch.Tensor,
                           elu: bool = False) -> torch.Tensor:
    """The reference, in the original code's op order (bit-identical to it in float32)."""
    dtype = x.dtype
    x = x.float()
    means = torch.mean(x, dim=(2, 3))
    m = torch.mean(means, dim=-1, keepdim=True)
    v = torch.var(means, dim=-1, keepdim=True)
    m_hat = (means - m) / torch.sqrt(v + EPS)
    h = F.instance_norm(x, eps=EPS)
    c = x.shape[1]
    h = h + m_hat[..., None, None] * alpha.view(-1, c, 1, 1)
    out = gamma.view(-1, c, 1, 1) * h + beta.view(-1, c, 1, 1)
    if elu:
        out = F.elu(out)
    return out.to(dtype)


def _channels_last(x: torch.Tensor) -> bool:
    return not x.is_contiguous() and x.is_contiguous(memory_format=torch.channels_last)


@_backends.fused_op("ncsn_fast::instance_norm_plus", mutates_args=())
def _instance_norm_plus_op(x: torch.Tensor, gamma: torch.Tensor, alpha: torch.Tensor, beta: torch.Tensor,
                           elu: bool, backend: str) -> torch.Tensor:
    channels_last = _channels_last(x)
    if backend == "torch":
        fmt = torch.channels_last if channels_last else torch.contiguous_format
        return instance_norm_plus_ref(x, gamma, alpha, beta, elu).contiguous(memory_format=fmt)
    if not (channels_last or x.is_contiguous()):
        x = x.contiguous()
    out = torch.empty_like(x)  # keeps the memory format
    n, c, h, w = x.shape
    param_stride = c if gamma.dim() == 2 else 0
    gamma, alpha, beta = (t.float().contiguous() for t in (gamma, alpha, beta))
    if backend == "cpu":
        _backends.ext().instance_norm_plus_cpu(
            x.data_ptr(), out.data_ptr(), DTYPES[x.dtype], n, c, h * w, channels_last, gamma.data_ptr(),
            alpha.data_ptr(), beta.data_ptr(), param_stride, elu, 0, 0)
    elif backend == "cuda":
        work = torch.empty(3 * n * c, dtype=torch.float32, device=x.device)
        _backends.ext().instance_norm_plus_cuda(
            x.data_ptr(), out.data_ptr(), DTYPES[x.dtype], n, c, h * w, channels_last, gamma.data_ptr(),
            alpha.data_ptr(), beta.data_ptr(), param_stride, elu, work.data_ptr(), _backends.stream(x.device))
    elif backend == "triton":
        from ..kernels.instance_norm_plus import instance_norm_plus_triton
        instance_norm_plus_triton(x, out, gamma, alpha, beta, param_stride, elu, channels_last)
    else:
        raise ValueError(f"instance_norm_plus: no {backend!r} implementation")
    return out


@_instance_norm_plus_op.register_fake
def _(x, gamma, alpha, beta, elu, backend):
    return torch.empty_like(x)


def instance_norm_plus(x: torch.Tensor, gamma: torch.Tensor, alpha: torch.Tensor, beta: torch.Tensor,
                       elu: bool = False, backend: str = "auto") -> torch.Tensor:
    """Instance norm++ of x (N, C, H, W) with gamma/alpha/beta of shape (C,) or (N, C); ELU if elu."""
    if x.dim() != 4:
        raise ValueError(f"x must be (N, C, H, W), got shape {tuple(x.shape)}")
    if x.dtype not in DTYPES:
        raise ValueError(f"x must be float32, float16 or bfloat16, got {x.dtype}")
    n, c = x.shape[:2]
    if x.shape[2] * x.shape[3] < 2:
        raise ValueError(f"instance statistics need more than one pixel per plane, got {tuple(x.shape)}")
    if c < 2:
        raise ValueError("instance norm++ needs at least 2 channels (it standardises means across channels)")
    for name, t in (("gamma", gamma), ("alpha", alpha), ("beta", beta)):
        if tuple(t.shape) not in ((c,), (n, c)):
            raise ValueError(f"{name} must have shape ({c},) or ({n}, {c}), got {tuple(t.shape)}")
    if not (gamma.dim() == alpha.dim() == beta.dim()):
        raise ValueError("gamma, alpha and beta must all be (C,) or all (N, C)")
    chosen = _backends.choose(backend, x.device)
    return _instance_norm_plus_op(x, gamma, alpha, beta, elu, chosen)


def cond_instance_norm_plus(x: torch.Tensor, embed_weight: torch.Tensor, y: torch.Tensor, elu: bool = False,
                            backend: str = "auto") -> torch.Tensor:
    """NCSN v1's conditional form: gamma, alpha, beta = rows y of the (L, 3C) embedding [gamma|alpha|beta]."""
    gamma, alpha, beta = embed_weight[y].chunk(3, dim=-1)
    return instance_norm_plus(x, gamma, alpha, beta, elu, backend)
