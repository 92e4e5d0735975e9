"""Noise schedules of the samplers, and the Gaussian start they share.

Every schedule is a float64 tensor of decreasing sigma. On a ladder-only model (NCSN v1) a schedule is
snapped to the ladder: each sigma becomes the nearest ladder value (in log sigma) and repeats are dropped,
so a sampler there may take fewer steps than asked; the sampler's evaluation count is computed from the
schedule it actually runs.
"""

from __future__ import annotations

import math

import torch

from ..ops.philox import MASK32
from .denoiser import Denoiser

# The stream step of the Gaussian start x_T = centre + sigma_max z (the Langevin start uses INIT_STEP).
INIT_NORMAL_STEP = MASK32 - 1


def karras_sigmas(n: int, sigma_min: float, sigma_max: float, rho: float = 7.0) -> torch.Tensor:
    """EDM's schedule (Karras et al. 2022, eq. 5): n sigmas from sigma_max to sigma_min evenly spaced in
    sigma^(1/rho), then a last 0 (n + 1 values, as k-diffusion's get_sigmas_karras)."""
    _check_range(n, sigma_min, sigma_max)
    if not rho > 0:
        raise ValueError(f"rho must be positive, got {rho}")
    ramp = torch.linspace(0, 1, n, dtype=torch.float64)
    lo, hi = sigma_min ** (1 / rho), sigma_max ** (1 / rho)
    sig = (hi + ramp * (lo - hi)) ** rho
    return torch.cat([sig, sig.new_zeros(1)])


def geometric_sigmas(n: int, sigma_min: float, sigma_max: float) -> torch.Tensor:
    """n sigmas from sigma_max to sigma_min evenly spaced in log sigma (NCSN's ladder, score-SDE's VE)."""
    _check_range(n, sigma_min, sigma_max)
    if n == 1:
        return torch.tensor([sigma_max], dtype=torch.float64)
    return torch.exp(torch.linspace(math.log(sigma_max), math.log(sigma_min), n, dtype=torch.float64))


def _check_range(n: int, sigma_min: float, sigma_max: float) -> None:
    if n < 1:
        raise ValueError(f"steps must be >= 1, got {n}")
    if not 0 < sigma_min <= sigma_max:
        raise ValueError(f"need 0 < sigma_min <= sigma_max, got sigma_min={sigma_min}, sigma_max={sigma_max}")


def fit_to_model(sigmas: torch.Tensor, denoiser: Denoiser, what: str = "the schedule") -> torch.Tensor:
    """The schedule a model can run: unchanged for a continuous model (after checking its range), snapped to
    the ladder for a ladder-only one (a trailing 0 is kept)."""
    sigmas = torch.as_tensor(sigmas, dtype=torch.float64)
    if denoiser.continuous:
        denoiser.check(sigmas, what)
        return sigmas
    ladder = denoiser.ladder
    positive = sigmas[sigmas > 0]
    lo, hi = float(ladder[-1]) * (1 - 1e-6), float(ladder[0]) * (1 + 1e-6)
    if len(positive) and (float(positive.min()) < lo or float(positive.max()) > hi):
        raise ValueError(f"{what} spans sigma {float(positive.min()):.6g} .. {float(positive.max()):.6g}, beyond the "
                         f"ladder of {denoiser.name} ({float(ladder[-1]):.6g} .. {float(ladder[0]):.6g})")
    idx = (positive.log()[:, None] - ladder.log()[None, :]).abs().argmin(dim=1)
    idx = torch.unique_consecutive(idx)
    snapped = ladder[idx]
    if len(positive) < len(sigmas):
        snapped = torch.cat([snapped, snapped.new_zeros(len(sigmas) - len(positive))])
    return snapped


def gaussian_start(denoiser: Denoiser, sigma: float, z: torch.Tensor) -> torch.Tensor:
    """x_T = centre + sigma z: EDM's start N(0, sigma_max^2 I), put at the middle of the data range (so the
    same as EDM's for data in [-1, 1])."""
    return denoiser.centre + sigma * z
