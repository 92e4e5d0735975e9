"""The fast annealed Langevin loop: fused ops, inference mode, no host synchronisation inside the loop.

Same algorithm as sampling/langevin.py, with three changes that do not alter the distribution:
- the noise is the counter-based stream (ops/philox.py) keyed by (seed, sample index, step), drawn inside
  the fused update, so a sample does not depend on its batch, device or backend;
- the network's raw output h and the score scale c (1/sigma for NCSNv2) go to the fused update
  x <- x + a c h + b z (ops/langevin_step.py) instead of three elementwise passes and a randn;
- statistics, when asked, stay on the device until the end.
`GraphedLangevin` keeps the loop's state (step counter, level table) on the device, so that a CUDA graph of
one step, or of many, is captured once and replayed for the whole run.
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np
import torch

from ..ops.langevin_step import langevin_step_, langevin_step_ref
from .graphs import CapturedSteps
from .langevin import langevin_schedule

RawScore = Callable[[torch.Tensor, int], torch.Tensor]


def coefficient_table(sigmas: torch.Tensor, step_lr: float, score_scales=None, device="cpu",
                      numpy1_legacy: bool = False) -> torch.Tensor:
    """(L, 3) float32 rows {a_i, c_i, b_i}: step size, score scale, noise scale of each level."""
    alphas, noise = langevin_schedule(sigmas, step_lr, numpy1_legacy)
    scales = np.ones(len(alphas)) if score_scales is None else torch.as_tensor(score_scales).double().numpy()
    table = np.stack([alphas.astype(np.float64), scales, noise.astype(np.float64)], axis=1)
    return torch.tensor(table, dtype=torch.float32, device=device)


def _denoised(x: torch.Tensor, h: torch.Tensor, sigmas: torch.Tensor, coefs: torch.Tensor) -> torch.Tensor:
    """Tweedie denoising at sigma_L: x + sigma_L^2 c_L h (h the raw output at the last level)."""
    sigma_l2 = float(torch.as_tensor(sigmas)[-1].numpy() ** 2)
    return x + (sigma_l2 * coefs[-1, 1]) * h.float()


@torch.inference_mode()
def anneal_langevin_fused(score: RawScore, x: torch.Tensor, sigmas: torch.Tensor, *, n_steps_each: int,
                          step_lr: float, seed: int, sample_ids: torch.Tensor, score_scales=None,
                          denoise: bool = False, backend: str = "auto", with_stats: bool = False,
                          progress: Callable[[int], None] | None = None, numpy1_legacy: bool = False,
                          constraint=None, noise=None):
    """Annealed Langevin dynamics with the fused update; returns (x, stats or None).

    score(x, level) returns the raw output h with score = score_scales[level] * h (all ones if None).
    stats: (L * n_steps_each, 2) device tensor of batch means of ||score|| and ||z|| per step.
    constraint: applied to x before every step, as in the reference loop (inpainting).
    noise: a NoiseSampler to use instead of the in-kernel stream (interpolation); the update is then the
        reference's (x + (a c) h) + b z with that z, no longer one fused kernel.
    """
    device = x.device
    x = x.detach().to(torch.float32).contiguous().clone()
    sig = torch.as_tensor(sigmas)
    coefs = coefficient_table(sig, step_lr, score_scales, device, numpy1_legacy)
    seed_t = torch.tensor([seed], dtype=torch.int64, device=device)
    step_t = torch.zeros(1, dtype=torch.int64, device=device)
    ids = sample_ids.to(device=device, dtype=torch.int64)
    stats = [] if with_stats else None
    i = 0
    for level in range(len(sig)):
        for _ in range(n_steps_each):
            if constraint is not None:
                x = constraint(x, level, i).contiguous()
            h = score(x, level)
            if noise is not None:
                x = langevin_step_ref(x, h, coefs[level], noise(i, x))
            else:
                step_t.fill_(i)
                norms = langevin_step_(x, h, coefs[level], seed=seed_t, step=step_t, sample_ids=ids,
                                       with_stats=with_stats, backend=backend)
                if with_stats:
                    stats.append(norms.mean(0))
            if progress is not None:
                progress(1)
            i += 1
    if denoise:
        h = score(x, len(sig) - 1)
        x = _denoised(x, h, sig, coefs)
        if progress is not None:
            progress(1)
    return x, (torch.stack(stats) if with_stats else None)


def model_raw_score(model: torch.nn.Module, dtype: torch.dtype = torch.float32, channels_last: bool = False):
    """score(x, level) -> raw network output (before NCSNv2's 1/sigma), in `dtype`, optionally channels_last."""
    fmt = torch.channels_last if channels_last else torch.contiguous_format
    labels: dict[tuple, torch.Tensor] = {}

    def score(x: torch.Tensor, level: int) -> torch.Tensor:
        key = (x.shape[0], level, x.device)
        if key not in labels:
            labels[key] = torch.full((x.shape[0],), level, dtype=torch.long, device=x.device)
        xin = x.to(dtype=dtype, memory_format=fmt)
        return model(xin, labels[key], raw=True)
    return score


class GraphedLangevin(CapturedSteps):
    """The fused loop with all its state on the device, captured in CUDA graphs and replayed (graphs.py).

    Static buffers hold x, the sample indices, the seed, the global step counter and the level table
    {a, c, b}; one step is: level = step // T, labels and coefficients gathered from the table on the device,
    the network forward, the fused update (whose kernel reads seed and step from device memory: fresh noise
    every step), step += 1. Nothing of it is a host value, so a graph of `steps_per_graph` consecutive steps
    serves every level: the run is L*T/k replays of one graph (plus a one-step graph for a remainder), and
    the host does nothing between replays. k = 1 keeps capture time and graph size smallest; k = L*T is the
    whole run in one graph. capture=False runs the same steps eagerly (any device): the un-captured form of
    exactly what the graphs hold.
    """

    def __init__(self, model: torch.nn.Module, batch_size: int, image_shape: tuple[int, ...], *,
                 dtype: torch.dtype = torch.float32, channels_last: bool = False, backend: str = "auto",
                 steps_per_graph: int = 1, capture: bool = True, warmup: int = 2):
        device = next(model.parameters()).device
        super().__init__(device, steps_per_graph, capture, warmup)
        self.model, self.dtype, self.backend = model, dtype, backend
        self.fmt = torch.channels_last if channels_last else torch.contiguous_format
        self.x = torch.zeros(batch_size, *image_shape, device=device)
        self.labels = torch.zeros(batch_size, dtype=torch.long, device=device)
        self.ids = torch.arange(batch_size, device=device)
        self.seed = torch.zeros(1, dtype=torch.int64, device=device)
        self.step = torch.zeros(1, dtype=torch.int64, device=device)
        self.n_steps_each = torch.ones(1, dtype=torch.int64, device=device)
        self.coefs = torch.zeros(3, device=device)
        self.table: torch.Tensor | None = None  # (L, 3), allocated for the first run's L

    def _step(self) -> None:
        level = torch.div(self.step, self.n_steps_each, rounding_mode="floor")
        self.labels.copy_(level.expand_as(self.labels))
        self.coefs.copy_(self.table.index_select(0, level).view(3))
        h = self.model(self.x.to(dtype=self.dtype, memory_format=self.fmt), self.labels, raw=True)
        langevin_step_(self.x, h, self.coefs, seed=self.seed, step=self.step, sample_ids=self.ids,
                       backend=self.backend)
        self.step.add_(1)

    @torch.inference_mode()
    def __call__(self, x0: torch.Tensor, sigmas: torch.Tensor, *, n_steps_each: int, step_lr: float, seed: int,
                 sample_ids: torch.Tensor, score_scales=None, denoise: bool = False,
                 progress: Callable[[int], None] | None = None) -> torch.Tensor:
        if x0.shape != self.x.shape:
            raise ValueError(f"x0 must have the captured shape {tuple(self.x.shape)}, got {tuple(x0.shape)}")
        sig = torch.as_tensor(sigmas)
        table = coefficient_table(sig, step_lr, score_scales, self.device)
        if self.table is None or self.table.shape != table.shape:
            self.table = torch.empty_like(table)
            self.graphs.clear()  # captured against the old table
        self.table.copy_(table)
        self.n_steps_each.fill_(n_steps_each)
        self.seed.fill_(seed)
        self.ids.copy_(sample_ids)

        def reset():
            self.x.copy_(x0)
            self.step.zero_()
        self._run(len(sig) * n_steps_each, reset, progress)
        x = self.x.clone()
        if denoise:
            self.labels.fill_(len(sig) - 1)
            h = self.model(x.to(dtype=self.dtype, memory_format=self.fmt), self.labels, raw=True)
            x = _denoised(x, h, sig, table)
            if progress is not None:
                progress(1)
        return x
