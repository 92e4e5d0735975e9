"""EDM's stochastic sampler with an ancestral tail: EDM's Algorithm 2 (Karras et al. 2022) with the most churn it
allows on every step down to sigma = split, then Euler-ancestral steps below it (stochastic DDIM in the
variance-exploding form: Song, Meng & Ermon 2021, "Denoising Diffusion Implicit Models", eq. 12 with
x = x_0 + sigma eps).

Step i, from t_i to t_(i+1), with z_i the noise of stream step i:
    t_(i+1) > split:  EDM's step with gamma = sqrt(2) - 1: t^ = t_i (1 + gamma), x^ = x + sqrt(t^2 - t_i^2) z_i,
                      then a Heun step from (x^, t^) to t_(i+1) (Euler when t_(i+1) = 0): 2 evaluations
    t_(i+1) <= split: x <- D + t_(i+1) (sqrt(1 - nu^2) eps^ + nu z_i),  D = D(x, t_i), eps^ = (x - D) / t_i,
                      and x <- D when t_(i+1) = 0: 1 evaluation

Churn high up keeps the path near the data's law where the network picks the digit (a second-order step each);
the tail replaces a share nu^2 of the state's noise variance with fresh noise at each step (nu = 1: denoise, then
re-noise; nu = 0: Euler's ODE step), mixing where the network's errors are details. The fast form adds the churn
of step i + 1 in the update that ends step i, and the first one to the start, as edm.py's.
"""

from __future__ import annotations

import math

import torch

from .denoiser import Denoiser
from .edm import heun_step, heun_step_rows
from .langevin import NoiseSampler
from .table import Program, Row

GAMMA = math.sqrt(2.0) - 1.0  # EDM's largest churn per step


def _check(nu: float, split: float) -> None:
    if not 0 <= nu <= 1:
        raise ValueError(f"nu must lie in [0, 1], got {nu}")
    if not split >= 0:
        raise ValueError(f"split must be >= 0, got {split}")


@torch.no_grad()
def sample_edm_ancestral(denoiser: Denoiser, x: torch.Tensor, sigmas: torch.Tensor, *, noise: NoiseSampler,
                         split: float, nu: float, progress=None) -> torch.Tensor:
    """sigmas end with 0."""
    _check(nu, split)
    sigmas = [float(s) for s in sigmas]
    for i in range(len(sigmas) - 1):
        t_cur, t_next = sigmas[i], sigmas[i + 1]
        if t_next > split:
            t_hat = t_cur * (1 + GAMMA)
            x = x + math.sqrt(t_hat ** 2 - t_cur ** 2) * noise(i, x)
            x = heun_step(denoiser, x, t_hat, t_next, progress)
        else:
            denoised = denoiser(x, t_cur)
            if t_next == 0:
                x = denoised
            else:
                eps = (x - denoised) / t_cur
                x = denoised + t_next * (math.sqrt(1 - nu ** 2) * eps + nu * noise(i, x))
            if progress is not None:
                progress(1)
    return x


def edm_ancestral_program(sigmas: torch.Tensor, split: float, nu: float) -> Program:
    """As rows: a Heun step's rows (edm.heun_step_rows), or one ancestral row, D = x + t^2 s and eps^ = -t s:
    x' = x + (t^2 - t_(i+1) t sqrt(1 - nu^2)) s + t_(i+1) nu z."""
    _check(nu, split)
    sigmas = [float(s) for s in sigmas]
    n = len(sigmas) - 1
    heun = [t_next > split for t_next in sigmas[1:]]
    churn = [math.sqrt(((1 + GAMMA) * t) ** 2 - t ** 2) if h else 0.0 for t, h in zip(sigmas[:-1], heun)]
    rows = []
    for i in range(n):
        t, t_next = sigmas[i], sigmas[i + 1]
        if heun[i]:
            rows += heun_step_rows(t * (1 + GAMMA), t_next, churn[i + 1] if i + 1 < n else 0.0, noise=i + 1)
        else:
            keep = t_next * t * math.sqrt(1 - nu ** 2)
            rows.append(Row(t, (1.0, t * t - keep, 0.0, t_next * nu), noise=i))
    return Program(rows, start_sigma=sigmas[0], start_noise=(churn[0], 0) if n else (0.0, 0))
