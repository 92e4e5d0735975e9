"""The networks' convolution: nn.Conv2d (same parameters, same names) whose 3x3 stride-1 'same' convolutions run
the conv3x3 op (Winograd on the CPU, ncsn_fast/ops/conv3x3.py) when fused, with a residual add and the ELU that
follows in the same pass.

The transformed weights are kept on the module and redone when the weight changes (its storage or version); under
torch.compile the op itself checks the weight's version against theirs (and transforms again if it moved).
"""

from __future__ import annotations

import torch
from torch import nn

from ..ops.conv3x3 import conv3x3_op, why_not_winograd, winograd_pays, winograd_weights
from .norms import Fusable


class Conv2d(nn.Conv2d, Fusable):
    """nn.Conv2d; forward(x, residual, act, divisor) = act((conv(x) [+ residual]) / divisor), fused (see the module
    docstring) when the backend is not 'torch', autograd is off, the op takes the shapes, dtype and layout, there
    are tiles enough, and filled enough, for it to pay (ops/conv3x3.py: winograd_pays) and act is None or an ELU
    with alpha 1; otherwise PyTorch's convolution, then the rest."""

    _winograd: tuple | None = None  # ((weight's storage, version), transformed weights)
    _decided: tuple | None = None  # (what fuses() depends on, its answer): the last input's, kept

    def fuses(self, x: torch.Tensor) -> bool:
        """Whether forward(x, ...) runs the conv3x3 op (and so takes an ELU into its pass). Decided once per input
        shape, dtype, device and layout, backend and weight, and kept: the checks cost more than a small
        convolution (NCSNv2 digits forward at batch 2: 9.6-9.8 -> 8.5-9.0 ms, best of 30 interleaved rounds, two
        runs; at batch 64 within noise)."""
        if not self._fused():
            return False
        if torch.compiler.is_compiling():  # no state while traced
            return self._decide(x)
        w = self.weight
        key = (x.shape, x.dtype, x.device, x.is_contiguous(memory_format=torch.channels_last), self.backend,
               w.shape, w.dtype, w.device)
        decided = self._decided  # read once: another thread may replace it meanwhile
        if decided is None or decided[0] != key:
            decided = self._decided = (key, self._decide(x))
        return decided[1]

    def _decide(self, x: torch.Tensor) -> bool:
        d = self.dilation[0]
        return (self.kernel_size == (3, 3) and self.stride == (1, 1) and self.padding == (d, d)
                and self.dilation == (d, d) and self.groups == 1 and self.padding_mode == "zeros"
                and why_not_winograd(x, self.weight, d, self.backend) is None and winograd_pays(x, d))

    def _u(self) -> tuple[torch.Tensor, int]:
        """The transformed weights and the weight's version they were made at (-1: made now, in the graph)."""
        if torch.compiler.is_compiling():  # no state while traced: the transform kept before, checked in the op
            if self._winograd is None:
                return winograd_weights(self.weight), -1
            return self._winograd[1], self._winograd[0][1]
        key = (self.weight.data_ptr(), self.weight._version)
        if self._winograd is None or self._winograd[0] != key:
            self._winograd = (key, winograd_weights(self.weight))
        return self._winograd[1], key[1]

    def prepare(self) -> None:
        """Transform the weights now (before torch.compile traces the module), where the op could take them."""
        w = self.weight
        if self.kernel_size == (3, 3) and w.device.type == "cpu" and w.dtype == torch.float32 and w.shape[0] % 8 == 0 \
                and w.shape[1] % 8 == 0 and self.groups == 1:
            with torch.no_grad():
                self._u()

    def forward(self, x: torch.Tensor, residual: torch.Tensor | None = None, act: nn.Module | None = None,
                divisor: float = 1.0) -> torch.Tensor:
        elu = isinstance(act, nn.ELU) and act.alpha == 1.0
        same = residual is None or residual.shape == (x.shape[0], self.out_channels, *x.shape[2:])  # else: broadcast
        if (act is None or elu) and same and self.fuses(x):
            u, version = self._u()  # fuses() checked what conv3x3() would: the op directly
            return conv3x3_op(x, self.weight, u, self.bias, residual, self.dilation[0], elu, float(divisor), version,
                              "cpu")
        out = super().forward(x)
        out = out if residual is None else residual + out
        out = out if divisor == 1.0 else out / divisor
        return out if act is None else act(out)


def conv_add(conv: nn.Module, h: torch.Tensor, residual: torch.Tensor, divisor: float = 1.0) -> torch.Tensor:
    """(residual + conv(h)) / divisor, in one pass where `conv` is ours."""
    if isinstance(conv, Conv2d):
        return conv(h, residual=residual, divisor=divisor)
    out = residual + conv(h)
    return out if divisor == 1.0 else out / divisor


def prepare_convs(model: nn.Module) -> None:
    """Transform every conv3x3-able weight of `model` now: torch.compile then finds them kept."""
    for m in model.modules():
        if isinstance(m, Conv2d):
            m.prepare()


def adopt_convs(model: nn.Module) -> int:
    """Make every plain nn.Conv2d in `model` one of ours (the same object, parameters and names: its class
    changes, nothing else). Returns how many."""
    count = 0
    for m in model.modules():
        if type(m) is nn.Conv2d:
            m.__class__ = Conv2d
            count += 1
    return count
