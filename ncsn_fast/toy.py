"""The NCSN paper's 2-D check: a two-component Gaussian mixture with its exact score at every sigma.

p = 1/5 N((-5,-5), I) + 4/5 N((5,5), I). Blurred by N(0, sigma^2 I) each component becomes
N(mu_k, (1 + sigma^2) I), so the score is known in closed form. Plain Langevin at a small sigma
cannot move mass between the far-apart modes and ends near 50/50 (the weights of the uniform start);
annealed Langevin recovers 1/5 : 4/5 (Song & Ermon 2019, figure 3).
"""

from __future__ import annotations

from dataclasses import dataclass

import torch

from .config import sigma_ladder
from .sampling import anneal_langevin, torch_noise


@dataclass(frozen=True)
class GaussianMixture2D:
    weights: tuple[float, ...] = (0.2, 0.8)
    means: tuple[tuple[float, float], ...] = ((-5.0, -5.0), (5.0, 5.0))
    std: float = 1.0

    def score(self, x: torch.Tensor, sigma: float) -> torch.Tensor:
        """grad_x log p_sigma(x), exact: a responsibility-weighted pull towards each mean."""
        mu = torch.tensor(self.means, dtype=x.dtype, device=x.device)  # (K, 2)
        logw = torch.tensor(self.weights, dtype=x.dtype, device=x.device).log()
        var = self.std ** 2 + sigma ** 2
        diff = mu[None] - x[:, None]  # (N, K, 2)
        logits = logw - 0.5 * (diff ** 2).sum(-1) / var
        resp = torch.softmax(logits, dim=1)  # (N, K)
        return (resp[..., None] * diff).sum(1) / var

    def sample(self, n: int, generator: torch.Generator | None = None) -> torch.Tensor:
        k = torch.multinomial(torch.tensor(self.weights), n, replacement=True, generator=generator)
        mu = torch.tensor(self.means)[k]
        return mu + self.std * torch.randn(n, 2, generator=generator)

    def mode_fraction(self, x: torch.Tensor, mode: int = 0) -> float:
        """Share of points closest to means[mode]."""
        mu = torch.tensor(self.means, dtype=x.dtype)
        return float(((x[:, None] - mu[None]).pow(2).sum(-1).argmin(1) == mode).float().mean())


def run_toy(n: int = 6000, seed: int = 0, annealed: bool = True, mixture: GaussianMixture2D | None = None,
            ) -> torch.Tensor:
    """The paper's settings: start U[-8, 8]^2; annealed: 10 levels 20 -> 1, 100 steps each,
    eps_i = 0.1 (sigma_i/sigma_L)^2; plain: sigma = 1, eps = 0.1, 1000 steps.
    The paper's eps/2 score + sqrt(eps) z is our alpha score + sqrt(2 alpha) z with alpha = eps/2."""
    mixture = mixture or GaussianMixture2D()
    g = torch.Generator().manual_seed(seed)
    x0 = torch.rand(n, 2, generator=g, dtype=torch.float64) * 16 - 8
    if annealed:
        sigmas, steps = sigma_ladder(20.0, 1.0, 10), 100
    else:
        sigmas, steps = torch.tensor([1.0], dtype=torch.float64), 1000

    def score(x, level):
        return mixture.score(x, float(sigmas[level]))

    return anneal_langevin(score, x0, sigmas, n_steps_each=steps, step_lr=0.05, noise=torch_noise(g))
