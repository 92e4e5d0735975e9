"""Instance norm++ (NCSNv2) and conditional instance norm++ (NCSN v1) modules, as in the original code.

The math and its reference live in ncsn_fast/ops/instance_norm_plus.py. Parameter names and layouts match
the original checkpoints: NCSNv2 registers `alpha`, `gamma`, `beta`; NCSN v1 has one embedding of shape
(L, 3F) laid out [gamma|alpha|beta]. `backend` is 'torch' (the reference, bit-identical to the
original) unless set with `set_backend`; the fused op runs only when autograd is off.
"""

from __future__ import annotations

import torch
from torch import nn

from ..ops.instance_norm_plus import instance_norm_plus, instance_norm_plus_ref
from .init import normal_, randn


class Fusable(nn.Module):
    """A module that runs fused ops when `backend` is not 'torch' (set with `set_backend`) and autograd is
    off; otherwise PyTorch's code, as the original."""

    backend: str = "torch"

    def _fused(self) -> bool:
        return self.backend != "torch" and not torch.is_grad_enabled()


class _NormPlus(Fusable):

    def _norm(self, x, gamma, alpha, beta, elu: bool) -> torch.Tensor:
        if self._fused():
            return instance_norm_plus(x, gamma, alpha, beta, elu=elu, backend=self.backend)
        out = instance_norm_plus_ref(x, gamma, alpha, beta)
        return torch.nn.functional.elu(out) if elu else out

    def forward_act(self, x: torch.Tensor, y: torch.Tensor | None, act: nn.Module) -> torch.Tensor:
        """act(norm(x, y)), with an ELU fused into the norm when the fused op runs."""
        if self._fused() and isinstance(act, nn.ELU) and act.alpha == 1.0:
            return self(x, y, elu=True)
        return act(self(x, y))


class InstanceNorm2dPlus(_NormPlus):
    """NCSNv2 InstanceNorm2dPlus (unconditional); `y` is accepted and ignored so blocks share code."""

    def __init__(self, num_features: int, num_classes: int | None = None):
        super().__init__()
        self.num_features = num_features
        self.alpha = nn.Parameter(normal_(torch.empty(num_features), 1, 0.02))
        self.gamma = nn.Parameter(normal_(torch.empty(num_features), 1, 0.02))
        self.beta = nn.Parameter(torch.zeros(num_features))

    def forward(self, x: torch.Tensor, y: torch.Tensor | None = None, elu: bool = False) -> torch.Tensor:
        return self._norm(x, self.gamma, self.alpha, self.beta, elu)


class ConditionalInstanceNorm2dPlus(_NormPlus):
    """NCSN v1 ConditionalInstanceNorm2dPlus: gamma, alpha, beta picked by the noise-level label y."""

    def __init__(self, num_features: int, num_classes: int):
        super().__init__()
        self.num_features = num_features
        # nn.Embedding's own initialisation (normal_(0, 1)), then the original's: the same draws, in the same order
        self.embed = nn.Embedding(num_classes, num_features * 3, _weight=randn(num_classes, num_features * 3))
        normal_(self.embed.weight[:, : 2 * num_features], 1, 0.02)
        with torch.no_grad():
            self.embed.weight[:, 2 * num_features:].zero_()

    def forward(self, x: torch.Tensor, y: torch.Tensor, elu: bool = False) -> torch.Tensor:
        gamma, alpha, beta = self.embed(y).chunk(3, dim=-1)
        return self._norm(x, gamma, alpha, beta, elu)


def set_backend(model: nn.Module, backend: str, fuse_elu: bool | None = None) -> nn.Module:
    """Run `model`'s fused ops (instance norm++ with its ELU, CRP pooling, the other ELUs as fuse_elu says:
    None = on the CPU only, see layers._Fusable) on `backend` ('auto', 'cpu', 'cuda', 'triton'), or PyTorch's
    code ('torch', the default) -- fused only without autograd."""
    for m in model.modules():
        if isinstance(m, Fusable):
            m.backend = backend
            if hasattr(m, "fuse_elu"):
                m.fuse_elu = fuse_elu
    return model
