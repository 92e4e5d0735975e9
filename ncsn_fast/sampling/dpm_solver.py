"""DPM-Solver++(2M) (Lu et al. 2022, "DPM-Solver++: Fast Solver for Guided Sampling of Diffusion Probabilistic
Models", Algorithm 2) for the variance-exploding ODE: data prediction, second order through the previous
step's denoised image, one evaluation per step (k-diffusion's sample_dpmpp_2m)."""

from __future__ import annotations

import math

import torch

from .denoiser import Denoiser
from .table import Program, Row


@torch.no_grad()
def sample_dpmpp_2m(denoiser: Denoiser, x: torch.Tensor, sigmas: torch.Tensor, *, noise=None,
                    progress=None) -> torch.Tensor:
    """N steps, N evaluations; sigmas end with 0 (the last step returns the denoised image)."""
    sigmas = [float(s) for s in sigmas]
    old_denoised = None
    for i in range(len(sigmas) - 1):
        denoised = denoiser(x, sigmas[i])
        if sigmas[i + 1] == 0:  # the last step: x = D(x)
            x = denoised
        else:
            t, t_next = -math.log(sigmas[i]), -math.log(sigmas[i + 1])
            h = t_next - t
            if old_denoised is None:  # first order at the first step
                denoised_d = denoised
            else:
                r = (t - -math.log(sigmas[i - 1])) / h
                denoised_d = (1 + 1 / (2 * r)) * denoised - (1 / (2 * r)) * old_denoised
            x = (sigmas[i + 1] / sigmas[i]) * x - math.expm1(-h) * denoised_d
        old_denoised = denoised
        if progress is not None:
            progress(1)
    return x


def dpmpp_2m_program(sigmas: torch.Tensor) -> Program:
    """As table rows, with D = x + sigma^2 s and p = the previous D:
    x' = rho x + m (w D - v p) with rho = sigma_next / sigma, m = -expm1(-h) = 1 - rho, w = 1 + 1/(2r),
    v = 1/(2r) (w = 1, v = 0 at the first step); p' = D."""
    sigmas = [float(s) for s in sigmas]
    rows = []
    for i in range(len(sigmas) - 1):
        s, s_next = sigmas[i], sigmas[i + 1]
        if s_next == 0:
            rho, m, w, v = 0.0, 1.0, 1.0, 0.0
        else:
            h = math.log(s) - math.log(s_next)
            rho, m = s_next / s, -math.expm1(-h)
            if i == 0:
                w, v = 1.0, 0.0
            else:
                r = (math.log(sigmas[i - 1]) - math.log(s)) / h
                w, v = 1 + 1 / (2 * r), 1 / (2 * r)
        rows.append(Row(s, (rho + m * w, m * w * s ** 2, -m * v, 0.0), p=(1.0, s ** 2, 0.0)))
    return Program(rows, start_sigma=sigmas[0])
