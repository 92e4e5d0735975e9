"""The probability-flow ODE solved with adaptive RK45 (Song et al. 2021, section 4.3), as the score-SDE code
does (scipy's solve_ivp on the flattened batch), for the variance-exploding SDE
sigma(t) = sigma_min (sigma_max / sigma_min)^t, t from 1 to eps:

    dx/dt = -1/2 g(t)^2 s(x, sigma(t)),  g(t)^2 = d sigma^2 / dt = 2 sigma(t)^2 log(sigma_max / sigma_min)

then optionally the denoising step x + sigma(eps)^2 s(x, sigma(eps)). A reference, not graph-captured: the
step sizes are chosen for the whole batch at once, so a sample depends on its batch (as in the original). The
solver picks how many evaluations it makes: each one is reported through `progress`, as every sampler does.
"""

from __future__ import annotations

import math

import numpy as np
import torch

from .denoiser import Denoiser


@torch.no_grad()
def sample_ode(denoiser: Denoiser, x: torch.Tensor, sigmas: torch.Tensor, *, noise=None, rtol: float = 1e-5,
               atol: float = 1e-5, eps: float = 1e-5, denoise: bool = True, method: str = "RK45",
               progress=None, counts=None) -> torch.Tensor:
    """sigmas = (sigma_max, sigma_min), the ends of the VE SDE; deterministic (noise unused). counts(evals): called
    once with each sample's evaluations (the batch's, which the solver shares), as the adaptive sampler does."""
    sigma_max, sigma_min = (float(s) for s in sigmas)
    try:
        from scipy import integrate
    except ImportError as e:  # a dependency, but say what needs it if it is missing
        raise RuntimeError("the ode sampler needs scipy (pip install scipy)") from e
    if not 0 < sigma_min < sigma_max:
        raise ValueError(f"need 0 < sigma_min < sigma_max, got {sigma_min}, {sigma_max}")
    shape, device = x.shape, x.device
    log_ratio = math.log(sigma_max / sigma_min)

    def sigma_of(t: float) -> float:
        return sigma_min * (sigma_max / sigma_min) ** t

    def drift(t: float, y: np.ndarray) -> np.ndarray:
        xt = torch.from_numpy(y).reshape(shape).to(device=device, dtype=torch.float32)
        sigma = sigma_of(float(t))
        d = -(sigma ** 2) * log_ratio * denoiser.score(xt, sigma)
        if progress is not None:
            progress(1)
        return d.cpu().numpy().reshape(-1)

    y0 = x.detach().cpu().numpy().reshape(-1)
    solution = integrate.solve_ivp(drift, (1.0, eps), y0, rtol=rtol, atol=atol, method=method)
    if not solution.success:
        raise FloatingPointError(f"the ODE solver failed: {solution.message}")
    x = torch.from_numpy(solution.y[:, -1]).reshape(shape).to(device=device, dtype=torch.float32)
    if denoise:
        sigma = sigma_of(eps)
        x = x + sigma ** 2 * denoiser.score(x, sigma)
        if progress is not None:
            progress(1)
    if counts is not None:
        counts(torch.full((shape[0],), solution.nfev + int(denoise), dtype=torch.long))
    return x
