"""Instance norm++ (NCSNv2) and conditional instance norm++ (NCSN v1), as in the original code.

out = gamma_c * ((x - mu_nc) / sqrt(v_nc + eps) + alpha_c * m_nc) + beta_c, where mu_nc, v_nc are
the per-plane mean and biased variance and m_nc = (mu_nc - mean_c mu) / sqrt(var_c mu + eps) are the
plane means standardised across channels with the *unbiased* variance. eps = 1e-5. Statistics are
always per instance (also in eval). Parameter names and layouts match the original checkpoints:
v2 registers `alpha`, `gamma`, `beta`; v1 has one embedding of shape (L, 3F) laid out [gamma|alpha|beta].
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

EPS = 1e-5


def _standardised_means(x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Per-plane means (N, C) and the same standardised across channels, in the original op order."""
    means = torch.mean(x, dim=(2, 3))
    m = torch.mean(means, dim=-1, keepdim=True)
    v = torch.var(means, dim=-1, keepdim=True)
    return means, (means - m) / torch.sqrt(v + EPS)


def instance_norm_plus_ref(x: torch.Tensor, gamma: torch.Tensor, alpha: torch.Tensor,
                           beta: torch.Tensor) -> torch.Tensor:
    """Reference instance norm++; gamma/alpha/beta are (C,) or per sample (N, C)."""
    _, m_hat = _standardised_means(x)
    h = F.instance_norm(x, eps=EPS)
    n, c = x.shape[:2]
    h = h + m_hat[..., None, None] * alpha.view(-1, c, 1, 1)
    return gamma.view(-1, c, 1, 1) * h + beta.view(-1, c, 1, 1)


class InstanceNorm2dPlus(nn.Module):
    """NCSNv2 InstanceNorm2dPlus (unconditional); `y` is accepted and ignored so blocks share code."""

    def __init__(self, num_features: int, num_classes: int | None = None):
        super().__init__()
        self.num_features = num_features
        self.alpha = nn.Parameter(torch.empty(num_features).normal_(1, 0.02))
        self.gamma = nn.Parameter(torch.empty(num_features).normal_(1, 0.02))
        self.beta = nn.Parameter(torch.zeros(num_features))

    def forward(self, x: torch.Tensor, y: torch.Tensor | None = None) -> torch.Tensor:
        return instance_norm_plus_ref(x, self.gamma, self.alpha, self.beta)


class ConditionalInstanceNorm2dPlus(nn.Module):
    """NCSN v1 ConditionalInstanceNorm2dPlus: gamma, alpha, beta picked by the noise-level label y."""

    def __init__(self, num_features: int, num_classes: int):
        super().__init__()
        self.num_features = num_features
        self.embed = nn.Embedding(num_classes, num_features * 3)
        with torch.no_grad():
            self.embed.weight[:, : 2 * num_features].normal_(1, 0.02)
            self.embed.weight[:, 2 * num_features:].zero_()

    def forward(self, x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        gamma, alpha, beta = self.embed(y).chunk(3, dim=-1)
        return instance_norm_plus_ref(x, gamma, alpha, beta)
