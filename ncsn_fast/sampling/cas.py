"""Consistent annealed sampling (Jolicoeur-Martineau et al. 2021, "Adversarial score matching and improved
sampling for image generation", Algorithm 2): one Langevin-like step per noise level, with the added noise
chosen so that the state's noise level follows the schedule exactly (for an exact score).

With eta = step_lr / sigma_L^2 and gamma_i = sigma_i / sigma_{i+1}:
    x <- x + eta sigma_i^2 s(x, sigma_i) + beta_i sigma_{i+1} z,   beta_i = sqrt(1 - (gamma_i (1 - eta))^2),
no noise after the last level, then optionally the denoising step x + sigma_N^2 s(x, sigma_N). The noise of
level i is z at stream step i.
"""

from __future__ import annotations

import math

import torch

from .denoiser import Denoiser
from .langevin import NoiseSampler
from .table import Program, Row


def cas_betas(sigmas: torch.Tensor, eta: float) -> list[float]:
    """beta_i of each level but the last; ValueError if some level cannot be consistent (gamma (1 - eta) >= 1)."""
    sigmas = [float(s) for s in sigmas]
    if not 0 < eta < 2:
        raise ValueError(f"CAS needs 0 < eta < 2 (eta = step_lr / sigma_L^2), got {eta:.6g}")
    need = max((1 - s_next / s for s, s_next in zip(sigmas[:-1], sigmas[1:])), default=0.0)
    if eta <= need:
        raise ValueError(f"CAS with these {len(sigmas)} levels needs eta = step_lr / sigma_L^2 > {need:.4g} "
                         f"(1 - the smallest sigma_(i+1) / sigma_i), got {eta:.4g}: raise step_lr or the steps")
    return [math.sqrt(1 - (s / s_next * (1 - eta)) ** 2) for s, s_next in zip(sigmas[:-1], sigmas[1:])]


@torch.no_grad()
def sample_cas(denoiser: Denoiser, x: torch.Tensor, sigmas: torch.Tensor, *, noise: NoiseSampler, eta: float,
               denoise: bool = True, progress=None) -> torch.Tensor:
    """One evaluation per level (+ 1 to denoise); sigmas without a trailing 0."""
    betas = cas_betas(sigmas, eta)
    sigmas = [float(s) for s in sigmas]
    for i, sigma in enumerate(sigmas):
        x = x + eta * sigma ** 2 * denoiser.score(x, sigma)
        if i + 1 < len(sigmas):
            x = x + betas[i] * sigmas[i + 1] * noise(i, x)
        if progress is not None:
            progress(1)
    if denoise:
        x = x + sigmas[-1] ** 2 * denoiser.score(x, sigmas[-1])
        if progress is not None:
            progress(1)
    return x


def cas_program(sigmas: torch.Tensor, eta: float, denoise: bool = True) -> Program:
    betas = cas_betas(sigmas, eta) + [0.0]
    sigmas = [float(s) for s in sigmas]
    nexts = sigmas[1:] + [0.0]
    rows = [Row(s, (1.0, eta * s ** 2, 0.0, b * s_next), noise=i)
            for i, (s, s_next, b) in enumerate(zip(sigmas, nexts, betas))]
    if denoise:
        rows.append(Row(sigmas[-1], (1.0, sigmas[-1] ** 2, 0.0, 0.0), noise=len(sigmas)))
    return Program(rows, start_sigma=sigmas[0])
