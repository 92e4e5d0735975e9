"""The score-SDE code's samplers for the VE SDE as written (its sampling.py and sde_lib.py): the predictor-corrector
sampler (reverse-diffusion or Euler-Maruyama predictor, Langevin corrector, or either alone) and the
probability-flow ODE with scipy's RK45, in that code's float32 op order and RNG order, so that a network and a
torch seed give that code's samples. A reference: its corrector takes a step from the *batch means* of the
norms, so a sample depends on its batch (ncsn_fast's own `pc` sampler takes per-sample steps).

VE SDE: sigma(t) = sigma_min (sigma_max / sigma_min)^t, t from 1 to eps; discrete sigmas, ascending,
exp(linspace(log sigma_min, log sigma_max, N)); the network takes sigma(t) (continuous) or the level index
round((1 - t)(N - 1)) (discrete, 0 = the largest sigma).
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np
import torch


class VESDE:
    def __init__(self, sigma_min: float, sigma_max: float, n: int, t_end: float = 1.0):
        self.sigma_min, self.sigma_max, self.N, self.T = sigma_min, sigma_max, n, t_end
        self.discrete_sigmas = torch.exp(torch.linspace(np.log(sigma_min), np.log(sigma_max), n))

    def std(self, t: torch.Tensor) -> torch.Tensor:
        return self.sigma_min * (self.sigma_max / self.sigma_min) ** t

    def diffusion(self, t: torch.Tensor) -> torch.Tensor:
        return self.std(t) * torch.sqrt(torch.tensor(2 * (np.log(self.sigma_max) - np.log(self.sigma_min))))

    def discretize_g(self, t: torch.Tensor) -> torch.Tensor:
        """G of the reverse-diffusion step at t: sqrt(sigma_k^2 - sigma_(k-1)^2), k = long(t (N - 1) / T)."""
        k = (t * (self.N - 1) / self.T).long()
        sigmas = self.discrete_sigmas.to(t.device)
        sigma = sigmas[k]
        adjacent = torch.where(k == 0, torch.zeros_like(t), sigmas[(k - 1).clamp_min(0)])
        return torch.sqrt(sigma ** 2 - adjacent ** 2)


def score_fn(model: Callable, sde: VESDE, continuous: bool) -> Callable:
    def score(x: torch.Tensor, t: torch.Tensor) -> torch.Tensor:
        if continuous:
            labels = sde.std(t)
        else:
            labels = torch.round((sde.T - t) * (sde.N - 1)).long()
        return model(x, labels)
    return score


@torch.no_grad()
def pc_sampler(model: Callable, shape: tuple[int, ...], sde: VESDE, *, snr: float, n_steps_each: int = 1,
               predictor: str = "reverse_diffusion", corrector: str = "langevin", denoise: bool = True,
               eps: float = 1e-5, continuous: bool = True, generator: torch.Generator | None = None,
               x: torch.Tensor | None = None) -> tuple[torch.Tensor, int]:
    """(samples, network evaluations as that code counts them: N (n_steps_each + 1)). The prior x_T ~ N(0,
    sigma_max^2 I) is the generator's first draw, then per step the corrector's draws, then the predictor's."""
    if predictor not in ("reverse_diffusion", "euler_maruyama", "none") or corrector not in ("langevin", "none"):
        raise ValueError(f"unknown predictor / corrector {predictor!r} / {corrector!r}")
    score = score_fn(model, sde, continuous)

    def randn(like):
        return torch.randn(like.shape, generator=generator, dtype=like.dtype).to(like.device)
    if x is None:
        x = torch.randn(shape, generator=generator) * sde.sigma_max
    timesteps = torch.linspace(sde.T, eps, sde.N, device=x.device)
    x_mean = x
    for i in range(sde.N):
        vec_t = torch.ones(shape[0], device=x.device) * timesteps[i]
        if corrector == "langevin":
            for _ in range(n_steps_each):
                grad = score(x, vec_t)
                noise = randn(x)
                grad_norm = torch.norm(grad.reshape(grad.shape[0], -1), dim=-1).mean()
                noise_norm = torch.norm(noise.reshape(noise.shape[0], -1), dim=-1).mean()
                step_size = (snr * noise_norm / grad_norm) ** 2 * 2 * torch.ones_like(vec_t)
                x_mean = x + step_size[:, None, None, None] * grad
                x = x_mean + torch.sqrt(step_size * 2)[:, None, None, None] * noise
        if predictor == "reverse_diffusion":
            g = sde.discretize_g(vec_t)
            rev_f = torch.zeros_like(x) - g[:, None, None, None] ** 2 * score(x, vec_t)
            z = randn(x)
            x_mean = x - rev_f
            x = x_mean + g[:, None, None, None] * z
        elif predictor == "euler_maruyama":
            dt = -1.0 / sde.N
            z = randn(x)
            diffusion = sde.diffusion(vec_t)
            drift = torch.zeros_like(x) - diffusion[:, None, None, None] ** 2 * score(x, vec_t)
            x_mean = x + drift * dt
            x = x_mean + diffusion[:, None, None, None] * np.sqrt(-dt) * z
        else:  # no predictor: that code's NonePredictor returns (x, x), so the mean is the noisy state
            x_mean = x
    return (x_mean if denoise else x), sde.N * (n_steps_each + 1)


@torch.no_grad()
def ode_sampler(model: Callable, x: torch.Tensor, sde: VESDE, *, rtol: float = 1e-5, atol: float = 1e-5,
                method: str = "RK45", eps: float = 1e-5, denoise: bool = True,
                continuous: bool = True) -> tuple[torch.Tensor, int]:
    """(samples, scipy's number of function evaluations) of the probability-flow ODE from x_T = x, then the
    reverse-diffusion step at eps without its noise."""
    from scipy import integrate

    score = score_fn(model, sde, continuous)
    shape = x.shape

    def ode_func(t, y):
        xt = torch.from_numpy(y.reshape(shape)).type(torch.float32)
        vec_t = torch.ones(shape[0]) * t
        diffusion = sde.diffusion(vec_t)
        drift = torch.zeros_like(xt) - diffusion[:, None, None, None] ** 2 * score(xt, vec_t) * 0.5
        return drift.detach().cpu().numpy().reshape((-1,))

    solution = integrate.solve_ivp(ode_func, (sde.T, eps), x.detach().cpu().numpy().reshape((-1,)), rtol=rtol,
                                   atol=atol, method=method)
    x = torch.tensor(solution.y[:, -1]).reshape(shape).type(torch.float32)
    if denoise:
        vec_t = torch.ones(shape[0]) * eps
        g = sde.discretize_g(vec_t)
        x = x - (torch.zeros_like(x) - g[:, None, None, None] ** 2 * score(x, vec_t))
    return x, solution.nfev


class ScoreSdeSampler:
    """An NCSN++ sampled as the score-SDE code does, with its config's sampling settings, and the call signature of
    the other runners (run.py): one torch generator seeded with `seed` draws each batch's prior x_T ~ N(0,
    sigma_max^2 I) and then the sampler's noise, batch after batch, as that code does. options: snr, n_steps_each,
    denoise, predictor, corrector, rtol, atol, eps, steps (the SDE's N: default the config's num_scales; a discrete
    model knows only that many levels)."""

    def __init__(self, model: torch.nn.Module, name: str = "pc", *, seed: int = 0, snr: float | None = None,
                 n_steps_each: int | None = None, denoise: bool | None = None, predictor: str | None = None,
                 corrector: str | None = None, rtol: float = 1e-5, atol: float = 1e-5, eps: float = 1e-5,
                 steps: int | None = None):
        if name not in ("pc", "ode"):
            raise ValueError(f"the score-SDE code's samplers are pc and ode, not {name!r}")
        cfg = model.config
        m, s = cfg["model"], cfg.get("sampling", {})
        self.continuous = cfg.get("training", {}).get("continuous", model.embedding_type == "fourier")
        if steps is not None and not self.continuous and steps != m["num_scales"]:
            raise ValueError(f"a discrete NCSN++ knows its {m['num_scales']} levels only: steps must be that, got "
                             f"{steps}")
        self.model, self.name, self.eps, self.rtol, self.atol = model, name, eps, rtol, atol
        self.sde = VESDE(m["sigma_min"], m["sigma_max"], steps or m["num_scales"])
        self.shape = (cfg["data"]["num_channels"], cfg["data"]["image_size"], cfg["data"]["image_size"])
        self.generator = torch.Generator().manual_seed(seed)
        self.device = next(model.parameters()).device
        self.snr = snr if snr is not None else s.get("snr", 0.16)
        self.n_steps_each = n_steps_each or s.get("n_steps_each", 1)
        self.predictor = predictor or s.get("predictor", "reverse_diffusion")
        self.corrector = corrector or s.get("corrector", "langevin")
        self.denoise = (s.get("noise_removal", True) if name == "pc" else True) if denoise is None else denoise
        self.evals = self.sde.N * (self.n_steps_each + 1) if name == "pc" else None
        self.summary = (f"the score-SDE code's {self.predictor} predictor + {self.corrector} corrector, snr "
                        f"{self.snr:g}, {self.sde.N} steps (its RNG order, batch-mean corrector steps)"
                        if name == "pc" else f"the score-SDE code's probability-flow ODE (RK45, rtol {rtol:g})")

    def _net(self, x, labels):
        return self.model(x.to(self.device), labels.to(self.device)).cpu()

    @torch.no_grad()
    def __call__(self, ids: torch.Tensor, progress=None, x_init: torch.Tensor | None = None) -> torch.Tensor:
        b = len(ids)
        x0 = x_init.float() if x_init is not None else \
            torch.randn((b, *self.shape), generator=self.generator) * self.sde.sigma_max
        if self.name == "pc":
            x, evals = pc_sampler(self._net, (b, *self.shape), self.sde, snr=self.snr, n_steps_each=self.n_steps_each,
                                  predictor=self.predictor, corrector=self.corrector, denoise=self.denoise,
                                  eps=self.eps, continuous=self.continuous, generator=self.generator, x=x0)
        else:
            x, evals = ode_sampler(self._net, x0, self.sde, rtol=self.rtol, atol=self.atol, eps=self.eps,
                                   denoise=self.denoise, continuous=self.continuous)
        if progress is not None:
            progress(evals)
        return x.float()
