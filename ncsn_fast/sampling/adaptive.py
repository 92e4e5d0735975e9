"""The adaptive-step SDE solver of Jolicoeur-Martineau et al. 2021 ("Gotta Go Fast When Generating Data with
Score-Based Models", Algorithm 1), on the reverse variance-exploding SDE of Song et al. 2021:

    sigma(t) = sigma_min (sigma_max / sigma_min)^t,   g(t)^2 = d sigma^2 / dt = 2 sigma(t)^2 log(sigma_max / sigma_min)
    dx = -g(t)^2 s(x, sigma(t)) dt + g(t) dw,   t from 1 down to eps.

Each sample has its own time t and step h. One step from t to t - h takes two evaluations, with one normal z:

    K1 = h g(t)^2 s(x, t) + sqrt(h) g(t) z                    (Euler-Maruyama)
    K2 = h g(t-h)^2 s(x + K1, t - h) + sqrt(h) g(t-h) z        (improved Euler)
    x' = x + (K1 + K2) / 2   (extrapolation: the higher-order proposal is kept)
    E  = (K2 - K1) / 2,   delta = max(eps_abs, eps_rel max(|x'_prev|, |x + K1|))   (elementwise)
    accepted when ||E / delta||_2 / sqrt(n) <= 1 (then t <- t - h, x'_prev <- x + K1)
    h <- min(t - eps, theta h ||E / delta||^-r)

then, optionally, the denoising step x + sigma(eps)^2 s(x, sigma(eps)). The paper's settings: theta = 0.9,
r = 0.9, h_init = 0.01, eps_abs one 8-bit level of the data range (1/255 on [0, 1] data), eps_rel 0.01 to 0.1.

Each step draws z at stream step k (the k-th step the sample takes), so a sample's path depends on its own
stream only. A finished sample (t = eps) stops: it is no longer evaluated, so the batch costs the sum of its
samples' evaluations, not its slowest sample's times the batch.
"""

from __future__ import annotations

import math
from collections.abc import Callable

import torch

from .denoiser import Denoiser
from .langevin import NoiseSampler

Progress = Callable[[int], object] | None
DONE = 1e-6  # a sample whose t is this close to eps has arrived (the paper's test)
H_MIN = 1e-10  # a step size below this will not arrive: the score is not smooth enough for the tolerance


class VeSde:
    """sigma(t) = sigma_min (sigma_max / sigma_min)^t and g(t)^2 = 2 sigma(t)^2 log(sigma_max / sigma_min)."""

    def __init__(self, sigma_max: float, sigma_min: float):
        if not 0 < sigma_min < sigma_max:
            raise ValueError(f"need 0 < sigma_min < sigma_max, got {sigma_min}, {sigma_max}")
        self.sigma_max, self.sigma_min = sigma_max, sigma_min
        self.log_ratio = math.log(sigma_max / sigma_min)

    def sigma(self, t: torch.Tensor) -> torch.Tensor:
        return self.sigma_min * (self.sigma_max / self.sigma_min) ** t

    def g2(self, t: torch.Tensor) -> torch.Tensor:
        return 2 * self.sigma(t) ** 2 * self.log_ratio


def adaptive_step(denoiser: Denoiser, sde: VeSde, x: torch.Tensor, x_prev: torch.Tensor, t: torch.Tensor,
                  h: torch.Tensor, z: torch.Tensor, *, rtol: float, atol: float, eps: float, safety: float,
                  exponent: float) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor]:
    """One proposed step of each sample from t to t - h (t, h: (N,) float64): (x, x'_prev, t, next h, the scaled
    error ||E / delta||), x, x'_prev and t moved where the step is accepted (error <= 1)."""
    view = (-1, *([1] * (x.dim() - 1)))

    def col(v: torch.Tensor) -> torch.Tensor:
        return v.view(view).float()
    t2 = t - h
    k1 = col(h * sde.g2(t)) * _score(denoiser, x, sde.sigma(t)) + col((h * sde.g2(t)).sqrt()) * z
    k2 = col(h * sde.g2(t2)) * _score(denoiser, x + k1, sde.sigma(t2)) + col((h * sde.g2(t2)).sqrt()) * z
    x_check = x + k1
    delta = torch.clamp(rtol * torch.maximum(x_prev.abs(), x_check.abs()), min=atol)
    e = ((k2 - k1) / 2 / delta).flatten(1).pow(2).mean(1).sqrt().double()
    accept = e <= 1
    keep = accept.view(view)
    x = torch.where(keep, x + (k1 + k2) / 2, x)
    x_prev = torch.where(keep, x_check, x_prev)
    t = torch.where(accept, t2, t)
    grow = torch.where(e > 0, e.pow(-exponent), torch.full_like(e, math.inf))
    h = torch.minimum(torch.clamp(t - eps, min=0), safety * h * grow)
    return x, x_prev, t, h, e


@torch.no_grad()
def sample_adaptive(denoiser: Denoiser, x: torch.Tensor, sigmas: torch.Tensor, *, noise: NoiseSampler,
                    rtol: float = 0.05, atol: float = 1 / 255, eps: float = 1e-5, h_init: float = 0.01,
                    safety: float = 0.9, exponent: float = 0.9, denoise: bool = True, max_steps: int = 10_000,
                    progress: Progress = None,
                    counts: Callable[[torch.Tensor], object] | None = None) -> torch.Tensor:
    """sigmas = (sigma_max, sigma_min), the ends of the VE SDE. progress(k): k evaluations of the samples still
    running; counts(evals): called once with each sample's evaluations (LongTensor (N,), denoising included)."""
    sde = VeSde(*(float(s) for s in sigmas))
    if not (rtol > 0 and atol > 0 and 0 < h_init <= 1 and 0 < safety <= 1 and exponent > 0 and 0 <= eps < 1):
        raise ValueError(f"need rtol, atol, exponent > 0, h_init and safety in (0, 1], eps in [0, 1), got {rtol}, "
                         f"{atol}, {exponent}, {h_init}, {safety}, {eps}")
    n, dev = x.shape[0], x.device
    knobs = dict(rtol=rtol, atol=atol, eps=eps, safety=safety, exponent=exponent)
    x = x.float().clone()
    x_prev = x.clone()  # the last accepted Euler-Maruyama proposal
    t = torch.ones(n, dtype=torch.float64, device=dev)
    h = torch.full((n,), min(h_init, 1 - eps), dtype=torch.float64, device=dev)
    steps = torch.zeros(n, dtype=torch.long, device=dev)
    for k in range(max_steps):
        active = (t - eps > DONE).nonzero().flatten()
        if len(active) == 0:
            break
        z = noise(k, x)[active]  # z of the k-th step of every sample still running
        xa, pa, ta, ha, e = adaptive_step(denoiser, sde, x[active], x_prev[active], t[active], h[active], z,
                                          **knobs)
        if progress is not None:
            progress(2)
        if not torch.isfinite(e).all():
            i = int(active[~torch.isfinite(e)][0])
            raise FloatingPointError(f"sample {i} of the batch became NaN or inf at sigma = "
                                     f"{float(sde.sigma(t[i])):.4g} (adaptive step {int(steps[i]) + 1})")
        x[active], x_prev[active], t[active], h[active] = xa, pa, ta, ha
        steps[active] += 1
        stuck = (ha < H_MIN) & (ta - eps > DONE)
        if stuck.any():
            i = int(active[stuck][0])
            raise FloatingPointError(f"the adaptive step size of sample {i} fell below {H_MIN:g} at sigma = "
                                     f"{float(sde.sigma(t[i])):.4g}: the tolerance (rtol {rtol:g}, atol {atol:g}) "
                                     f"cannot be met")
    else:
        left = int((t - eps > DONE).sum())
        if left:
            raise FloatingPointError(f"{left} sample(s) did not arrive in {max_steps} adaptive steps "
                                     f"(rtol {rtol:g}, atol {atol:g})")
    evals = 2 * steps
    if denoise:
        s_eps = float(sde.sigma(torch.tensor(eps, dtype=torch.float64)))
        x = x + s_eps ** 2 * denoiser.score(x, s_eps)
        evals += 1
        if progress is not None:
            progress(1)
    if counts is not None:
        counts(evals.cpu())
    return x


def _score(denoiser: Denoiser, x: torch.Tensor, sigma: torch.Tensor) -> torch.Tensor:
    """s(x, sigma) with one sigma per sample; a lone sample is evaluated as a batch of two (the CPU convolutions
    take another path for a batch of one, and a sample must not depend on how many others are still running)."""
    if x.shape[0] == 1:
        return denoiser.score(x.expand(2, *x.shape[1:]).contiguous(), sigma.expand(2))[:1]
    return denoiser.score(x, sigma)
