"""diffusers' `ScoreSdeVePipeline` with its `ScoreSdeVeScheduler` (diffusers 0.42), as written: its time grid, the
σ the network sees, the predictor's separate ladder, its batch-mean corrector and its random-number order, so
that an NCSN++ loaded from a diffusers folder and a torch seed give that pipeline's samples. A reference: the
corrector's step comes from batch means, so a sample depends on its batch (ncsn_fast's `pc` takes per-sample
steps).

With N steps: t = linspace(1, sampling_eps, N) (float32); the network sees σ_i = σ_min (σ_max / σ_min)^t_i;
the predictor takes γ from the ladder exp(linspace(log σ_min, log σ_max, N)) at k = long(t_i (N - 1)) and its
neighbour k - 1 (0 at k = 0). Draws, from one CPU generator: the prior x = σ_max z, then per step the corrector's
(correct_steps of them), then the predictor's.
"""

from __future__ import annotations

import numpy as np
import torch


def schedule(scheduler: dict, n: int) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """(timesteps, the σ the network sees, the predictor's ladder) as the scheduler computes them."""
    lo, hi, eps = scheduler["sigma_min"], scheduler["sigma_max"], scheduler["sampling_eps"]
    timesteps = torch.linspace(1, eps, n)
    discrete = torch.exp(torch.linspace(np.log(lo), np.log(hi), n))
    sigmas = torch.tensor([lo * (hi / lo) ** t for t in timesteps])
    return timesteps, sigmas, discrete


@torch.no_grad()
def pipeline_pc(net, x: torch.Tensor, scheduler: dict, n: int, generator: torch.Generator) -> torch.Tensor:
    """The pipeline's loop from the prior x; returns the last predictor mean (the pipeline returns it clamped to
    [0, 1]). net(x, sigma) is the network's score, sigma a float32 (B,) tensor."""
    timesteps, sigmas, discrete = schedule(scheduler, n)
    b = x.shape[0]

    def randn(like):
        return torch.randn(like.shape, generator=generator, dtype=like.dtype)
    x_mean = x
    for i, t in enumerate(timesteps):
        sigma_t = sigmas[i] * torch.ones(b)
        for _ in range(scheduler["correct_steps"]):  # corrector: Langevin, step from the batch means of the norms
            g = net(x, sigma_t)
            z = randn(x)
            grad_norm = torch.norm(g.reshape(b, -1), dim=-1).mean()
            noise_norm = torch.norm(z.reshape(b, -1), dim=-1).mean()
            eps = (scheduler["snr"] * noise_norm / grad_norm) ** 2 * 2 * torch.ones(b)
            x = x + eps[:, None, None, None] * g + ((eps * 2) ** 0.5)[:, None, None, None] * z
        g = net(x, sigma_t)  # predictor: reverse diffusion on the ladder
        k = (t * torch.ones(b) * (len(timesteps) - 1)).long()
        adjacent = torch.where(k == 0, torch.zeros(b), discrete[(k - 1).clamp_min(0)])
        gamma = (discrete[k] ** 2 - adjacent ** 2) ** 0.5
        x_mean = x + gamma[:, None, None, None] ** 2 * g
        x = x_mean + gamma[:, None, None, None] * randn(x)
    return x_mean


class DiffusersPcSampler:
    """The pipeline with the call signature of the other runners (run.py): one CPU generator seeded with `seed`
    draws each batch's prior and then its noise, batch after batch. steps: the pipeline's num_inference_steps
    (default its scheduler's num_train_timesteps)."""

    name = "pc"

    def __init__(self, model: torch.nn.Module, *, seed: int = 0, steps: int | None = None, snr: float | None = None):
        self.model = model
        self.scheduler = {**model.config["diffusers_scheduler"], **({"snr": snr} if snr is not None else {})}
        self.n = steps or self.scheduler["num_train_timesteps"]
        d = model.config["data"]
        self.shape = (d["num_channels"], d["image_size"], d["image_size"])
        self.generator = torch.Generator().manual_seed(seed)
        self.device = next(model.parameters()).device
        self.evals = self.n * (self.scheduler["correct_steps"] + 1)
        self.summary = (f"diffusers' ScoreSdeVePipeline ({self.n} steps, {self.scheduler['correct_steps']} corrector "
                        f"step(s), snr {self.scheduler['snr']:g}; its RNG order, batch-mean corrector steps)")

    def _net(self, x, sigma):
        return self.model(x.to(self.device), sigma.to(self.device)).float().cpu()

    def __call__(self, ids: torch.Tensor, progress=None, x_init: torch.Tensor | None = None) -> torch.Tensor:
        x0 = x_init.float() if x_init is not None else \
            torch.randn((len(ids), *self.shape), generator=self.generator) * self.scheduler["sigma_max"]
        x = pipeline_pc(self._net, x0, self.scheduler, self.n, self.generator)
        if progress is not None:
            progress(self.evals)
        return x
