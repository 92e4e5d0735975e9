"""Denoising score matching over a noise ladder (anneal_dsm_score_estimation of both originals).

x~ = x + sigma_y z, target = -(x~ - x) / sigma_y^2 = -z / sigma_y,
loss = mean_batch 1/2 ||s(x~, y) - target||^2 sigma_y^anneal_power (sum over pixels).
With anneal_power 2 the sigma^2 weight makes every level count alike.
"""

from __future__ import annotations

from collections.abc import Callable

import torch


def dsm_loss(score: Callable[[torch.Tensor, torch.Tensor], torch.Tensor], x: torch.Tensor,
             sigmas: torch.Tensor, labels: torch.Tensor | None = None, anneal_power: float = 2.0,
             noise: torch.Tensor | None = None, generator: torch.Generator | None = None,
             reduce: bool = True) -> torch.Tensor:
    """DSM loss of `score(x~, labels)`; labels ~ U{0..L-1} and noise ~ N(0, I) are drawn if not given.

    Draw order as in NCSNv2's loss: labels first, then the noise.
    """
    n = x.shape[0]
    if labels is None:
        labels = torch.randint(0, len(sigmas), (n,), device=x.device, generator=generator)
    used_sigmas = sigmas.to(x.device)[labels].view(n, *([1] * (x.dim() - 1)))
    if noise is None:
        noise = torch.randn(x.shape, device=x.device, dtype=x.dtype, generator=generator)
    noise = noise * used_sigmas
    perturbed = x + noise
    target = -1 / (used_sigmas ** 2) * noise
    scores = score(perturbed, labels)
    per_sample = 0.5 * ((scores.view(n, -1) - target.view(n, -1)) ** 2).sum(dim=-1)
    per_sample = per_sample * used_sigmas.view(n) ** anneal_power
    return per_sample.mean(dim=0) if reduce else per_sample
