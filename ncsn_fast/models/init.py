"""Parameter initialisation that building a network on the meta device (for its shapes: every checkpoint load)
does not pay for: PyTorch's meta `normal_` imports torch._dynamo (~2 s) and its meta `randn` sympy (~0.6 s),
while a meta tensor has no values to draw. On a real device the same draws as `normal_` / `randn`, bit for bit."""

from __future__ import annotations

import torch


def normal_(t: torch.Tensor, mean: float = 0.0, std: float = 1.0) -> torch.Tensor:
    """t.normal_(mean, std) in place (no autograd), nothing on the meta device; returns t."""
    if not t.is_meta:
        with torch.no_grad():
            t.normal_(mean, std)
    return t


def randn(*size: int, scale: float = 1.0) -> torch.Tensor:
    """torch.randn(*size) * scale (the same draws, the same bits), empty on the meta device (where even the product
    would import torch._dynamo)."""
    t = torch.empty(*size)
    return t if t.is_meta else normal_(t) * scale
