"""sampler_update_: one fused step of any fixed-step sampler (sampling/table.py), x and p in place.

    x' = ((a_x x + (a_h m_h) h) + a_p p) + (a_z m_z) z
    p' = (p_x x + p_h h) + p_p p

h is the raw network output (any layout and 16/32-bit float; the score is c h, with c folded into a_h and
p_h), p an auxiliary float32 buffer (Heun's half step, DPM-Solver's previous denoised image), z the noise
stream's normals for (seed, sample, step) drawn inside the kernel, coefs the float32 row
{a_x, a_h, a_p, a_z, p_x, p_h, p_p, c} (c, the score scale, is not used here), and mult (N, 2) per-sample
multipliers {m_h, m_z} (a Langevin corrector's step size; ones otherwise). Both outputs use the old x and
p. Evaluated in float32 in the order written (on a GPU each sum fused with its product: fma(b, z, fma(a_p, p,
fma(g, h, a_x x)))). A row that keeps p ((p_x, p_h, p_p) = (0, 0, 1)) does not write it, and reads it only if
a_p != 0 (the kernels then move x, h and x' alone). Annealed Langevin's update x <- x + a c h + b z is the row
{1, a c, 0, b, 0, 0, 1, c} (`langevin_coefs`): (1 x + (a c) h) + 0 p + b z is (x + (a c) h) + b z bit for bit.
"""

from __future__ import annotations

import torch

from . import _backends
from .philox import philox_normal_ref

N_COEFS = 8
H_DTYPES = {torch.float32: 0, torch.float16: 1, torch.bfloat16: 2}


def langevin_coefs(step_size: float, score_scale: float = 1.0, noise_scale: float | None = None,
                   device: str | torch.device = "cpu") -> torch.Tensor:
    """The (8,) coefficient row of one annealed Langevin step x <- x + a c h + b z (b defaults to sqrt(2 a)): a_x 1,
    a_h = a c rounded as float32 arithmetic (the product of the float32 step and score scale), a_z b, p kept
    (p_x, p_h, p_p = 0, 0, 1: not read, not written)."""
    b = (2.0 * step_size) ** 0.5 if noise_scale is None else noise_scale
    a, c = torch.tensor([step_size, score_scale], dtype=torch.float32).unbind()
    return torch.tensor([1.0, float(a * c), 0.0, b, 0.0, 0.0, 1.0, float(c)], dtype=torch.float32, device=device)


def _is_channels_last(h: torch.Tensor) -> bool:
    return h.dim() == 4 and not h.is_contiguous() and h.is_contiguous(memory_format=torch.channels_last)


def _scalar_tensor(v, dtype, device) -> torch.Tensor:
    return torch.as_tensor(v, dtype=dtype, device=device).reshape(1)


def sampler_update_ref(x: torch.Tensor, p: torch.Tensor, h: torch.Tensor, coefs: torch.Tensor, mult: torch.Tensor,
                       z: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """The reference update with the noise given: (x', p') in float32 (p as the kernels see it: not read by a row
    that keeps it and has a_p = 0, and then left as it is)."""
    a_x, a_h, a_p, a_z, p_x, p_h, p_p, _ = coefs.float().unbind()
    shape = (x.shape[0],) + (1,) * (x.dim() - 1)
    hf = h.float().reshape(x.shape)
    g = (a_h * mult[:, 0].float()).view(shape)
    b = (a_z * mult[:, 1].float()).view(shape)
    write_p = (p_x != 0) | (p_h != 0) | (p_p != 1)
    p_read = torch.where((a_p != 0) | write_p, p, torch.zeros((), device=p.device))
    x_new = ((a_x * x + g * hf) + a_p * p_read) + b * z.view_as(x)
    p_new = torch.where(write_p, (p_x * x + p_h * hf) + p_p * p_read, p)
    return x_new, p_new


@_backends.fused_op("ncsn_fast::sampler_update_", mutates_args=("x", "p"))
def _sampler_update_op(x: torch.Tensor, p: torch.Tensor, h: torch.Tensor, seed: torch.Tensor, step: torch.Tensor,
                       sample_ids: torch.Tensor, coefs: torch.Tensor, mult: torch.Tensor, backend: str) -> None:
    n = x.shape[0]
    numel = x[0].numel()
    channels_last = _is_channels_last(h)
    hc = h if (channels_last or h.is_contiguous()) else h.contiguous()
    if backend == "torch":
        z = philox_normal_ref(int(seed.item()), int(step.item()), sample_ids, numel)
        x_new, p_new = sampler_update_ref(x, p, h, coefs, mult, z)
        x.copy_(x_new)
        p.copy_(p_new)
    elif backend == "cpu":
        _backends.ext().sampler_update_cpu(
            x.data_ptr(), p.data_ptr(), hc.data_ptr(), H_DTYPES[h.dtype], sample_ids.data_ptr(), n, h.shape[1],
            numel // h.shape[1], channels_last, int(seed.item()) & ((1 << 64) - 1), int(step.item()) & 0xFFFFFFFF,
            coefs.data_ptr(), mult.data_ptr())
    elif backend == "cuda":
        _backends.ext().sampler_update_cuda(
            x.data_ptr(), p.data_ptr(), hc.data_ptr(), H_DTYPES[h.dtype], sample_ids.data_ptr(), n, h.shape[1],
            numel // h.shape[1], channels_last, seed.data_ptr(), step.data_ptr(), coefs.data_ptr(), mult.data_ptr(),
            _backends.stream(x.device))
    elif backend == "triton":
        from ..kernels.sampler_update import sampler_update_triton
        sampler_update_triton(x, p, hc, sample_ids, seed, step, coefs, mult, channels_last)
    else:
        raise ValueError(f"sampler_update_: no {backend!r} implementation")


@_sampler_update_op.register_fake
def _(x, p, h, seed, step, sample_ids, coefs, mult, backend):
    return None


def sampler_update_(x: torch.Tensor, p: torch.Tensor, h: torch.Tensor, coefs: torch.Tensor, mult: torch.Tensor, *,
                    seed, step, sample_ids: torch.Tensor, backend: str = "auto") -> None:
    """x, p <- x', p' in place (both contiguous float32 of x's shape, first dim = samples); see the module
    docstring. seed and step: ints or one-element int64 tensors on x's device (a CUDA graph updates them)."""
    n = x.shape[0]
    for name, t in (("x", x), ("p", p)):
        if t.dtype != torch.float32 or not t.is_contiguous():
            raise ValueError(f"{name} must be a contiguous float32 tensor, got {t.dtype}"
                             f"{'' if t.is_contiguous() else ' (not contiguous)'}")
    if p.shape != x.shape or h.shape != x.shape:
        raise ValueError(f"p and h must have x's shape {tuple(x.shape)}, got {tuple(p.shape)} and {tuple(h.shape)}")
    if h.dtype not in H_DTYPES:
        raise ValueError(f"h must be float32, float16 or bfloat16, got {h.dtype}")
    if sample_ids.shape != (n,) or sample_ids.dtype != torch.int64:
        raise ValueError(f"sample_ids must be int64 of shape ({n},), got {sample_ids.dtype} {tuple(sample_ids.shape)}")
    if coefs.shape != (N_COEFS,) or coefs.dtype != torch.float32:
        raise ValueError(f"coefs must be float32 of shape ({N_COEFS},), got {coefs.dtype} {tuple(coefs.shape)}")
    if mult.shape != (n, 2) or mult.dtype != torch.float32:
        raise ValueError(f"mult must be float32 of shape ({n}, 2), got {mult.dtype} {tuple(mult.shape)}")
    if h.dim() < 2:
        h = h.reshape(n, 1, -1)
    device = x.device
    chosen = _backends.choose(backend, device)
    _sampler_update_op(x, p, h, _scalar_tensor(seed, torch.int64, device), _scalar_tensor(step, torch.int64, device),
                       sample_ids.to(device).contiguous(), coefs.to(device).contiguous(),
                       mult.to(device).contiguous(), chosen)
