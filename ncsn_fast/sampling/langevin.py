"""Annealed Langevin dynamics (Song & Ermon 2019, 2020): the eager reference samplers and the table of rows.

For each level i (largest sigma first), T steps of x <- x + alpha_i s(x, i) + sqrt(2 alpha_i) z with
alpha_i = step_lr (sigma_i / sigma_L)^2; NCSNv2 adds a final x <- x + sigma_L^2 s(x, L-1).
`anneal_langevin` is a pure function of a score function `score(x, level) -> Tensor` (level an int, 0 = largest
sigma) and a noise sampler, so it serves any score, not only our networks. With the torch generator it
reproduces the original code's samples for the same seed: same float32 op order, step sizes computed in the
dtype of the sigmas the original used, one randn per step. `sample_ald` is the same on a Denoiser's own levels
(the samplers' shared signature); `ald_program` the same as table rows of the one fused update (table.py):
row i = (a_x, a_s, a_p, a_z) = (1, alpha_l, 0, sqrt(2 alpha_l)) with z at stream step i, then the denoising row.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

import numpy as np
import torch

from .table import Program, Row

Score = Callable[[torch.Tensor, int], torch.Tensor]
NoiseSampler = Callable[[int, torch.Tensor], torch.Tensor]  # (global step index, x) -> z
Callback = Callable[[dict], None]
Constraint = Callable[[torch.Tensor, int, int], torch.Tensor]  # (x, level, step index) -> x before the step


def langevin_schedule(sigmas: torch.Tensor | Sequence[float], step_lr: float,
                      numpy1_legacy: bool = False) -> tuple[np.ndarray, np.ndarray]:
    """Step sizes alpha_i = step_lr (sigma_i / sigma_L)^2 and noise scales sqrt(2 alpha_i).

    Computed in the precision of `sigmas`, as the originals do: NCSN v1 passes float64 sigmas;
    NCSNv2 passes float32 numpy sigmas, so under NumPy >= 2 its steps are float32.
    numpy1_legacy: float32 sigmas under NumPy 1's rules (ratio in float32, product in float64),
    the values the NCSNv2 code produced with the NumPy it pinned.
    """
    s = torch.as_tensor(sigmas).numpy()
    ratio2 = (s / s[-1]) ** 2
    alphas = step_lr * (ratio2.astype(np.float64) if numpy1_legacy else ratio2)
    return alphas, np.sqrt(alphas * 2)


def torch_noise(generator: torch.Generator | None = None) -> NoiseSampler:
    """One torch.randn of x's shape per step, from `generator` (None: torch's default generator)."""
    def sample(step: int, x: torch.Tensor) -> torch.Tensor:
        return torch.randn(x.shape, generator=generator, dtype=x.dtype, device=x.device)
    return sample


@torch.no_grad()
def anneal_langevin(score: Score, x: torch.Tensor, sigmas: torch.Tensor, *, n_steps_each: int,
                    step_lr: float, noise_first: bool = False, denoise: bool = False,
                    noise: NoiseSampler | None = None, numpy1_legacy: bool = False,
                    callback: Callback | None = None, progress: Callable[[int], None] | None = None,
                    constraint: Constraint | None = None) -> torch.Tensor:
    """Annealed Langevin dynamics; returns the final x (after the denoising step if `denoise`).

    noise_first: draw z before the score call (NCSN v1) or after it (NCSNv2); this matters only for
        a score that itself draws random numbers from the same generator.
    callback: called after every update with {'i', 'level', 'sigma', 'step_size', 'x', 'grad', 'z'}
        ('denoise': True and z None for the final step); use it for trajectories and statistics.
    progress: called with the number of score evaluations just done (e.g. a tqdm bar's update).
    constraint: applied to x before every step (inpainting: see `inpainting_constraint`).
    """
    if n_steps_each < 1:
        raise ValueError(f"n_steps_each must be >= 1, got {n_steps_each}")
    noise = noise or torch_noise()
    sig = torch.as_tensor(sigmas)
    alphas, noise_scales = langevin_schedule(sig, step_lr, numpy1_legacy)
    i = 0
    for level, (alpha, noise_scale) in enumerate(zip(alphas.tolist(), noise_scales.tolist())):
        # Langevin steps at noise level `level`.
        for _ in range(n_steps_each):
            if constraint is not None:
                x = constraint(x, level, i)
            if noise_first:
                z = noise(i, x)
                grad = score(x, level)
            else:
                grad = score(x, level)
                z = noise(i, x)
            x = x + alpha * grad + z * noise_scale
            if callback is not None:
                callback({"i": i, "level": level, "sigma": float(sig[level]), "step_size": alpha,
                          "x": x, "grad": grad, "z": z})
            if progress is not None:
                progress(1)
            i += 1
    if denoise:
        # Tweedie denoising at the smallest sigma: x + sigma_L^2 s(x, sigma_L).
        last = len(alphas) - 1
        grad = score(x, last)
        x = x + _square(sig[-1]) * grad
        if callback is not None:
            callback({"i": i, "level": last, "sigma": float(sig[-1]), "step_size": _square(sig[-1]),
                      "x": x, "grad": grad, "z": None, "denoise": True})
        if progress is not None:
            progress(1)
    return x


def sample_ald(denoiser, x: torch.Tensor, sigmas: torch.Tensor, *, noise: NoiseSampler | None = None,
               n_steps_each: int, step_lr: float, denoise: bool = False, noise_first: bool = False,
               numpy1_legacy: bool = False, callback: Callback | None = None,
               progress: Callable[[int], None] | None = None, constraint: Constraint | None = None) -> torch.Tensor:
    """Annealed Langevin dynamics on the denoiser's own levels (sigmas = denoiser.levels: level i is sigmas[i]),
    with the score as its network computes it; L T evaluations (+ 1 to denoise)."""
    return anneal_langevin(denoiser.level_score, x, sigmas, n_steps_each=n_steps_each, step_lr=step_lr,
                           noise_first=noise_first, denoise=denoise, noise=noise, numpy1_legacy=numpy1_legacy,
                           callback=callback, progress=progress, constraint=constraint)


def ald_program(sigmas: torch.Tensor, *, n_steps_each: int, step_lr: float, denoise: bool = False,
                numpy1_legacy: bool = False) -> Program:
    """Annealed Langevin as table rows on the model's levels 0..L-1: T rows per level, the noise of global step i
    at stream step i, then (denoise) x + sigma_L^2 s(x, sigma_L) as a row without noise. Starts from the model's
    transform of U[0, 1], as the originals."""
    if n_steps_each < 1:
        raise ValueError(f"n_steps_each must be >= 1, got {n_steps_each}")
    sig = torch.as_tensor(sigmas)
    alphas, noise_scales = langevin_schedule(sig, step_lr, numpy1_legacy)
    rows, i = [], 0
    for level, (alpha, b) in enumerate(zip(alphas.tolist(), noise_scales.tolist())):
        for _ in range(n_steps_each):
            rows.append(Row(float(sig[level]), (1.0, alpha, 0.0, b), noise=i, level=level))
            i += 1
    if denoise:
        last = len(alphas) - 1
        rows.append(Row(float(sig[last]), (1.0, _square(sig[last]), 0.0, 0.0), noise=i, level=last))
    return Program(rows, start_sigma=float(sig[0]), start="uniform")


def _square(s: torch.Tensor) -> float:
    """sigma^2 in the sigma's own precision (the original squares a numpy float32 / float64)."""
    return float(s.numpy() ** 2)


def anneal_langevin_v1(score: Score, x: torch.Tensor, sigmas: torch.Tensor, *, n_steps_each: int = 100,
                       step_lr: float = 2e-5, denoise: bool = False, **kwargs) -> torch.Tensor:
    """NCSN v1 sampler (runners/anneal_runner.py): noise drawn before the score call, no denoising."""
    return anneal_langevin(score, x, sigmas, n_steps_each=n_steps_each, step_lr=step_lr,
                           noise_first=True, denoise=denoise, **kwargs)


def anneal_langevin_v2(score: Score, x: torch.Tensor, sigmas: torch.Tensor, *, n_steps_each: int,
                       step_lr: float, denoise: bool = True, **kwargs) -> torch.Tensor:
    """NCSNv2 sampler (models/__init__.py): noise drawn after the score call, final denoising."""
    return anneal_langevin(score, x, sigmas, n_steps_each=n_steps_each, step_lr=step_lr,
                           noise_first=False, denoise=denoise, **kwargs)


# Step indices of the re-noising draws of inpainting: a range of the stream no Langevin step reaches.
INPAINT_STEP_OFFSET = 1 << 31


def inpainting_constraint(known: torch.Tensor, mask: torch.Tensor, sigmas: torch.Tensor,
                          noise: NoiseSampler) -> Constraint:
    """NCSNv2's inpainting (anneal_Langevin_dynamics_inpainting): before every step the known pixels are
    set to the data re-noised at the current sigma, known + sigma_i z'. mask: bool, True where known,
    broadcastable to x. z' comes from `noise` at step index INPAINT_STEP_OFFSET + i, so with the Philox
    stream it never coincides with a Langevin step's noise."""
    sig = [float(s) for s in torch.as_tensor(sigmas)]

    def constrain(x: torch.Tensor, level: int, i: int) -> torch.Tensor:
        z = noise(INPAINT_STEP_OFFSET + i, x)
        return torch.where(mask, known + sig[level] * z, x)
    return constrain


def impose_known(x: torch.Tensor, known: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    """The final inpainted image: the known pixels exactly, the sampled ones elsewhere."""
    return torch.where(mask, known.to(x.dtype), x)


# Step indices of the second draw of interpolation noise (q below): another unused range of the stream.
INTERP_STEP_OFFSET = 1 << 30


def interpolation_start(x_rows: torch.Tensor, n_interpolations: int) -> torch.Tensor:
    """Each row's start repeated n_interpolations times: (R, ...) -> (R * n, ...), row-major."""
    return x_rows[:, None].repeat(1, n_interpolations, *([1] * (x_rows.dim() - 1))).reshape(-1, *x_rows.shape[1:])


def interpolation_noise(row_noise: NoiseSampler, n_interpolations: int) -> NoiseSampler:
    """NCSNv2's interpolation noise: per row two draws p, q mixed as cos(t_k) p + sin(t_k) q with
    t = linspace(0, pi/2, n), so the n samples of a row follow a path between two Langevin chains.
    row_noise draws for the R rows (x[::n]); q at step index INTERP_STEP_OFFSET + i."""
    def sample(i: int, x: torch.Tensor) -> torch.Tensor:
        rows = x[::n_interpolations]
        p, q = row_noise(i, rows), row_noise(INTERP_STEP_OFFSET + i, rows)
        t = torch.linspace(0, np.pi / 2.0, n_interpolations, device=x.device, dtype=x.dtype)
        shape = (1, n_interpolations) + (1,) * (x.dim() - 1)
        z = p[:, None] * torch.cos(t).view(shape) + q[:, None] * torch.sin(t).view(shape)
        return z.reshape(x.shape)
    return sample


class Trajectory:
    """Callback keeping a host copy of x after every `every`-th update (and after denoising)."""

    def __init__(self, every: int = 1, include_denoised: bool = True):
        self.every, self.include_denoised = every, include_denoised
        self.steps: list[int] = []
        self.states: list[torch.Tensor] = []

    def __call__(self, info: dict) -> None:
        if info.get("denoise") and not self.include_denoised:
            return
        if info.get("denoise") or info["i"] % self.every == 0:
            self.steps.append(info["i"])
            self.states.append(info["x"].detach().to("cpu", copy=True))


class LangevinStats:
    """Callback recording the original sampler's statistics, kept on the device until `summary()`.

    Per step: grad_norm and noise_norm (batch means of per-sample L2 norms), image_norm,
    snr = sqrt(alpha / 2) grad_norm / noise_norm, grad_mean_norm = ||mean_batch grad||^2 sigma^2.
    """

    def __init__(self):
        self._rows: list[tuple[int, float, torch.Tensor]] = []

    def __call__(self, info: dict) -> None:
        if info.get("denoise"):
            return
        grad, z, x = info["grad"], info["z"], info["x"]
        n = grad.shape[0]
        grad_norm = grad.reshape(n, -1).norm(dim=-1).mean()
        noise_norm = z.reshape(n, -1).norm(dim=-1).mean()
        image_norm = x.reshape(n, -1).norm(dim=-1).mean()
        snr = float(np.sqrt(info["step_size"] / 2.0)) * grad_norm / noise_norm
        grad_mean_norm = grad.mean(dim=0).reshape(-1).norm() ** 2 * info["sigma"] ** 2
        self._rows.append((info["level"], info["step_size"],
                           torch.stack([grad_norm, noise_norm, image_norm, snr, grad_mean_norm])))

    def summary(self) -> list[dict]:
        """Per level: step size and the mean over its steps of each statistic (one host transfer)."""
        if not self._rows:
            return []
        values = torch.stack([r[2] for r in self._rows]).float().cpu()
        out: dict[int, dict] = {}
        for (level, alpha, _), v in zip(self._rows, values):
            row = out.setdefault(level, {"level": level, "step_size": alpha, "n": 0,
                                         "sums": torch.zeros(5)})
            row["n"] += 1
            row["sums"] += v
        names = ("grad_norm", "noise_norm", "image_norm", "snr", "grad_mean_norm")
        result = []
        for row in out.values():
            means = (row.pop("sums") / row["n"]).tolist()
            row.update(dict(zip(names, means)))
            result.append(row)
        return result
