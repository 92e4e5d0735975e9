"""The predictor-corrector sampler of score SDEs (Song et al. 2021, "Score-Based Generative Modeling through
Stochastic Differential Equations", Algorithm 2 for the variance-exploding SDE): at each sigma_i, Langevin
corrector steps with a step size set by a target signal-to-noise ratio, then a reverse-diffusion predictor
step to sigma_{i+1} (sigma_N = 0).

    corrector: eps = 2 (snr ||z|| / ||s||)^2,  x <- x + eps s(x, sigma_i) + sqrt(2 eps) z
    predictor: x_mean = x + (sigma_i^2 - sigma_{i+1}^2) s(x, sigma_i),  x <- x_mean + sqrt(sigma_i^2 - sigma_{i+1}^2) z

The norms are per sample by default, so a sample does not depend on its batch; batch_mean=True takes the
batch means of ||s|| and ||z|| as the score-SDE code does. denoise returns the last x_mean (no last noise).
Noise: with k = n_corrector + 1 draws per level, corrector j of level i draws at stream step k i + j and
the predictor at k i + n_corrector.
"""

from __future__ import annotations

import math

import torch

from .denoiser import Denoiser
from .langevin import NoiseSampler
from .table import Program, Row


def _norms(t: torch.Tensor, batch_mean: bool) -> torch.Tensor:
    n = t.reshape(t.shape[0], -1).norm(dim=-1)
    return n.mean().expand_as(n) if batch_mean else n


@torch.no_grad()
def sample_pc(denoiser: Denoiser, x: torch.Tensor, sigmas: torch.Tensor, *, noise: NoiseSampler, snr: float = 0.16,
              n_corrector: int = 1, denoise: bool = True, batch_mean: bool = False, progress=None) -> torch.Tensor:
    """(n_corrector + 1) N evaluations for N levels; sigmas without a trailing 0."""
    if snr <= 0 or n_corrector < 0:
        raise ValueError(f"need snr > 0 and n_corrector >= 0, got {snr}, {n_corrector}")
    sigmas = [float(s) for s in sigmas]
    k = n_corrector + 1
    shape = (x.shape[0],) + (1,) * (x.dim() - 1)
    x_mean = x
    for i, sigma in enumerate(sigmas):
        sigma_next = sigmas[i + 1] if i + 1 < len(sigmas) else 0.0
        # Corrector: Langevin steps at sigma_i.
        for j in range(n_corrector):
            grad = denoiser.score(x, sigma)
            z = noise(k * i + j, x)
            eps = 2 * (snr * _norms(z, batch_mean) / _norms(grad, batch_mean)) ** 2
            x = x + eps.view(shape) * grad + (2 * eps).sqrt().view(shape) * z
            if progress is not None:
                progress(1)
        # Predictor: reverse diffusion from sigma_i to sigma_{i+1}.
        g2 = sigma ** 2 - sigma_next ** 2
        x_mean = x + g2 * denoiser.score(x, sigma)
        x = x_mean + math.sqrt(g2) * noise(k * i + n_corrector, x)
        if progress is not None:
            progress(1)
    return x_mean if denoise else x


def pc_program(sigmas: torch.Tensor, snr: float = 0.16, n_corrector: int = 1, denoise: bool = True,
               batch_mean: bool = False) -> Program:
    if snr <= 0 or n_corrector < 0:
        raise ValueError(f"need snr > 0 and n_corrector >= 0, got {snr}, {n_corrector}")
    sigmas = [float(s) for s in sigmas]
    k = n_corrector + 1
    rows = []
    for i, sigma in enumerate(sigmas):
        last = i + 1 == len(sigmas)
        g2 = sigma ** 2 - (0.0 if last else sigmas[i + 1] ** 2)
        rows += [Row(sigma, (1.0, 1.0, 0.0, 1.0), noise=k * i + j, snr=snr) for j in range(n_corrector)]
        rows.append(Row(sigma, (1.0, g2, 0.0, 0.0 if (last and denoise) else math.sqrt(g2)), noise=k * i + n_corrector))
    return Program(rows, start_sigma=sigmas[0], batch_mean=batch_mean)
