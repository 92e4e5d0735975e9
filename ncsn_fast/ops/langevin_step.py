"""langevin_step_: the fused Langevin update, x <- x + a c h + b z, in place.

h is the raw network output and c the score scale (1/sigma for NCSNv2, whose network divides by
sigma; 1 for NCSN), a the step size alpha, b = sqrt(2 alpha), z the noise stream's normals for
(seed, sample, step) (ops/philox.py), drawn inside the kernel. Evaluated as (x + (a c) h) + b z in
float32; h may be float32, float16 or bfloat16, NCHW or channels_last. Optionally per-sample
statistics: the L2 norms of the score c h and of the noise z (the original sampler's grad_norm and
noise_norm before the batch mean).
"""

from __future__ import annotations

import torch

from . import _backends
from .philox import philox_normal_ref

H_DTYPES = {torch.float32: 0, torch.float16: 1, torch.bfloat16: 2}


def langevin_step_ref(x: torch.Tensor, h: torch.Tensor, coefs: torch.Tensor, z: torch.Tensor) -> torch.Tensor:
    """The reference update with the noise given: (x + (a c) h) + b z in float32."""
    a, c, b = coefs.float().unbind()
    return (x + (a * c) * h.float()) + b * z.view_as(x)


def _is_channels_last(h: torch.Tensor) -> bool:
    return h.dim() == 4 and not h.is_contiguous() and h.is_contiguous(memory_format=torch.channels_last)


@torch.library.custom_op("ncsn_fast::langevin_step_", mutates_args=("x", "stats"))
def _langevin_step_op(x: torch.Tensor, h: torch.Tensor, seed: torch.Tensor, step: torch.Tensor,
                      sample_ids: torch.Tensor, coefs: torch.Tensor, stats: torch.Tensor, with_stats: bool,
                      backend: str) -> None:
    n = x.shape[0]
    numel = x[0].numel()
    channels_last = _is_channels_last(h)
    if backend == "torch":
        z = philox_normal_ref(int(seed.item()), int(step.item()), sample_ids, numel)
        hf = h.float().reshape(n, -1)
        x.copy_(langevin_step_ref(x, h, coefs, z))
        if with_stats:
            stats.copy_(torch.stack([(hf * hf).sum(1), (z * z).sum(1)], 1))
    elif backend == "cpu":
        hc = h if (channels_last or h.is_contiguous()) else h.contiguous()
        _backends.ext().langevin_step_cpu(
            x.data_ptr(), hc.data_ptr(), H_DTYPES[h.dtype], sample_ids.data_ptr(), n, h.shape[1],
            numel // h.shape[1], channels_last, int(seed.item()) & ((1 << 64) - 1), int(step.item()) & 0xFFFFFFFF,
            coefs.data_ptr(), stats.data_ptr() if with_stats else 0)
    elif backend == "cuda":
        if with_stats:
            stats.zero_()
        hc = h if (channels_last or h.is_contiguous()) else h.contiguous()
        _backends.ext().langevin_step_cuda(
            x.data_ptr(), hc.data_ptr(), H_DTYPES[h.dtype], sample_ids.data_ptr(), n, h.shape[1],
            numel // h.shape[1], channels_last, seed.data_ptr(), step.data_ptr(), coefs.data_ptr(),
            stats.data_ptr() if with_stats else 0, _backends.stream(x.device))
    elif backend == "triton":
        from ..kernels.langevin_step import langevin_step_triton
        if with_stats:
            stats.zero_()
        hc = h if (channels_last or h.is_contiguous()) else h.contiguous()
        langevin_step_triton(x, hc, sample_ids, seed, step, coefs, stats, channels_last, with_stats)
    else:
        raise ValueError(f"langevin_step_: no {backend!r} implementation")


@_langevin_step_op.register_fake
def _(x, h, seed, step, sample_ids, coefs, stats, with_stats, backend):
    return None


def _scalar_tensor(v, dtype, device) -> torch.Tensor:
    return torch.as_tensor(v, dtype=dtype, device=device).reshape(1)


def langevin_coefs(step_size: float, score_scale: float = 1.0, noise_scale: float | None = None,
                   device: str | torch.device = "cpu") -> torch.Tensor:
    """The (3,) float32 coefficient tensor {a, c, b}; b defaults to sqrt(2 a)."""
    b = (2.0 * step_size) ** 0.5 if noise_scale is None else noise_scale
    return torch.tensor([step_size, score_scale, b], dtype=torch.float32, device=device)


def langevin_step_(x: torch.Tensor, h: torch.Tensor, coefs: torch.Tensor, *, seed, step,
                   sample_ids: torch.Tensor, with_stats: bool = False, backend: str = "auto"):
    """x <- x + a c h + b z in place (x float32 contiguous, first dim = samples); coefs = {a, c, b}.

    seed and step: ints or one-element int64 tensors on x's device. Returns None, or with_stats the
    per-sample norms (N, 2): [||c h||, ||z||], kept on the device.
    """
    n = x.shape[0]
    if x.dtype != torch.float32 or not x.is_contiguous():
        raise ValueError(f"x must be a contiguous float32 tensor, got {x.dtype}"
                         f"{'' if x.is_contiguous() else ' (not contiguous)'}")
    if h.shape != x.shape:
        raise ValueError(f"h must have x's shape {tuple(x.shape)}, got {tuple(h.shape)}")
    if h.dtype not in H_DTYPES:
        raise ValueError(f"h must be float32, float16 or bfloat16, got {h.dtype}")
    if sample_ids.shape != (n,) or sample_ids.dtype != torch.int64:
        raise ValueError(f"sample_ids must be int64 of shape ({n},), got {sample_ids.dtype} {tuple(sample_ids.shape)}")
    if coefs.shape != (3,) or coefs.dtype != torch.float32:
        raise ValueError(f"coefs must be float32 of shape (3,) = (a, c, b), got {coefs.dtype} {tuple(coefs.shape)}")
    if h.dim() < 2:
        h = h.reshape(n, 1, -1)
    device = x.device
    chosen = _backends.choose(backend, device)
    stats = torch.empty(n, 2, dtype=torch.float32, device=device)
    _langevin_step_op(x, h, _scalar_tensor(seed, torch.int64, device), _scalar_tensor(step, torch.int64, device),
                      sample_ids.to(device).contiguous(), coefs.to(device).contiguous(), stats, with_stats, chosen)
    if not with_stats:
        return None
    return stats.sqrt() * torch.stack([coefs[1].abs().to(device), torch.ones((), device=device)])
