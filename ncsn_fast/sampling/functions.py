"""Sampling a score function of the user's: any callable fn(x, sigma) returning the score s(x, sigma) or the
denoised image D(x, sigma), with every sampler, the counter-based noise stream and batch invariance.

Nothing is known of the function but the noise levels it was trained for (`sigmas`, largest first): every
sigma in that range is taken as valid. The samplers other than ald run as for our networks (the fast table
loop, CUDA graphs on a GPU when the function can be captured, else eagerly with a warning); ald runs its
reference loop on the function with the stream's noise (a function gives no raw output to fuse).
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Callable

import torch

from ..ops.philox import INIT_STEP, philox_noise, philox_uniform_ref
from .denoiser import Denoiser
from .langevin import anneal_langevin
from .prepare import batches, check_finite
from .runner import ProgramSampler, reference_start, run_reference
from .samplers import SamplerSettings, plan


def function_denoiser(fn: Callable, sigmas, kind: str = "score", centre: float = 0.0) -> Denoiser:
    sig = torch.as_tensor(sigmas, dtype=torch.float64).flatten()
    if len(sig) < 1:
        raise ValueError("sigmas must hold the function's noise levels (largest first)")
    return Denoiser.from_function(fn, float(sig.min()), float(sig.max()), kind=kind, centre=centre)


@torch.no_grad()
def sample_function(fn: Callable | Denoiser, n: int, *, sigmas, shape, kind: str = "score", centre: float = 0.0,
                    sampler="heun", seed: int = 0, batch_size: int | None = None, n_steps_each: int | None = None,
                    step_lr: float | None = None, denoise: bool | None = None, device=None, progress: bool = True,
                    method: str = "fast", first_index: int = 0, backend: str = "auto", graph: bool | None = None,
                    x_init: torch.Tensor | None = None, **sampler_options) -> torch.Tensor:
    """ncsn_fast.sample() for a callable (see its docstring); samples (n, *shape) float32 on the CPU."""
    from tqdm.auto import tqdm

    if (sigmas is None and not isinstance(fn, Denoiser)) or shape is None:
        raise ValueError("sampling a function needs sigmas= (its noise levels, largest first) and shape= "
                         "(of one sample)")
    if method not in ("fast", "reference"):
        raise ValueError(f"method must be 'fast' or 'reference', got {method!r}")
    shape = tuple(shape)
    device = torch.device(device or "cpu")
    den = fn if isinstance(fn, Denoiser) else function_denoiser(fn, sigmas, kind, centre)
    settings = sampler if isinstance(sampler, SamplerSettings) else SamplerSettings(sampler, **sampler_options)
    batch_size = min(n, batch_size or n)
    if x_init is not None and tuple(x_init.shape) != (n, *shape):
        raise ValueError(f"x_init must have shape {(n, *shape)}, got {tuple(x_init.shape)}")
    if settings.name == "ald":
        if n_steps_each is None or step_lr is None:
            raise ValueError("ald on a function needs n_steps_each= and step_lr= (there is no config)")
        ladder = den.ladder if sigmas is None else torch.as_tensor(sigmas, dtype=torch.float64).flatten()
        run = _ald_runner(den, ladder, n_steps_each, step_lr, bool(denoise), shape, seed)
        evals = len(ladder) * n_steps_each + int(bool(denoise))
    else:
        given = {k: v for k, v in (("step_lr", step_lr), ("denoise", denoise)) if v is not None}
        settings = dataclasses.replace(settings, **given)
        if n_steps_each is not None:
            raise ValueError(f"n_steps_each sets annealed Langevin (ald); {settings.name} takes steps=")
        run, evals = _planned_runner(den, settings, shape, seed, device, method, backend, graph)
    outs = []
    n_batches = math.ceil(n / batch_size)
    with tqdm(total=None if evals is None else evals * n_batches, desc=settings.name, unit="eval",
              disable=not progress, leave=False) as bar:
        for ids, start in batches(n, batch_size, first_index, x_init):
            x = run(ids, device, None if start is None else start.float().to(device), bar.update)
            outs.append(check_finite(x, ids, f"the {settings.name} sampler's settings may not suit this function")
                        .float().cpu())
    return torch.cat(outs)


def _ald_runner(den: Denoiser, ladder: torch.Tensor, n_steps_each: int, step_lr: float, denoise: bool, shape,
                seed: int):
    def score(x, level):
        return den.score(x, float(ladder[level]))

    def run(ids, device, start, progress):
        x0 = start if start is not None else \
            philox_uniform_ref(seed, INIT_STEP, ids, math.prod(shape)).view(len(ids), *shape).to(device)
        return anneal_langevin(score, x0, ladder, n_steps_each=n_steps_each, step_lr=step_lr, denoise=denoise,
                               noise=philox_noise(seed, ids.to(device)), progress=progress)
    return run


def _planned_runner(den: Denoiser, settings: SamplerSettings, shape, seed: int, device, method: str, backend: str,
                    graph: bool | None):
    if method == "fast":
        fs = ProgramSampler(den, None, settings, seed=seed, device=device, backend=backend, graph=graph, shape=shape)

        def run(ids, device, start, progress):
            return fs(ids, progress, x_init=start)
        return run, fs.evals
    p = plan(settings, den, None)

    def run_ref(ids, device, start, progress):
        x0 = start if start is not None else reference_start(den, p, seed, ids, shape).to(device)
        return run_reference(p, den, x0, philox_noise(seed, ids.to(device)), progress)
    return run_ref, p.evals
