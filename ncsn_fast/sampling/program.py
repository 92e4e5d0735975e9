"""A fixed-step sampler as a table: one row per network evaluation, each followed by one fused update.

Every fixed-step sampler here (CAS, EDM's Euler / Heun / stochastic, DPM-Solver++(2M), predictor-corrector)
updates its state after each evaluation by a linear combination of the state x, the score s of that
evaluation, one auxiliary buffer p (Heun's half step, DPM-Solver's previous denoised image) and the noise z:

    x' = a_x x + a_s s + a_p p + a_z z          p' = p_x x + p_s s + p_p p

so a sampler compiles to rows {sigma, a, p coefficients, noise step}, and one loop runs them all: evaluate
the network at the row's sigma, then one fused kernel (ops/sampler_update.py) that draws z from the stream in
place. A Langevin corrector row (snr > 0) scales a_s and a_z per sample by eps and sqrt(2 eps) with
eps = 2 (snr ||z|| / ||s||)^2 (score-SDE's corrector), computed on the device before the update. The
reference form of each sampler (its paper's notation, beside its builder) is what the table is tested
against.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass

import torch

from ..ops.philox import philox_normal, philox_normal_ref
from ..ops.sampler_update import sampler_update_
from .denoiser import Denoiser
from .graphs import CapturedSteps
from .schedules import INIT_NORMAL_STEP, gaussian_start


@dataclass(frozen=True)
class Row:
    sigma: float  # where the network is evaluated
    a: tuple[float, float, float, float]  # x' = a_x x + a_s s + a_p p + a_z z
    p: tuple[float, float, float] = (0.0, 0.0, 0.0)  # p' = p_x x + p_s s + p_p p
    noise: int = 0  # the stream step z is drawn at
    snr: float = 0.0  # > 0: a Langevin corrector row (a_s, a_z scaled per sample by eps, sqrt(2 eps))


@dataclass
class Program:
    rows: list[Row]
    start_sigma: float  # x_T = centre + start_sigma z, z at INIT_NORMAL_STEP
    start_noise: tuple[float, int] = (0.0, 0)  # then x_T += nu z' with z' at this step (EDM's first churn)
    batch_mean: bool = False  # corrector steps from batch means of the norms (the original) instead of per sample

    @property
    def evals(self) -> int:
        return len(self.rows)

    def tables(self, denoiser: Denoiser, device) -> dict[str, torch.Tensor]:
        """The rows as device tensors: coefs (R, 8) = {a_x, a_h, a_p, a_z, p_x, p_h, p_p, c} on the raw network
        output h (s = c h), sigma (R,), level (R,), noise (R,), snr (R,)."""
        coefs = []
        for r in self.rows:
            c = denoiser.scale(r.sigma)
            coefs.append([r.a[0], r.a[1] * c, r.a[2], r.a[3], r.p[0], r.p[1] * c, r.p[2], c])
        f32 = dict(dtype=torch.float32, device=device)
        return {"coefs": torch.tensor(coefs, **f32).reshape(-1, 8),
                "sigma": torch.tensor([r.sigma for r in self.rows], **f32),
                "level": torch.tensor([denoiser.level(r.sigma) for r in self.rows], dtype=torch.long, device=device),
                "noise": torch.tensor([r.noise for r in self.rows], dtype=torch.long, device=device),
                "snr": torch.tensor([r.snr for r in self.rows], **f32)}

    def initial_state(self, denoiser: Denoiser, seed: int, ids: torch.Tensor, shape: tuple[int, ...],
                      device) -> torch.Tensor:
        """x_T of samples `ids`: centre + sigma_max z (+ nu z'), drawn from the stream on the CPU."""
        ids = ids.cpu()
        numel = math.prod(shape)
        x = gaussian_start(denoiser, self.start_sigma, philox_normal_ref(seed, INIT_NORMAL_STEP, ids, numel))
        nu, step = self.start_noise
        if nu:
            x = x + nu * philox_normal_ref(seed, step, ids, numel)
        return x.view(len(ids), *shape).to(device)


def corrector_multipliers(h: torch.Tensor, c: torch.Tensor, snr: torch.Tensor, z: torch.Tensor,
                          batch_mean: bool) -> torch.Tensor:
    """(N, 2) {eps, sqrt(2 eps)} with eps = 2 (snr ||z|| / ||c h||)^2 per sample (or from batch means), for a
    corrector row; ones elsewhere (snr = 0). All on the device, no host synchronisation."""
    n = h.shape[0]
    s_norm = h.float().reshape(n, -1).norm(dim=1) * c.abs()
    z_norm = z.reshape(n, -1).norm(dim=1)
    if batch_mean:
        s_norm, z_norm = s_norm.mean().expand(n), z_norm.mean().expand(n)
    eps = 2 * (snr * z_norm / s_norm) ** 2
    mult = torch.stack([eps, (2 * eps).sqrt()], dim=1)
    return torch.where(snr > 0, mult, torch.ones_like(mult))


@torch.inference_mode()
def run_program(program: Program, denoiser: Denoiser, x: torch.Tensor, *, seed: int, sample_ids: torch.Tensor,
                backend: str = "auto", progress: Callable[[int], object] | None = None) -> torch.Tensor:
    """The fused loop: per row, the network at the row's sigma, then one sampler_update_ (eager, any device)."""
    device = x.device
    x = x.detach().to(torch.float32).contiguous().clone()
    p = torch.zeros_like(x)
    t = program.tables(denoiser, device)
    ids = sample_ids.to(device=device, dtype=torch.int64)
    n = x.shape[0]
    seed_t = torch.tensor([seed], dtype=torch.int64, device=device)
    step_t = torch.zeros(1, dtype=torch.int64, device=device)
    ones = torch.ones(n, 2, device=device)
    for r, row in enumerate(program.rows):
        h = denoiser.net(x, t["sigma"][r].expand(n), t["level"][r].expand(n))
        step_t.fill_(row.noise)
        mult = ones
        if row.snr > 0:
            z = philox_normal(seed_t, step_t, ids, x[0].numel(), backend=backend)
            mult = corrector_multipliers(h, t["coefs"][r, 7], t["snr"][r], z, program.batch_mean)
        sampler_update_(x, p, h, t["coefs"][r], mult, seed=seed_t, step=step_t, sample_ids=ids, backend=backend)
        if progress is not None:
            progress(1)
    return x


class GraphedProgram(CapturedSteps):
    """run_program with all its state on the device, captured in CUDA graphs and replayed (graphs.py).

    Static buffers hold x, p, the sample indices, the seed, the row counter r and the program's tables; one
    step gathers row r (sigma, level, noise step, coefficients) on the device, evaluates the network, computes
    a corrector's multipliers if the program has corrector rows, runs the fused update and does r += 1. So one
    graph of k steps serves every row of any program of the same length.
    """

    def __init__(self, denoiser: Denoiser, batch_size: int, image_shape: tuple[int, ...], device, *,
                 backend: str = "auto", steps_per_graph: int = 1, capture: bool = True, warmup: int = 2):
        device = torch.device(device)
        super().__init__(device, steps_per_graph, capture, warmup)
        self.denoiser, self.backend = denoiser, backend
        n = batch_size
        self.x = torch.zeros(n, *image_shape, device=device)
        self.p = torch.zeros_like(self.x)
        self.ids = torch.arange(n, device=device)
        self.seed = torch.zeros(1, dtype=torch.int64, device=device)
        self.r = torch.zeros(1, dtype=torch.int64, device=device)
        self.sigma = torch.zeros(n, device=device)
        self.level = torch.zeros(n, dtype=torch.long, device=device)
        self.noise = torch.zeros(1, dtype=torch.int64, device=device)
        self.coefs = torch.zeros(8, device=device)
        self.mult = torch.ones(n, 2, device=device)
        self.tables: dict[str, torch.Tensor] | None = None
        self.adaptive, self.batch_mean = False, False

    def _step(self) -> None:
        t, r = self.tables, self.r
        self.sigma.copy_(t["sigma"].index_select(0, r).expand_as(self.sigma))
        self.level.copy_(t["level"].index_select(0, r).expand_as(self.level))
        self.noise.copy_(t["noise"].index_select(0, r))
        self.coefs.copy_(t["coefs"].index_select(0, r).view(8))
        h = self.denoiser.net(self.x, self.sigma, self.level)
        if self.adaptive:
            z = philox_normal(self.seed, self.noise, self.ids, self.x[0].numel(), backend=self.backend)
            self.mult.copy_(corrector_multipliers(h, self.coefs[7], t["snr"].index_select(0, r), z, self.batch_mean))
        sampler_update_(self.x, self.p, h, self.coefs, self.mult, seed=self.seed, step=self.noise, sample_ids=self.ids,
                        backend=self.backend)
        self.r.add_(1)

    @torch.inference_mode()
    def __call__(self, program: Program, x0: torch.Tensor, *, seed: int, sample_ids: torch.Tensor,
                 progress: Callable[[int], object] | None = None) -> torch.Tensor:
        if x0.shape != self.x.shape:
            raise ValueError(f"x0 must have the captured shape {tuple(self.x.shape)}, got {tuple(x0.shape)}")
        tables = program.tables(self.denoiser, self.device)
        adaptive = any(row.snr > 0 for row in program.rows)
        shapes = {k: v.shape for k, v in tables.items()}
        if (self.tables is None or shapes != {k: v.shape for k, v in self.tables.items()}
                or (adaptive, program.batch_mean) != (self.adaptive, self.batch_mean)):
            self.tables = {k: torch.empty_like(v) for k, v in tables.items()}
            self.adaptive, self.batch_mean = adaptive, program.batch_mean
            self.graphs.clear()  # captured against the old tables
        for k, v in tables.items():
            self.tables[k].copy_(v)
        self.seed.fill_(seed)
        self.ids.copy_(sample_ids)

        def reset():
            self.x.copy_(x0)
            self.p.zero_()
            self.r.zero_()
            self.mult.fill_(1.0)
        self._run(program.evals, reset, progress)
        return self.x.clone()
