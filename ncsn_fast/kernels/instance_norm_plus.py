"""Triton kernels of instance norm++ (definition: ncsn_fast/ops/instance_norm_plus.py).

Three launches: plane statistics (two passes over [BLOCK_C, BLOCK_P] tiles, one kernel for NCHW and
NHWC through the strides), per-sample alpha m (the plane means standardised across channels need every
channel), and the apply pass gamma (rstd (x - mu) + alpha m) + beta with the ELU fused.
"""

import triton
import triton.language as tl

from . import INTERPRET, few_programs

if INTERPRET:
    @triton.jit
    def _expm1(x):
        return tl.exp(x) - 1.0
else:
    from triton.language.extra import libdevice

    _expm1 = libdevice.expm1


@triton.jit
def _stats_kernel(X, MU, RSTD, C, HW, stride_n, stride_c, stride_p, eps,
                  BLOCK_C: tl.constexpr, BLOCK_P: tl.constexpr):
    n = tl.program_id(0)
    c = tl.program_id(1) * BLOCK_C + tl.arange(0, BLOCK_C)
    cmask = c < C
    base = X + n.to(tl.int64) * stride_n + c[:, None].to(tl.int64) * stride_c
    acc = tl.zeros([BLOCK_C, BLOCK_P], dtype=tl.float32)
    for p0 in tl.range(0, HW, BLOCK_P):
        p = p0 + tl.arange(0, BLOCK_P)
        m = cmask[:, None] & (p[None, :] < HW)
        acc += tl.load(base + p[None, :].to(tl.int64) * stride_p, mask=m, other=0.0).to(tl.float32)
    mean = tl.sum(acc, axis=1) / HW
    acc = tl.zeros([BLOCK_C, BLOCK_P], dtype=tl.float32)
    for p0 in tl.range(0, HW, BLOCK_P):
        p = p0 + tl.arange(0, BLOCK_P)
        m = cmask[:, None] & (p[None, :] < HW)
        v = tl.load(base + p[None, :].to(tl.int64) * stride_p, mask=m, other=0.0).to(tl.float32)
        d = tl.where(m, v - mean[:, None], 0.0)
        acc += d * d
    var = tl.sum(acc, axis=1) / HW
    tl.store(MU + n * C + c, mean, mask=cmask)
    tl.store(RSTD + n * C + c, 1.0 / tl.sqrt(var + eps), mask=cmask)


@triton.jit
def _coef_kernel(MU, ALPHA, AM, C, param_stride, eps, BLOCK_C: tl.constexpr):
    n = tl.program_id(0)
    c = tl.arange(0, BLOCK_C)
    m = c < C
    mu = tl.load(MU + n * C + c, mask=m, other=0.0)
    mean = tl.sum(mu, axis=0) / C
    d = tl.where(m, mu - mean, 0.0)
    var = tl.sum(d * d, axis=0) / (C - 1)  # unbiased, as torch.var
    m_hat = d / tl.sqrt(var + eps)
    alpha = tl.load(ALPHA + n * param_stride + c, mask=m, other=0.0)
    tl.store(AM + n * C + c, alpha * m_hat, mask=m)


@triton.jit
def _apply_kernel(X, OUT, MU, RSTD, AM, GAMMA, BETA, param_stride, total, C, HW, CHANNELS_LAST: tl.constexpr,
                  ELU: tl.constexpr, BLOCK: tl.constexpr):
    i = tl.program_id(0).to(tl.int64) * BLOCK + tl.arange(0, BLOCK)
    m = i < total
    if CHANNELS_LAST:
        c = i % C
        n = i // (HW * C)
    else:
        c = (i // HW) % C
        n = i // (HW * C)
    k = n * C + c
    pk = n * param_stride + c
    x = tl.load(X + i, mask=m, other=0.0).to(tl.float32)
    mu = tl.load(MU + k, mask=m, other=0.0)
    rstd = tl.load(RSTD + k, mask=m, other=0.0)
    am = tl.load(AM + k, mask=m, other=0.0)
    y = tl.load(GAMMA + pk, mask=m, other=0.0) * ((x - mu) * rstd + am) + tl.load(BETA + pk, mask=m, other=0.0)
    if ELU:
        y = tl.where(y > 0, y, _expm1(tl.minimum(y, 0.0)))  # the unselected branch must not overflow
    tl.store(OUT + i, y.to(OUT.dtype.element_ty), mask=m)


def instance_norm_plus_triton(x, out, gamma, alpha, beta, param_stride: int, elu: bool, channels_last: bool,
                              eps: float = 1e-5):
    import torch

    n, c, h, w = x.shape
    hw = h * w
    mu = torch.empty(n, c, dtype=torch.float32, device=x.device)
    rstd = torch.empty_like(mu)
    am = torch.empty_like(mu)
    stride_n, stride_c, stride_p = (hw * c, 1, c) if channels_last else (hw * c, hw, 1)
    if few_programs():  # few, large programs: the interpreter costs ~10 ms per program instance
        block_c, block_p, block = triton.next_power_of_2(c), triton.next_power_of_2(hw), 1 << 16
    else:
        block_c, block_p, block = (32, 64, 1024) if channels_last else (4, 256, 1024)
    _stats_kernel[(n, triton.cdiv(c, block_c))](x, mu, rstd, c, hw, stride_n, stride_c, stride_p, eps,
                                                BLOCK_C=block_c, BLOCK_P=block_p)
    _coef_kernel[(n,)](mu, alpha, am, c, param_stride, eps, BLOCK_C=triton.next_power_of_2(c))
    total = x.numel()
    _apply_kernel[(triton.cdiv(total, block),)](x, out, mu, rstd, am, gamma, beta, param_stride, total, c, hw,
                                                CHANNELS_LAST=channels_last, ELU=elu, BLOCK=block)
    return out
