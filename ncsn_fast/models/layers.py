"""Building blocks of the NCSN / NCSNv2 RefineNets, with the original parameter names.

One set of blocks serves both families: every block takes (x, y); `norm` is a norm class taking
(features, num_classes) whose forward takes (x, y) (NCSNv2's ignores y), or None where NCSNv2's
RefineNet has no normalisation. The op order follows the originals so results match bit for bit.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

import torch
import torch.nn.functional as F
from torch import nn

from ..ops.elu import elu
from ..ops.pool import pool5x5, pool5x5_ref
from .conv import Conv2d, conv_add
from .norms import Fusable


class _Fusable(Fusable):
    """A block whose pooling (and its other ELUs: fuse_elu) run as fused ops (see Fusable).

    fuse_elu None (the default): the elu op on the CPU only. Measured: on the project's CPU it runs 2.4x
    PyTorch's ELU and the NCSNv2 forward (ngf 32, batch 64, channels_last) went from 526 to 508 ms median
    (benchmarks/forward_ab.py); on an H200, called from Python between the convolutions, it made the forward
    slower (6.47 -> 9.57 ms at batch 1, benchmarks/results/forward_nvidia-h200.md). True / False force it."""

    fuse_elu: bool | None = None

    def _act(self, x: torch.Tensor) -> torch.Tensor:
        act = self.act
        on = self.fuse_elu if self.fuse_elu is not None else x.device.type == "cpu"
        if on and self._fused() and isinstance(act, nn.ELU) and act.alpha == 1.0:
            return elu(x, backend=self.backend)
        return act(x)

    def _conv_act(self, conv: nn.Module, x: torch.Tensor) -> torch.Tensor:
        """act(conv(x)), the ELU inside the convolution's pass where it runs the conv3x3 op (models/conv.py)."""
        act = self.act
        if isinstance(conv, Conv2d) and isinstance(act, nn.ELU) and act.alpha == 1.0 and conv.fuses(x):
            return conv(x, act=act)
        return self._act(conv(x))

NormFactory = Callable[[int, int], nn.Module]


def conv3x3(cin: int, cout: int, bias: bool = True, dilation: int = 1) -> Conv2d:
    return Conv2d(cin, cout, 3, stride=1, padding=dilation, dilation=dilation, bias=bias)


def conv1x1(cin: int, cout: int, bias: bool = True) -> Conv2d:
    return Conv2d(cin, cout, 1, stride=1, padding=0, bias=bias)


def mean_pool_2x2(x: torch.Tensor) -> torch.Tensor:
    """Mean of the four stride-2 sub-grids, summed in the original order."""
    return sum([x[:, :, ::2, ::2], x[:, :, 1::2, ::2], x[:, :, ::2, 1::2], x[:, :, 1::2, 1::2]]) / 4.0


class ConvMeanPool(nn.Module):
    """Convolution (stride 1, same padding) followed by 2x2 mean pooling."""

    def __init__(self, cin: int, cout: int, kernel_size: int = 3):
        super().__init__()
        self.conv = Conv2d(cin, cout, kernel_size, stride=1, padding=kernel_size // 2, bias=True)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return mean_pool_2x2(self.conv(x))


class ResidualBlock(nn.Module):
    """norm1 -> act -> conv1 -> norm2 -> act -> conv2, plus a shortcut.

    resample='down' halves the resolution with ConvMeanPool, unless dilated: a dilated 'down' block
    keeps the resolution (dilated convolutions everywhere, a dilated 3x3 shortcut). Registration
    order (conv1, normalize2, conv2, shortcut, normalize1) is the original's, so state_dict keys
    come out in the same order.
    """

    def __init__(self, cin: int, cout: int, num_classes: int, norm: NormFactory, act: nn.Module,
                 resample: str | None = None, dilation: int | None = None):
        super().__init__()
        self.act = act
        self.has_shortcut = cout != cin or resample is not None
        d = dilation or 1
        if resample == "down":
            self.conv1 = conv3x3(cin, cin, dilation=d)
            self.normalize2 = norm(cin, num_classes)
            if dilation is not None:
                self.conv2 = conv3x3(cin, cout, dilation=d)
                shortcut = conv3x3(cin, cout, dilation=d)
            else:
                self.conv2 = ConvMeanPool(cin, cout, 3)
                shortcut = ConvMeanPool(cin, cout, 1)
        elif resample is None:
            self.conv1 = conv3x3(cin, cout, dilation=d)
            self.normalize2 = norm(cout, num_classes)
            self.conv2 = conv3x3(cout, cout, dilation=d)
            shortcut = conv3x3(cin, cout, dilation=d) if dilation is not None else conv1x1(cin, cout)
        else:
            raise ValueError(f"invalid resample value {resample!r}")
        if self.has_shortcut:
            self.shortcut = shortcut
        self.normalize1 = norm(cin, num_classes)

    def forward(self, x: torch.Tensor, y: torch.Tensor | None) -> torch.Tensor:
        out = self.conv1(self.normalize1.forward_act(x, y, self.act))
        shortcut = self.shortcut(x) if self.has_shortcut else x
        return conv_add(self.conv2, self.normalize2.forward_act(out, y, self.act), shortcut)


class RCUBlock(_Fusable):
    """Residual conv units: n_blocks x (n_stages x ([norm] -> act -> 3x3 conv without bias) + x)."""

    def __init__(self, features: int, n_blocks: int, n_stages: int, num_classes: int,
                 norm: NormFactory | None, act: nn.Module):
        super().__init__()
        self.n_blocks, self.n_stages, self.act = n_blocks, n_stages, act
        self.has_norm = norm is not None
        for i in range(1, n_blocks + 1):
            for j in range(1, n_stages + 1):
                if norm is not None:
                    setattr(self, f"{i}_{j}_norm", norm(features, num_classes))
                setattr(self, f"{i}_{j}_conv", conv3x3(features, features, bias=False))

    def forward(self, x: torch.Tensor, y: torch.Tensor | None) -> torch.Tensor:
        for i in range(1, self.n_blocks + 1):
            residual = x
            for j in range(1, self.n_stages + 1):
                conv = getattr(self, f"{i}_{j}_conv")
                if self.has_norm:
                    x = getattr(self, f"{i}_{j}_norm").forward_act(x, y, self.act)
                elif j == 1:
                    x = self._act(x)
                if j == self.n_stages:
                    x = conv_add(conv, x, residual)
                else:  # without norms, the next stage's act follows this conv: in its pass where fused
                    x = conv(x) if self.has_norm else self._conv_act(conv, x)
        return x


class MSFBlock(nn.Module):
    """Multi-resolution fusion: per input [norm] -> 3x3 conv -> bilinear resize (align_corners) -> sum."""

    def __init__(self, in_planes: Sequence[int], features: int, num_classes: int,
                 norm: NormFactory | None):
        super().__init__()
        self.features = features
        self.convs = nn.ModuleList([conv3x3(c, features, bias=True) for c in in_planes])
        if norm is not None:
            self.norms = nn.ModuleList([norm(c, num_classes) for c in in_planes])
        self.has_norm = norm is not None

    def forward(self, xs: Sequence[torch.Tensor], y: torch.Tensor | None, shape) -> torch.Tensor:
        # zeros in the inputs' memory format, so that a channels_last forward stays channels_last (the sum
        # starts from 0 as the original's does: same values either way)
        fmt = (torch.channels_last if xs[0].is_contiguous(memory_format=torch.channels_last)
               and not xs[0].is_contiguous() else torch.contiguous_format)
        sums = torch.empty(xs[0].shape[0], self.features, *shape, device=xs[0].device, dtype=xs[0].dtype,
                           memory_format=fmt).zero_()
        for i, x in enumerate(xs):
            h = self.norms[i](x, y) if self.has_norm else x
            h = F.interpolate(self.convs[i](h), size=shape, mode="bilinear", align_corners=True)
            sums = sums + h
        return sums


class CRPBlock(_Fusable):
    """Chained residual pooling: act, then n_stages x ([norm] -> 5x5 pool stride 1 -> conv), summed.

    NCSNv2 uses max pooling without norms; NCSN v1 uses average pooling (count_include_pad) with norms.
    Fused (see _Fusable): the pool5x5 op (no indices; max bit-identical, average summed in PyTorch's order)
    and the elu op.
    """

    def __init__(self, features: int, n_stages: int, num_classes: int, norm: NormFactory | None,
                 act: nn.Module, pool: str):
        super().__init__()
        self.act, self.n_stages, self.pool = act, n_stages, pool
        self.convs = nn.ModuleList([conv3x3(features, features, bias=False) for _ in range(n_stages)])
        if norm is not None:
            self.norms = nn.ModuleList([norm(features, num_classes) for _ in range(n_stages)])
        self.has_norm = norm is not None

    def _pool(self, x: torch.Tensor) -> torch.Tensor:
        # On the CPU, channels_last: our max pooling is separable (3.5x PyTorch's, 64 x 32 x 32 x 32 float32 on
        # the AVX2 EPYC: 2.6 vs 8.9 ms); PyTorch's average pooling is vectorised and as fast as ours there.
        cpu_nhwc_avg = x.device.type == "cpu" and not x.is_contiguous() and self.pool == "avg"
        if self._fused() and not cpu_nhwc_avg:
            return pool5x5(x, self.pool, backend=self.backend)
        return pool5x5_ref(x, self.pool)

    def forward(self, x: torch.Tensor, y: torch.Tensor | None) -> torch.Tensor:
        x = self._act(x)
        path = x
        for i in range(self.n_stages):
            if self.has_norm:
                path = self.norms[i](path, y)
            if i == self.n_stages - 1:  # the last path is only added: in the convolution's pass where fused
                return conv_add(self.convs[i], self._pool(path), x)
            path = self.convs[i](self._pool(path))
            x = path + x
        return x


class RefineBlock(nn.Module):
    """RefineNet block: adapt each input with 2 RCUs, fuse (MSF), pool (CRP), output RCU(s)."""

    def __init__(self, in_planes: Sequence[int], features: int, num_classes: int,
                 norm: NormFactory | None, act: nn.Module, pool: str, start: bool = False,
                 end: bool = False):
        super().__init__()
        self.n_blocks = len(in_planes)
        self.adapt_convs = nn.ModuleList(
            [RCUBlock(c, 2, 2, num_classes, norm, act) for c in in_planes])
        self.output_convs = RCUBlock(features, 3 if end else 1, 2, num_classes, norm, act)
        if not start:
            self.msf = MSFBlock(in_planes, features, num_classes, norm)
        self.crp = CRPBlock(features, 2, num_classes, norm, act, pool)

    def forward(self, xs: Sequence[torch.Tensor], y: torch.Tensor | None, shape) -> torch.Tensor:
        hs = [adapt(x, y) for adapt, x in zip(self.adapt_convs, xs)]
        h = self.msf(hs, y, shape) if self.n_blocks > 1 else hs[0]
        return self.output_convs(self.crp(h, y), y)
