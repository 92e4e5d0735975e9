"""EDM's samplers (Karras et al. 2022, "Elucidating the Design Space of Diffusion-Based Generative Models"):
the deterministic Euler and Heun samplers (Algorithm 1) and the stochastic sampler (Algorithm 2), on the
probability-flow ODE with sigma(t) = t, s(t) = 1, written with D(x; sigma) as in the paper.

Noise: the churn draw eps_i of step i is z at stream step i. The fast form (the *_program builders) adds
the churn of step i + 1 in the fused update that ends step i, and the first one to the start.
"""

from __future__ import annotations

import math
from collections.abc import Callable

import torch

from .denoiser import Denoiser
from .langevin import NoiseSampler
from .table import Program, Row

Progress = Callable[[int], object] | None


def churn_gammas(sigmas: torch.Tensor, churn: float, s_tmin: float, s_tmax: float) -> list[float]:
    """gamma_i = min(S_churn / N, sqrt(2) - 1) where S_tmin <= t_i <= S_tmax, else 0 (N steps)."""
    if churn < 0:
        raise ValueError(f"churn must be >= 0, got {churn}")
    n = len(sigmas) - 1
    g = min(churn / n, math.sqrt(2.0) - 1.0) if n else 0.0
    return [g if s_tmin <= float(t) <= s_tmax else 0.0 for t in sigmas[:-1]]


def _tick(progress: Progress, k: int = 1) -> None:
    if progress is not None:
        progress(k)


@torch.no_grad()
def sample_euler(denoiser: Denoiser, x: torch.Tensor, sigmas: torch.Tensor, *, noise: NoiseSampler | None = None,
                 progress: Progress = None) -> torch.Tensor:
    """EDM Algorithm 1 with Euler steps: one evaluation per step."""
    sigmas = [float(s) for s in sigmas]
    for i in range(len(sigmas) - 1):
        t_cur, t_next = sigmas[i], sigmas[i + 1]
        # Euler step.
        d_cur = (x - denoiser(x, t_cur)) / t_cur
        x = x + (t_next - t_cur) * d_cur
        _tick(progress)
    return x


@torch.no_grad()
def sample_heun(denoiser: Denoiser, x: torch.Tensor, sigmas: torch.Tensor, *, noise: NoiseSampler | None = None,
                churn: float = 0.0, s_tmin: float = 0.0, s_tmax: float = float("inf"), s_noise: float = 1.0,
                progress: Progress = None) -> torch.Tensor:
    """EDM Algorithm 2 (Algorithm 1 when churn = 0): Heun steps, 2N - 1 evaluations for N steps."""
    gammas = churn_gammas(torch.as_tensor(sigmas), churn, s_tmin, s_tmax)
    sigmas = [float(s) for s in sigmas]
    for i in range(len(sigmas) - 1):
        t_cur, t_next, gamma = sigmas[i], sigmas[i + 1], gammas[i]
        # Increase noise temporarily.
        t_hat = t_cur + gamma * t_cur
        if gamma > 0:
            x = x + math.sqrt(t_hat ** 2 - t_cur ** 2) * s_noise * noise(i, x)
        x = heun_step(denoiser, x, t_hat, t_next, progress)
    return x


def heun_step(denoiser: Denoiser, x: torch.Tensor, t_hat: float, t_next: float, progress: Progress = None
              ) -> torch.Tensor:
    """Algorithm 2's step from (x, t_hat) to t_next: Euler, then the 2nd order correction unless t_next = 0."""
    # Euler step.
    d_cur = (x - denoiser(x, t_hat)) / t_hat
    x_next = x + (t_next - t_hat) * d_cur
    _tick(progress)
    # Apply 2nd order correction.
    if t_next > 0:
        d_prime = (x_next - denoiser(x_next, t_next)) / t_next
        x_next = x + (t_next - t_hat) * (0.5 * d_cur + 0.5 * d_prime)
        _tick(progress)
    return x_next


def euler_program(sigmas: torch.Tensor) -> Program:
    """Euler as table rows: x' = x + (t_next - t) d with d = (x - D) / t = -t s."""
    sigmas = [float(s) for s in sigmas]
    rows = [Row(t, (1.0, -(t_next - t) * t, 0.0, 0.0)) for t, t_next in zip(sigmas[:-1], sigmas[1:])]
    return Program(rows, start_sigma=sigmas[0])


def heun_program(sigmas: torch.Tensor, churn: float = 0.0, s_tmin: float = 0.0, s_tmax: float = float("inf"),
                 s_noise: float = 1.0) -> Program:
    """Heun (with churn) as table rows. Stage 1 at t_hat: x' = x + dt d1, p' = x + dt/2 d1 (d1 = -t_hat s1);
    stage 2 at t_next: x'' = p + dt/2 d2 (+ the next step's churn, nu z)."""
    gammas = churn_gammas(torch.as_tensor(sigmas), churn, s_tmin, s_tmax)
    sigmas = [float(s) for s in sigmas]
    n = len(sigmas) - 1
    hats = [t * (1 + g) for t, g in zip(sigmas[:-1], gammas)]
    nus = [math.sqrt(th ** 2 - t ** 2) * s_noise if g > 0 else 0.0 for t, th, g in zip(sigmas[:-1], hats, gammas)]
    rows = []
    for i in range(n):
        rows += heun_step_rows(hats[i], sigmas[i + 1], nus[i + 1] if i + 1 < n else 0.0, noise=i + 1)
    return Program(rows, start_sigma=sigmas[0], start_noise=(nus[0], 0) if n else (0.0, 0))


def heun_step_rows(t_hat: float, t_next: float, nu_next: float, noise: int) -> list[Row]:
    """One Heun step from t_hat to t_next as rows (Euler when t_next = 0), ending with nu_next z (z at stream step
    `noise`): the next step's churn."""
    dt = t_next - t_hat
    if t_next > 0:
        return [Row(t_hat, (1.0, -dt * t_hat, 0.0, 0.0), p=(1.0, -0.5 * dt * t_hat, 0.0)),
                Row(t_next, (0.0, -0.5 * dt * t_next, 1.0, nu_next), noise=noise)]
    return [Row(t_hat, (1.0, -dt * t_hat, 0.0, nu_next), noise=noise)]  # the last step, to sigma = 0: Euler
