"""conv3x3: a 3x3 convolution (stride 1, padding = dilation) with its bias, an optional residual add, an optional
division and an optional ELU (alpha 1) after it.

out = [elu of] (conv2d(x, weight, bias, padding=d, dilation=d) [+ residual]) / divisor

On the CPU (float32, channels_last, in- and out-channels multiples of 8) by Winograd's F(4x4, 3x3)
(csrc/conv_winograd_cpu.cpp): 36 products per 4x4 output tile and channel pair where the direct convolution takes
144, so it runs ahead of oneDNN's direct convolution on CPUs without Winograd of their own (measured 1.5-2.3x on
the RefineNets' shapes, AVX2; benchmarks in the README). The weights are transformed once (U = G w G^T, packed in
panels of 16 output channels, 36 x ceil(co / 16) x ci x 16, `winograd_weights`) and kept by the module that owns
them. Rounding: about ten times the direct
convolution's (the transforms' constants reach 8 and 1/24), ~1e-6 of the output's scale in float32. The
residual, the division and the ELU are applied in the same pass (the RefineNets' `shortcut + conv(h)` and their
`act(conv(x))` in the RCUs, the ELU the elu op's, ~2 ulp; NCSN++'s `(x + conv(h)) / sqrt(2)`). 'torch' is the
reference (PyTorch's convolution, the add, the division, F.elu). Inference only (no autograd).
"""

from __future__ import annotations

import torch
import torch.nn.functional as F

from . import _backends

# F(4x4, 3x3)'s kernel transform (Lavin & Gray 2016), in float64.
G = torch.tensor([[1 / 4, 0, 0], [-1 / 6, -1 / 6, -1 / 6], [-1 / 6, 1 / 6, -1 / 6], [1 / 24, 1 / 12, 1 / 6],
                  [1 / 24, -1 / 12, 1 / 6], [0, 0, 1]], dtype=torch.float64)
BACKENDS = ("cpu", "torch")


def conv3x3_ref(x: torch.Tensor, weight: torch.Tensor, bias: torch.Tensor | None, dilation: int,
                residual: torch.Tensor | None = None, elu: bool = False, divisor: float = 1.0) -> torch.Tensor:
    out = F.conv2d(x, weight, bias, padding=dilation, dilation=dilation)
    out = out if residual is None else residual + out
    out = out if divisor == 1.0 else out / divisor
    return F.elu(out) if elu else out


PANEL = 16  # output channels per panel of the transformed weights (kPanel in csrc/conv_winograd_cpu.cpp)


def winograd_shape(co: int, ci: int) -> tuple[int, int, int, int]:
    """The transformed weights' shape for a (co, ci, 3, 3) kernel: (36, ceil(co / 16), ci, 16)."""
    return 36, -(-co // PANEL), ci, PANEL


def winograd_weights_ref(weight: torch.Tensor) -> torch.Tensor:
    """U[a * 6 + b, o // 16, c, o % 16] = (G w[o, c] G^T)[a, b] in float64, rounded once to float32, zeros past
    the last output channel: (36, ceil(co / 16), ci, 16)."""
    co, ci = weight.shape[:2]
    _, panels, _, _ = winograd_shape(co, ci)
    u = torch.einsum("ai,ocij,bj->abco", G, weight.double(), G).reshape(36, ci, co)
    u = F.pad(u, (0, panels * PANEL - co))  # zeros past co
    return u.reshape(36, ci, panels, PANEL).transpose(1, 2).float().contiguous()


# Below this many 4x4 output tiles the transformed weights (4x the kernel's size, read once per call) cost more
# than the products they save: (1, 256, 4, 4) -> 256 ran 0.6x oneDNN's direct convolution, (8, 256, 4, 4) 1.1x.
MIN_TILES = 8
# Nor where the tiles are mostly outside the image: a dilation near the image's size leaves sub-grids smaller than
# a tile ((64, 32, 8, 8) at dilation 4: 2x2 outputs per 4x4 tile, 0.44x oneDNN).
MIN_FILL = 0.5


def winograd_tiles(x: torch.Tensor, dilation: int) -> int:
    """How many 4x4 output tiles the CPU kernel lays on x (per sample, per dilated sub-grid)."""
    n, _, h, w = x.shape
    sub_h, sub_w = -(-h // dilation), -(-w // dilation)
    return n * dilation * dilation * -(-sub_h // 4) * -(-sub_w // 4)


def winograd_pays(x: torch.Tensor, dilation: int) -> bool:
    """Whether the CPU kernel is worth it on x: tiles enough (MIN_TILES), filled enough (MIN_FILL)."""
    tiles = winograd_tiles(x, dilation)
    return tiles >= MIN_TILES and x.shape[0] * x.shape[2] * x.shape[3] >= MIN_FILL * 16 * tiles


def why_not_winograd(x: torch.Tensor, weight: torch.Tensor, dilation: int, backend: str = "auto") -> str | None:
    """None if the CPU kernel takes this convolution (on `backend`: 'auto' or 'cpu'), else why not."""
    if backend not in ("auto", "cpu"):
        return f"backend {backend!r}: the CPU kernel runs on 'auto' or 'cpu'"
    if x.device.type != "cpu":
        return f"x is on {x.device}, not the CPU"
    if x.dtype != torch.float32 or weight.dtype != torch.float32:
        return f"float32 only (x {x.dtype}, weight {weight.dtype})"
    if x.dim() != 4 or not x.is_contiguous(memory_format=torch.channels_last):
        return "x must be a channels_last (N, C, H, W) tensor"
    if tuple(weight.shape[2:]) != (3, 3) or weight.shape[1] != x.shape[1]:
        return f"weight must be (out, {x.shape[1]}, 3, 3), got {tuple(weight.shape)}"
    if x.shape[1] % 8 or weight.shape[0] % 8:
        return f"in- and out-channels must be multiples of 8 (got {x.shape[1]}, {weight.shape[0]})"
    if dilation < 1:
        return f"dilation must be >= 1, got {dilation}"
    if _backends.choose("auto", x.device, BACKENDS) != "cpu":  # decided once under torch.compile
        return _backends.why_not("cpu", x.device)
    return None


@_backends.fused_op("ncsn_fast::winograd_weights", mutates_args=())
def _winograd_weights_op(weight: torch.Tensor) -> torch.Tensor:
    co, ci = weight.shape[:2]
    w = weight.detach().float().contiguous()
    u = torch.empty(winograd_shape(co, ci), dtype=torch.float32)
    _backends.ext().winograd_weights_cpu(w.data_ptr(), u.data_ptr(), co, ci)
    return u


@_winograd_weights_op.register_fake
def _(weight):
    return weight.new_empty(winograd_shape(weight.shape[0], weight.shape[1]))


def winograd_weights(weight: torch.Tensor) -> torch.Tensor:
    """The transformed kernel (36, ceil(co / 16), ci, 16) float32 of a (co, ci, 3, 3) CPU weight, for
    conv3x3(u=...)."""
    if weight.dim() != 4 or tuple(weight.shape[2:]) != (3, 3) or weight.device.type != "cpu":
        raise ValueError(f"weight must be a (out, in, 3, 3) CPU tensor, got {tuple(weight.shape)} on "
                         f"{weight.device}")
    return _winograd_weights_op(weight)


@_backends.fused_op("ncsn_fast::conv3x3", mutates_args=())
def conv3x3_op(x: torch.Tensor, weight: torch.Tensor, u: torch.Tensor, bias: torch.Tensor | None,
                residual: torch.Tensor | None, dilation: int, elu: bool, divisor: float, u_version: int,
                backend: str) -> torch.Tensor:
    if backend == "torch":
        out = conv3x3_ref(x, weight, bias, dilation, residual, elu, divisor)
        return out.contiguous(memory_format=torch.channels_last)
    if backend != "cpu":
        raise ValueError(f"conv3x3: no {backend!r} implementation")
    n, ci, h, w = x.shape
    co = weight.shape[0]
    if u_version >= 0 and weight._version != u_version:  # changed in place since u was made (a compiled graph
        u = _winograd_weights_op(weight)                 # holds u from before): transform it again
    out = torch.empty(n, co, h, w, dtype=torch.float32, memory_format=torch.channels_last)
    b = None if bias is None else bias.detach().float().contiguous()
    r = None if residual is None else residual.float().contiguous(memory_format=torch.channels_last)
    _backends.ext().conv3x3_winograd_cpu(x.data_ptr(), u.data_ptr(), 0 if b is None else b.data_ptr(),
                                         0 if r is None else r.data_ptr(), divisor, elu, out.data_ptr(), n, h, w,
                                         ci, co, dilation)
    return out


@conv3x3_op.register_fake
def _(x, weight, u, bias, residual, dilation, elu, divisor, u_version, backend):
    n, _, h, w = x.shape
    return x.new_empty(n, weight.shape[0], h, w).contiguous(memory_format=torch.channels_last)


def conv3x3(x: torch.Tensor, weight: torch.Tensor, bias: torch.Tensor | None = None, dilation: int = 1,
            residual: torch.Tensor | None = None, u: torch.Tensor | None = None, elu: bool = False,
            divisor: float = 1.0, backend: str = "auto", u_version: int = -1) -> torch.Tensor:
    """[elu of] (conv2d(x, weight, bias, padding=dilation, dilation=dilation) [+ residual]) / divisor, channels_last
    out.
    `u`: winograd_weights(weight), when the caller keeps it (else transformed on each call); `u_version`: the
    weight's `_version` when u was made (the op transforms again if the weight changed since; -1: not checked)."""
    chosen = _backends.choose(backend, x.device, BACKENDS)
    if chosen == "cpu":
        reason = why_not_winograd(x, weight, dilation)
        if reason is not None:
            raise ValueError(f"conv3x3 on the CPU backend: {reason}")
        if residual is not None and residual.shape != (x.shape[0], weight.shape[0], *x.shape[2:]):
            raise ValueError(f"residual must have shape {(x.shape[0], weight.shape[0], *x.shape[2:])}, got "
                             f"{tuple(residual.shape)}")
        if u is None:
            u = winograd_weights(weight)
    else:
        u = weight.new_empty(0)
    return conv3x3_op(x, weight, u, bias, residual, dilation, elu, float(divisor), u_version, chosen)
