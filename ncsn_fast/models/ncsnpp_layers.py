"""The blocks of NCSN++ (Song et al. 2021, the score-SDE code's models/layerspp.py), with its parameter names.

FIR resampling follows StyleGAN2's upfirdn2d (zero insertion, padding, a 2-D filter, decimation); the plain 2x
resamplers run it as one exact depthwise convolution (transposed, stride 2, for up; stride 2 for down), which
computes the same products without the inserted zeros or the discarded outputs.

Fused (see Fusable: a backend set and autograd off), the blocks run each GroupNorm with its SiLU, and the
embedding add before the second norm, as one group_norm_act op, the attention through
scaled_dot_product_attention and the per-pixel linear layers as 1x1 convolutions; otherwise PyTorch's code in
the original's order.
"""

from __future__ import annotations

import functools
import math

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from ..ops.group_norm_act import group_norm_act
from .conv import Conv2d, conv_add
from .init import randn
from .norms import Fusable

# The skip connections' rescaling (x + h) / sqrt 2, a Python float: a NumPy scalar handed to conv_add made
# torch.compile break the graph at its `divisor == 1.0` (a NumPy value is traced as an array).
SQRT2 = math.sqrt(2.0)


def fir_kernel(k=(1, 3, 3, 1), gain: float = 1.0) -> torch.Tensor:
    """The 2-D filter of a 1-D FIR kernel: outer product, normalised to sum 1, times gain (float32)."""
    k = np.asarray(k, dtype=np.float32)
    if k.ndim == 1:
        k = np.outer(k, k)
    k = k / np.sum(k)
    return torch.from_numpy(k * np.float32(gain))


@functools.cache
def _fir_on(k: tuple, gain: float, device: torch.device, dtype: torch.dtype) -> torch.Tensor:
    """fir_kernel on a device, made once: a forward then copies nothing from the host, so it can be captured in
    a CUDA graph (the first, uncaptured warm-up call makes it). Made outside inference mode, so that training
    after sampling in one process can save it for backward."""
    with torch.inference_mode(False):
        return fir_kernel(k, gain).to(device=device, dtype=dtype)


def fir_on(k, gain: float, like: torch.Tensor) -> torch.Tensor:
    # traced, the filter is a constant of the graph: dynamo would trace through the cache anyway (and warn that it
    # does, once per process)
    made = _fir_on.__wrapped__ if torch.compiler.is_compiling() else _fir_on
    return made(tuple(k), float(gain), like.device, like.dtype)


def upfirdn2d(x: torch.Tensor, k: torch.Tensor, up: int = 1, down: int = 1, pad: tuple[int, int] = (0, 0)):
    """Upsample by zero insertion, pad (both axes by pad[0] before, pad[1] after), filter, keep every down-th."""
    n, c, h, w = x.shape
    if up > 1:
        z = x.new_zeros(n, c, h * up, w * up)
        z[:, :, ::up, ::up] = x
        x = z
    x = F.pad(x, (pad[0], pad[1], pad[0], pad[1]))
    weight = torch.flip(k, [0, 1]).to(x.dtype).view(1, 1, *k.shape).expand(c, 1, *k.shape)
    x = F.conv2d(x, weight, groups=c)
    return x[:, :, ::down, ::down] if down > 1 else x


def upsample_2d(x: torch.Tensor, k=(1, 3, 3, 1), factor: int = 2) -> torch.Tensor:
    """upfirdn2d(x, k * factor^2, up=factor, pad=(pad0, p // 2)) with p = K - factor, pad0 = (p + 1) // 2 +
    factor - 1, as the transposed depthwise convolution it equals: output o gets x_i k_j where o = factor i -
    (K - 1 - pad0) + j."""
    kk = fir_on(k, factor ** 2, x)
    p = kk.shape[0] - factor
    c = x.shape[1]
    return F.conv_transpose2d(x, kk.expand(c, 1, *kk.shape), stride=factor,
                              padding=kk.shape[0] - 1 - ((p + 1) // 2 + factor - 1), groups=c)


def downsample_2d(x: torch.Tensor, k=(1, 3, 3, 1), factor: int = 2) -> torch.Tensor:
    """upfirdn2d(x, k, down=factor, pad=((p + 1) // 2, p // 2)) with p = K - factor: pad, then the strided
    depthwise convolution (only the outputs kept)."""
    kk = fir_on(k, 1.0, x)
    p = kk.shape[0] - factor
    c = x.shape[1]
    x = F.pad(x, ((p + 1) // 2, p // 2, (p + 1) // 2, p // 2))
    return F.conv2d(x, torch.flip(kk, [0, 1]).expand(c, 1, *kk.shape), stride=factor, groups=c)


def conv3x3(cin: int, cout: int, stride: int = 1, bias: bool = True, padding: int = 1) -> Conv2d:
    return Conv2d(cin, cout, 3, stride=stride, padding=padding, bias=bias)


def conv1x1(cin: int, cout: int, bias: bool = True) -> Conv2d:
    return Conv2d(cin, cout, 1, stride=1, padding=0, bias=bias)


def group_norm(channels: int) -> nn.GroupNorm:
    return nn.GroupNorm(num_groups=min(channels // 4, 32), num_channels=channels, eps=1e-6)


class NormAct(Fusable):
    """A module whose act(GroupNorm(x [+ e])) pairs run as one group_norm_act when fused and act is SiLU."""

    def norm_act(self, norm: nn.GroupNorm, x: torch.Tensor, add: torch.Tensor | None = None,
                 act: bool = True) -> torch.Tensor:
        if self._fused() and (not act or isinstance(self.act, nn.SiLU)):
            return group_norm_act(x, norm.weight, norm.bias, norm.num_groups, norm.eps, add, act,
                                  backend=self.backend)
        if add is not None:
            x = x + add[:, :, None, None]
        h = norm(x)
        return self.act(h) if act else h


class NIN(Fusable):
    """A per-pixel linear layer (network in network): W (in, out), b (out); fused, a 1x1 convolution (which
    keeps channels_last)."""

    def __init__(self, cin: int, cout: int):
        super().__init__()
        self.W = nn.Parameter(torch.zeros(cin, cout))
        self.b = nn.Parameter(torch.zeros(cout))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self._fused():
            return F.conv2d(x, self.W.t()[:, :, None, None], self.b)
        return torch.einsum("nchw,co->nohw", x, self.W) + self.b.view(1, -1, 1, 1)


class FIRConv2d(nn.Module):
    """Convolution fused with FIR up- or down-sampling (StyleGAN2's upsample_conv_2d / conv_downsample_2d)."""

    def __init__(self, cin: int, cout: int, kernel: int = 3, up: bool = False, down: bool = False,
                 resample_kernel=(1, 3, 3, 1), use_bias: bool = True):
        super().__init__()
        self.weight = nn.Parameter(torch.zeros(cout, cin, kernel, kernel))
        if use_bias:
            self.bias = nn.Parameter(torch.zeros(cout))
        self.up, self.down, self.resample_kernel = up, down, resample_kernel
        self.kernel, self.use_bias = kernel, use_bias

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        w = self.weight
        factor, conv = 2, self.kernel
        if self.up:
            k = fir_on(self.resample_kernel, factor ** 2, x)
            p = (k.shape[0] - factor) - (conv - 1)
            # the transposed convolution of the flipped, transposed weight, stride 2
            wt = torch.flip(w, [2, 3]).transpose(0, 1)
            x = F.conv_transpose2d(x, wt, stride=factor, padding=0)
            x = upfirdn2d(x, k, pad=((p + 1) // 2 + factor - 1, p // 2 + 1))
        elif self.down:
            k = fir_on(self.resample_kernel, 1.0, x)
            p = (k.shape[0] - factor) + (conv - 1)
            x = F.conv2d(upfirdn2d(x, k, pad=((p + 1) // 2, p // 2)), w, stride=factor)
        else:
            x = F.conv2d(x, w, padding=conv // 2)
        return x + self.bias.view(1, -1, 1, 1) if self.use_bias else x


class GaussianFourierProjection(nn.Module):
    """Random Fourier features of log sigma; W is fixed (no gradient, not in the EMA)."""

    def __init__(self, embedding_size: int = 256, scale: float = 1.0):
        super().__init__()
        self.W = nn.Parameter(randn(embedding_size, scale=scale), requires_grad=False)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x_proj = x[:, None] * self.W[None, :].to(x.dtype) * 2 * np.pi
        return torch.cat([torch.sin(x_proj), torch.cos(x_proj)], dim=-1)


def timestep_embedding(timesteps: torch.Tensor, dim: int, max_positions: int = 10000) -> torch.Tensor:
    """DDPM's sinusoidal embedding of (discrete) timesteps."""
    half = dim // 2
    scale = math.log(max_positions) / (half - 1)
    freqs = torch.exp(torch.arange(half, dtype=torch.float32, device=timesteps.device) * -scale)
    emb = timesteps.float()[:, None] * freqs[None, :]
    emb = torch.cat([torch.sin(emb), torch.cos(emb)], dim=1)
    return F.pad(emb, (0, 1)) if dim % 2 == 1 else emb


class Combine(nn.Module):
    """A skip of the input pyramid: 1x1 conv of x, then concatenated to or summed with y."""

    def __init__(self, dim1: int, dim2: int, method: str = "cat"):
        super().__init__()
        self.Conv_0 = conv1x1(dim1, dim2)
        self.method = method

    def forward(self, x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        h = self.Conv_0(x)
        if self.method == "cat":
            return torch.cat([h, y], dim=1)
        return h + y


class AttnBlockpp(NormAct):
    """Self-attention over the pixels (DDPM's), skip rescaled by 1/sqrt(2) with skip_rescale."""

    act = None

    def __init__(self, channels: int, skip_rescale: bool = False):
        super().__init__()
        self.GroupNorm_0 = group_norm(channels)
        self.NIN_0, self.NIN_1, self.NIN_2, self.NIN_3 = (NIN(channels, channels) for _ in range(4))
        self.skip_rescale = skip_rescale

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        b, c, hh, ww = x.shape
        h = self.norm_act(self.GroupNorm_0, x, act=False)
        q, k, v = self.NIN_0(h), self.NIN_1(h), self.NIN_2(h)
        if self._fused():
            q, k, v = (t.reshape(b, c, hh * ww).transpose(1, 2) for t in (q, k, v))
            a = F.scaled_dot_product_attention(q, k, v)  # scale 1 / sqrt(c), as the original
            a = a.transpose(1, 2).reshape(b, c, hh, ww)
        else:
            w = torch.einsum("bchw,bcij->bhwij", q, k) * (int(c) ** (-0.5))
            w = F.softmax(w.reshape(b, hh, ww, hh * ww), dim=-1).reshape(b, hh, ww, hh, ww)
            a = torch.einsum("bhwij,bcij->bchw", w, v)
        h = self.NIN_3(a)
        return (x + h) / np.sqrt(2.0) if self.skip_rescale else x + h


class _Resample(nn.Module):
    """2x up- or down-sampling: FIR (optionally fused with a 3x3 convolution, `Conv2d_0`), or nearest / average
    pooling (optionally with a 3x3 convolution, `Conv_0`), as the original's Upsample / Downsample."""

    def __init__(self, in_ch: int, out_ch: int | None, with_conv: bool, fir: bool, fir_kernel, up: bool):
        super().__init__()
        out_ch = out_ch or in_ch
        if with_conv and not fir:
            self.Conv_0 = conv3x3(in_ch, out_ch) if up else conv3x3(in_ch, out_ch, stride=2, padding=0)
        elif with_conv:
            self.Conv2d_0 = FIRConv2d(in_ch, out_ch, 3, up=up, down=not up, resample_kernel=fir_kernel)
        self.fir, self.with_conv, self.fir_kernel = fir, with_conv, fir_kernel


class Upsample(_Resample):
    def __init__(self, in_ch: int, out_ch: int | None = None, with_conv: bool = False, fir: bool = False,
                 fir_kernel=(1, 3, 3, 1)):
        super().__init__(in_ch, out_ch, with_conv, fir, fir_kernel, up=True)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if not self.fir:
            h = F.interpolate(x, (x.shape[2] * 2, x.shape[3] * 2), mode="nearest")
            return self.Conv_0(h) if self.with_conv else h
        return self.Conv2d_0(x) if self.with_conv else upsample_2d(x, self.fir_kernel)


class Downsample(_Resample):
    def __init__(self, in_ch: int, out_ch: int | None = None, with_conv: bool = False, fir: bool = False,
                 fir_kernel=(1, 3, 3, 1)):
        super().__init__(in_ch, out_ch, with_conv, fir, fir_kernel, up=False)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if not self.fir:
            x = F.pad(x, (0, 1, 0, 1))
            return self.Conv_0(x) if self.with_conv else F.avg_pool2d(x, 2, stride=2)
        return self.Conv2d_0(x) if self.with_conv else downsample_2d(x, self.fir_kernel)


class ResnetBlockDDPMpp(NormAct):
    def __init__(self, act: nn.Module, in_ch: int, out_ch: int | None = None, temb_dim: int | None = None,
                 conv_shortcut: bool = False, dropout: float = 0.1, skip_rescale: bool = False):
        super().__init__()
        out_ch = out_ch or in_ch
        self.GroupNorm_0 = group_norm(in_ch)
        self.Conv_0 = conv3x3(in_ch, out_ch)
        if temb_dim is not None:
            self.Dense_0 = nn.Linear(temb_dim, out_ch)
        self.GroupNorm_1 = group_norm(out_ch)
        self.Dropout_0 = nn.Dropout(dropout)
        self.Conv_1 = conv3x3(out_ch, out_ch)
        if in_ch != out_ch:
            if conv_shortcut:
                self.Conv_2 = conv3x3(in_ch, out_ch)
            else:
                self.NIN_0 = NIN(in_ch, out_ch)
        self.skip_rescale, self.act, self.out_ch, self.conv_shortcut = skip_rescale, act, out_ch, conv_shortcut

    def forward(self, x: torch.Tensor, temb: torch.Tensor | None = None) -> torch.Tensor:
        h = self.Conv_0(self.norm_act(self.GroupNorm_0, x))
        e = self.Dense_0(self.act(temb)) if temb is not None else None
        h = self.Dropout_0(self.norm_act(self.GroupNorm_1, h, e))
        if x.shape[1] != self.out_ch:
            x = self.Conv_2(x) if self.conv_shortcut else self.NIN_0(x)
        return conv_add(self.Conv_1, h, x, SQRT2 if self.skip_rescale else 1.0)


class ResnetBlockBigGANpp(NormAct):
    def __init__(self, act: nn.Module, in_ch: int, out_ch: int | None = None, temb_dim: int | None = None,
                 up: bool = False, down: bool = False, dropout: float = 0.1, fir: bool = False,
                 fir_kernel=(1, 3, 3, 1), skip_rescale: bool = True):
        super().__init__()
        out_ch = out_ch or in_ch
        self.GroupNorm_0 = group_norm(in_ch)
        self.up, self.down, self.fir, self.fir_kernel = up, down, fir, fir_kernel
        self.Conv_0 = conv3x3(in_ch, out_ch)
        if temb_dim is not None:
            self.Dense_0 = nn.Linear(temb_dim, out_ch)
        self.GroupNorm_1 = group_norm(out_ch)
        self.Dropout_0 = nn.Dropout(dropout)
        self.Conv_1 = conv3x3(out_ch, out_ch)
        if in_ch != out_ch or up or down:
            self.Conv_2 = conv1x1(in_ch, out_ch)
        self.skip_rescale, self.act, self.in_ch, self.out_ch = skip_rescale, act, in_ch, out_ch

    def _resample(self, t: torch.Tensor) -> torch.Tensor:
        if self.up:
            if self.fir:
                return upsample_2d(t, self.fir_kernel)
            n, c, h, w = t.shape
            return t.reshape(n, c, h, 1, w, 1).repeat(1, 1, 1, 2, 1, 2).reshape(n, c, 2 * h, 2 * w)
        if self.down:
            if self.fir:
                return downsample_2d(t, self.fir_kernel)
            n, c, h, w = t.shape
            return t.reshape(n, c, h // 2, 2, w // 2, 2).mean(dim=(3, 5))
        return t

    def forward(self, x: torch.Tensor, temb: torch.Tensor | None = None) -> torch.Tensor:
        h = self._resample(self.norm_act(self.GroupNorm_0, x))
        x = self._resample(x)
        h = self.Conv_0(h)
        e = self.Dense_0(self.act(temb)) if temb is not None else None
        h = self.Dropout_0(self.norm_act(self.GroupNorm_1, h, e))
        if self.in_ch != self.out_ch or self.up or self.down:
            x = self.Conv_2(x)
        return conv_add(self.Conv_1, h, x, SQRT2 if self.skip_rescale else 1.0)
