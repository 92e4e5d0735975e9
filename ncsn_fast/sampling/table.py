"""A fixed-step sampler as a table: one row per network evaluation, each followed by one fused update.

Every fixed-step sampler here (annealed Langevin, CAS, EDM's Euler / Heun / stochastic, DPM-Solver++(2M),
predictor-corrector) updates its state after each evaluation by a linear combination of the state x, the score
s of that evaluation, one auxiliary buffer p (Heun's half step, DPM-Solver's previous denoised image) and the
noise z:

    x' = a_x x + a_s s + a_p p + a_z z          p' = p_x x + p_s s + p_p p

so a sampler compiles to rows {sigma, a, p coefficients, noise step}, and one loop runs them all: evaluate
the network at the row's sigma, then one fused kernel (ops/sampler_update.py) that draws z from the stream in
place. A Langevin row of annealed Langevin is a_x = 1, a_s = alpha, a_p = 0, a_z = sqrt(2 alpha); a Langevin
corrector row (snr > 0) scales a_s and a_z per sample by eps and sqrt(2 eps) with eps = 2 (snr ||z|| / ||s||)^2
(score-SDE's corrector), computed on the device before the update. The reference form of each sampler (its
paper's notation, beside its builder) is what the table is tested against.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
import torch

from ..ops.philox import INIT_STEP, philox_normal, philox_normal_ref, philox_uniform_ref
from ..ops.sampler_update import sampler_update_, sampler_update_ref
from .denoiser import Denoiser
from .graphs import CapturedSteps
from .schedules import INIT_NORMAL_STEP, gaussian_start

Progress = Callable[[int], object] | None


@dataclass(frozen=True)
class Row:
    sigma: float  # where the network is evaluated
    a: tuple[float, float, float, float]  # x' = a_x x + a_s s + a_p p + a_z z
    p: tuple[float, float, float] = (0.0, 0.0, 1.0)  # p' = p_x x + p_s s + p_p p (default: p kept, not moved)
    noise: int = 0  # the stream step z is drawn at
    snr: float = 0.0  # > 0: a Langevin corrector row (a_s, a_z scaled per sample by eps, sqrt(2 eps))
    # A row on the model's own Langevin level (annealed Langevin): the network gets that level's label, the score
    # scale is the network's float32 c_i, and a_s c_i is rounded as float32 arithmetic, as the original's update.
    level: int | None = None


@dataclass
class Program:
    rows: list[Row]
    start_sigma: float  # x_T = centre + start_sigma z, z at INIT_NORMAL_STEP
    start_noise: tuple[float, int] = (0.0, 0)  # then x_T += nu z' with z' at this step (EDM's first churn)
    batch_mean: bool = False  # corrector steps from batch means of the norms (the original) instead of per sample
    start: str = "gaussian"  # or "uniform": x_0 = the model's data_transform of U[0, 1] (annealed Langevin)

    @property
    def evals(self) -> int:
        return len(self.rows)

    def describe_row(self, r: int) -> str:
        """Where row r is in the sampler, for messages: annealed Langevin's level and step, or the step of N."""
        row = self.rows[r]
        if row.level is None:
            return f"step {r + 1} of {len(self.rows)} (sigma = {row.sigma:.4g})"
        denoise = self.start == "uniform" and self.rows[-1].a[3] == 0.0  # annealed Langevin's final row
        if denoise and r == len(self.rows) - 1:
            return f"the final denoising step (sigma = {row.sigma:.4g})"
        steps = [i for i, q in enumerate(self.rows[: len(self.rows) - denoise]) if q.level == row.level]
        levels = len({q.level for q in self.rows})
        return (f"level {row.level} of {levels} (sigma = {row.sigma:.4g}), step {steps.index(r) + 1} of "
                f"{len(steps)}")

    def tables(self, denoiser: Denoiser, device) -> dict[str, torch.Tensor]:
        """The rows as device tensors: coefs (R, 8) = {a_x, a_h, a_p, a_z, p_x, p_h, p_p, c} on the raw network
        output h (s = c h), sigma (R,), level (R,), noise (R,), snr (R,)."""
        coefs, levels = [], []
        for r in self.rows:
            if r.level is None:
                c = denoiser.scale(r.sigma)
                coefs.append([r.a[0], r.a[1] * c, r.a[2], r.a[3], r.p[0], r.p[1] * c, r.p[2], c])
                levels.append(denoiser.level(r.sigma))
            else:
                c32 = np.float32(denoiser.level_scales[r.level])
                coefs.append([r.a[0], np.float32(r.a[1]) * c32, r.a[2], r.a[3], r.p[0], np.float32(r.p[1]) * c32,
                              r.p[2], c32])
                levels.append(r.level)
        f32 = dict(dtype=torch.float32, device=device)
        return {"coefs": torch.tensor(np.array(coefs, dtype=np.float64), **f32).reshape(-1, 8),
                "sigma": torch.tensor([r.sigma for r in self.rows], **f32),
                "level": torch.tensor(levels, dtype=torch.long, device=device),
                "noise": torch.tensor([r.noise for r in self.rows], dtype=torch.long, device=device),
                "snr": torch.tensor([r.snr for r in self.rows], **f32)}

    def initial_state(self, denoiser: Denoiser, seed: int, ids: torch.Tensor, shape: tuple[int, ...], device,
                      generator: torch.Generator | None = None, reference: bool = False) -> torch.Tensor:
        """x_T of samples `ids`, drawn from the stream on the CPU (or from `generator`, batch after batch, as the
        original samplers draw): centre + sigma_max z (+ nu z', but not for the reference, whose first churn is
        its own), or the model's transform of U[0, 1]."""
        ids = ids.cpu()
        numel = math.prod(shape)
        if self.start == "uniform":
            u = torch.rand(len(ids), *shape, generator=generator) if generator is not None else \
                philox_uniform_ref(seed, INIT_STEP, ids, numel).view(len(ids), *shape)
            return denoiser.to_model_space(u).to(device)
        z = torch.randn(len(ids), numel, generator=generator) if generator is not None else \
            philox_normal_ref(seed, INIT_NORMAL_STEP, ids, numel)
        x = gaussian_start(denoiser, self.start_sigma, z)
        nu, step = self.start_noise
        if nu and not reference:
            x = x + nu * philox_normal_ref(seed, step, ids, numel)
        return x.view(len(ids), *shape).to(device)


class Divergence:
    """Watches the sampler's state for NaN / inf: after each row a device-side flag keeps the first row whose x was
    not finite (no host synchronisation); the host reads it when it waits for the device anyway, and raises
    FloatingPointError naming the samples and the row."""

    def __init__(self, program: Program, device):
        self.program = program
        self.bad_row = torch.full((1,), -1, dtype=torch.int64, device=device)

    def update(self, x: torch.Tensor, r) -> None:
        bad = ~torch.isfinite(x).all()
        self.bad_row.copy_(torch.where(bad & (self.bad_row < 0), r, self.bad_row))

    def check(self, x: torch.Tensor, sample_ids: torch.Tensor) -> None:
        r = int(self.bad_row)
        if r < 0:
            return
        n = x.shape[0]
        bad = (~torch.isfinite(x.reshape(n, -1)).all(1)).cpu()
        ids = sample_ids.cpu()[bad[: len(sample_ids)]].tolist() or sample_ids.cpu().tolist()
        more = f" (and {len(ids) - 1} more)" if len(ids) > 1 else ""
        raise FloatingPointError(f"sample {ids[0]}{more} became NaN or inf at {self.program.describe_row(r)}")


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
                backend: str = "auto", progress: Progress = None, constraint=None, noise=None,
                stats: list | None = None) -> torch.Tensor:
    """The fused loop: per row, the network at the row's sigma, then one sampler_update_ (eager, any device).

    constraint(x, level, r): applied to x before row r (inpainting; level = the row's ladder index).
    noise(step, x): a NoiseSampler to draw z from instead of the in-kernel stream (interpolation); the update is
        then sampler_update_ref with that z, no longer one fused kernel.
    stats: a list that receives, per row, the (N, 2) per-sample norms [||c h||, ||z||] on the device (the original
        Langevin sampler's grad_norm and noise_norm before the batch mean).
    A state that becomes NaN or inf ends the run within a few rows (every row on the CPU, every 8 on a GPU) with a
    FloatingPointError naming the samples and the row (Divergence).
    """
    device = x.device
    x = x.detach().to(torch.float32).contiguous().clone()
    p = torch.zeros_like(x)
    t = program.tables(denoiser, device)
    ids = sample_ids.to(device=device, dtype=torch.int64)
    n = x.shape[0]
    seed_t = torch.tensor([seed], dtype=torch.int64, device=device)
    step_t = torch.zeros(1, dtype=torch.int64, device=device)
    ones = torch.ones(n, 2, device=device)
    levels = t["level"].tolist() if constraint is not None else None
    watch, every = Divergence(program, device), (1 if device.type == "cpu" else 8)
    for r, row in enumerate(program.rows):
        if constraint is not None:
            x = constraint(x, levels[r], r).contiguous()
        h = denoiser.net(x, t["sigma"][r].expand(n), t["level"][r].expand(n))
        step_t.fill_(row.noise)
        mult = ones
        z = None
        if row.snr > 0 or noise is not None or stats is not None:
            z = noise(row.noise, x) if noise is not None else \
                philox_normal(seed_t, step_t, ids, x[0].numel(), backend=backend).view_as(x)
        if row.snr > 0:
            mult = corrector_multipliers(h, t["coefs"][r, 7], t["snr"][r], z, program.batch_mean)
        if stats is not None:
            stats.append(torch.stack([h.float().reshape(n, -1).norm(dim=1) * t["coefs"][r, 7].abs(),
                                      z.reshape(n, -1).norm(dim=1)], dim=1))
        if noise is not None:
            x, p = sampler_update_ref(x, p, h, t["coefs"][r], mult, z)
        else:
            sampler_update_(x, p, h, t["coefs"][r], mult, seed=seed_t, step=step_t, sample_ids=ids, backend=backend)
        watch.update(x, r)
        if r % every == every - 1:
            watch.check(x, ids)
        if progress is not None:
            progress(1)
    watch.check(x, ids)
    return x


class GraphedProgram(CapturedSteps):
    """run_program with all its state on the device, captured in CUDA graphs and replayed (graphs.py).

    Static buffers hold x, p, the sample indices, the seed, the row counter r and the program's tables, packed in
    two: floats (R, 10) = {sigma, the 8 coefficients, snr} and integers (R, 2) = {level, noise step}. One step
    gathers row r of each with one index_select into a static row (the network's sigma and level, the noise step
    and the coefficients are views of it), evaluates the network, computes a corrector's multipliers if the
    program has corrector rows, runs the fused update and does r += 1: four small kernels around the network
    and the update. So one graph of k steps serves every row of any program of the same length: annealed
    Langevin's whole run is (L T + 1) / k replays of one graph.
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
        self.row_f = torch.zeros(1, 10, device=device)  # row r: sigma, coefs (8), snr
        self.row_i = torch.zeros(1, 2, dtype=torch.int64, device=device)  # row r: level, noise step
        self.sigma, self.coefs, self.snr = self.row_f[0, 0].expand(n), self.row_f[0, 1:9], self.row_f[0, 9]
        self.level, self.noise = self.row_i[0, 0].expand(n), self.row_i[0, 1:2]
        self.mult = torch.ones(n, 2, device=device)
        self.tables: dict[str, torch.Tensor] | None = None
        self.adaptive, self.batch_mean = False, False
        self.watch: Divergence | None = None

    def _step(self) -> None:
        torch.index_select(self.tables["f"], 0, self.r, out=self.row_f)
        torch.index_select(self.tables["i"], 0, self.r, out=self.row_i)
        h = self.denoiser.net(self.x, self.sigma, self.level)
        if self.adaptive:
            z = philox_normal(self.seed, self.noise, self.ids, self.x[0].numel(), backend=self.backend)
            self.mult.copy_(corrector_multipliers(h, self.coefs[7], self.snr, z, self.batch_mean))
        sampler_update_(self.x, self.p, h, self.coefs, self.mult, seed=self.seed, step=self.noise, sample_ids=self.ids,
                        backend=self.backend)
        self.watch.update(self.x, self.r)
        self.r.add_(1)

    @torch.inference_mode()
    def __call__(self, program: Program, x0: torch.Tensor, *, seed: int, sample_ids: torch.Tensor,
                 progress: Progress = None) -> torch.Tensor:
        if x0.shape != self.x.shape:
            raise ValueError(f"x0 must have the captured shape {tuple(self.x.shape)}, got {tuple(x0.shape)}")
        t = program.tables(self.denoiser, self.device)
        tables = {"f": torch.cat([t["sigma"][:, None], t["coefs"], t["snr"][:, None]], dim=1),
                  "i": torch.stack([t["level"], t["noise"]], dim=1)}
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
        if self.watch is None:
            self.watch = Divergence(program, self.device)
        self.watch.program = program

        def reset():
            self.x.copy_(x0)
            self.p.zero_()
            self.r.zero_()
            self.mult.fill_(1.0)
            self.watch.bad_row.fill_(-1)
        self._run(program.evals, reset, progress, check=lambda: self.watch.check(self.x, self.ids))
        return self.x.clone()
