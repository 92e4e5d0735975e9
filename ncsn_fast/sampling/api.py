"""ncsn_fast.sample(): a model (ours, an NCSN++, or any score function) resolved into a Denoiser, a sampler planned
on it, and one batch loop with one progress bar running the fast path or the reference."""

from __future__ import annotations

import dataclasses
import math
import warnings
from collections.abc import Callable
from dataclasses import dataclass

import torch
from tqdm.auto import tqdm

from ..machine import SlowDtypeWarning, resolve_dtype
from ..models import is_ncsnpp
from .denoiser import Denoiser
from .plan import SamplerSettings
from .run import ReferenceSampler, Sampler, batches


def model_score(model: torch.nn.Module) -> Callable[[torch.Tensor, int], torch.Tensor]:
    """Wrap a network s(x, labels) as score(x, level) with one label for the whole batch."""
    def score(x: torch.Tensor, level: int) -> torch.Tensor:
        return model(x, torch.full((x.shape[0],), level, dtype=torch.long, device=x.device))
    return score


@dataclass
class Target:
    """What sample() samples: a network (ours or an NCSN++) or a Denoiser of a function, with its defaults."""
    model: torch.nn.Module | Denoiser
    config: object  # Config, ScoreSdeConfig, or None for a function
    shape: tuple[int, ...]
    device: torch.device
    sampler: str  # the default sampler
    options: dict  # the default sampler's default options (an NCSN++'s pc: its config's snr)
    batch_size: int | None  # None: all n at once
    float32_auto: bool  # dtype 'auto' means float32 (NCSN++; a function runs as it is)
    score_sde: bool = False  # an NCSN++ whose original samplers (pc, ode) the reference can run as written


def resolve(model, config=None, *, sigmas=None, shape=None, kind: str = "score", centre: float = 0.0,
            device=None) -> Target:
    """The model kind ends here: our networks, an NCSN++ of the score-SDE code, or a callable fn(x, sigma)."""
    if is_ncsnpp(model):
        from ..config import ScoreSdeConfig
        cfg = ScoreSdeConfig(model.config)
        dev = torch.device(device) if device is not None else next(model.parameters()).device
        return Target(model, cfg, cfg.image_shape, dev, "pc", {"snr": getattr(cfg.sampling, "snr", None) or 0.16},
                      None, True, score_sde=True)
    if isinstance(model, torch.nn.Module) and hasattr(model, "config"):
        cfg = config or model.config
        dev = torch.device(device) if device is not None else next(model.parameters()).device
        return Target(model, cfg, cfg.image_shape, dev, "ald", {}, cfg.sampling.batch_size, False)
    if not callable(model):
        raise TypeError(f"model must be a score network or a callable fn(x, sigma), got {type(model).__name__}")
    if (sigmas is None and not isinstance(model, Denoiser)) or shape is None:
        raise ValueError("sampling a function needs sigmas= (its noise levels, largest first) and shape= "
                         "(of one sample)")
    if isinstance(model, Denoiser):
        den = model
    else:
        sig = torch.as_tensor(sigmas, dtype=torch.float64).flatten()
        if len(sig) < 1:
            raise ValueError("sigmas must hold the function's noise levels (largest first)")
        den = Denoiser.from_function(model, float(sig.min()), float(sig.max()), kind=kind, centre=centre, levels=sig)
    return Target(den, None, tuple(shape), torch.device(device or "cpu"), "heun", {}, None, True)


def make_sampler(model, config=None, *, sampler: str | SamplerSettings | None = None, seed: int = 0,
                 n_steps_each: int | None = None, step_lr: float | None = None, denoise: bool | None = None,
                 device=None, method: str = "fast", rng: str | None = None, dtype: torch.dtype | str = "auto",
                 channels_last: bool = True, backend: str = "auto", graph: bool | None = None, sigmas=None,
                 shape: tuple[int, ...] | None = None, kind: str = "score", centre: float = 0.0,
                 compile_mode: str | None = None, **sampler_options):
    """The runner sample() uses (see its docstring for the arguments), planned once: runner(ids, progress, x_init)
    -> those samples on the device; runner.summary says what it runs, runner.evals its evaluations per sample
    (None: adaptive), runner.shape the shape of one sample, runner.batch_size its default batch (None: all)."""
    if method not in ("fast", "reference"):
        raise ValueError(f"method must be 'fast' or 'reference', got {method!r}")
    if compile_mode is not None and method != "fast":
        raise ValueError("compile_mode puts the fast path's network under torch.compile; the reference runs eager")
    if not (isinstance(seed, int) and 0 <= seed < 1 << 63):
        raise ValueError(f"seed must be an integer in [0, 2^63) (the noise stream's 64 bits), got {seed!r}")
    target = resolve(model, config, sigmas=sigmas, shape=shape, kind=kind, centre=centre, device=device)
    # A function has no original sampler to reproduce: its reference draws from the stream unless told otherwise.
    rng = rng or ("philox" if method == "fast" or target.config is None else "torch")
    if rng not in ("torch", "philox") or (method == "fast" and rng != "philox"):
        raise ValueError(f"rng must be 'torch' or 'philox' ('philox' for the fast path), got {rng!r}")
    name = sampler.name if isinstance(sampler, SamplerSettings) else sampler or target.sampler
    if method == "reference" and rng == "torch" and target.score_sde and name in ("pc", "ode"):
        # The original code's own sampler, its prior and RNG order: diffusers' pipeline for a diffusers folder's
        # pc, else the score-SDE code's.
        opts = dict(sampler_options)
        if isinstance(sampler, SamplerSettings):  # what the command line set
            opts.update({k: getattr(sampler, k) for k in ("steps", "snr", "rtol", "atol", "denoise")
                         if getattr(sampler, k) is not None})
        if name == "pc" and "diffusers_scheduler" in target.config:
            from .diffusers_pc import DiffusersPcSampler
            runner = DiffusersPcSampler(target.model, seed=seed, **{k: opts[k] for k in ("steps", "snr") if k in opts})
        else:
            from .score_sde import ScoreSdeSampler
            runner = ScoreSdeSampler(target.model, name, seed=seed, **opts)
    else:
        if sampler is None:
            sampler, sampler_options = target.sampler, {**target.options, **sampler_options}
        settings = sampler if isinstance(sampler, SamplerSettings) else SamplerSettings(sampler, **sampler_options)
        given = {**(sampler_options if isinstance(sampler, SamplerSettings) else {}),
                 **{k: v for k, v in (("n_steps_each", n_steps_each), ("step_lr", step_lr), ("denoise", denoise))
                    if v is not None}}
        settings = dataclasses.replace(settings, **given) if given else settings
        if method == "fast":
            runner = Sampler(target.model, target.config, settings, seed=seed, device=target.device,
                             dtype=_network_dtype(dtype, target), channels_last=channels_last, backend=backend,
                             graph=graph, shape=target.shape, compile_mode=compile_mode)
        else:
            runner = ReferenceSampler(target.model, target.config, settings, seed=seed, device=target.device,
                                      rng=rng, shape=target.shape)
    runner.shape, runner.batch_size = target.shape, target.batch_size
    return runner


@torch.no_grad()
def sample(model: torch.nn.Module, config=None, n: int = 64, *,
           sampler: str | SamplerSettings | None = None,
           seed: int = 0, batch_size: int | None = None, n_steps_each: int | None = None,
           step_lr: float | None = None, denoise: bool | None = None, device: str | torch.device | None = None,
           progress: bool = True, method: str = "fast", rng: str | None = None, first_index: int = 0,
           dtype: torch.dtype | str = "auto", channels_last: bool = True, backend: str = "auto",
           graph: bool | None = None, x_init: torch.Tensor | None = None, sigmas=None,
           shape: tuple[int, ...] | None = None, kind: str = "score", centre: float = 0.0,
           compile_mode: str | None = None, **sampler_options) -> torch.Tensor:
    """n samples in model space (N, C, H, W), float32 on the CPU.

    model: one of our networks (a loaded checkpoint: NCSN, NCSNv2, NCSN++), or any callable fn(x, sigma) -> score
        (kind='score') or denoised x (kind='denoiser'), sigma an (N,) float32 tensor; a callable needs `sigmas`
        (its trained noise levels, largest first: the range its samplers may use; for ald, its ladder), `shape`
        (of one sample) and `device`, and starts from N(centre, sigma_max^2 I). config is then unused.

    sampler: a name of `SAMPLERS` with its options as keywords (steps=18, churn=..., sigma_max=...; see
        SamplerSettings), or a SamplerSettings. Default: 'ald' for NCSN / NCSNv2 (the original annealed Langevin
        dynamics with the config's settings, which n_steps_each / step_lr / denoise override), 'pc' for an
        NCSN++ (with its config's snr), 'heun' for a callable. step_lr and denoise go to the samplers that have
        them.
    method='fast' (default): the sampler's table of fused updates, the network in `dtype` (the sampler's state
        stays float32; 'auto': bfloat16 on a CPU that computes it natively, float32 elsewhere and for NCSN++, see
        machine.resolve_dtype), channels_last, CUDA graphs on a GPU (graph=None: when the model is on CUDA);
        noise from the counter-based stream, so sample i (counted from `first_index`) is the same whatever the
        batch size, the number of processes or the backend.
    method='reference': the algorithm as written, eager. rng='torch' (the default for networks) draws the start
        and the noise from one torch generator seeded with `seed`, batch after batch, as the original samplers do
        (results depend on batch_size); rng='philox' (the default for a callable) uses the stream of the fast
        path, to compare the two.
        For an NCSN++, sampler 'pc' (its default) or 'ode' with rng='torch' runs the score-SDE code's own
        sampler (score_sde.py): its samples for that torch seed.
    x_init: (n, C, H, W) starting states instead of the sampler's own start (to compare with another tool).
    compile_mode: the fast path's network under torch.compile in this mode ('default', 'max-autotune', ...),
        inside our fused updates and graphs; its caches kept on disk (models.keep_compile_cache). The samples
        move by float rounding.
    """
    if n < 1:
        raise ValueError(f"n must be >= 1, got {n}")
    runner = make_sampler(model, config, sampler=sampler, seed=seed, n_steps_each=n_steps_each, step_lr=step_lr,
                          denoise=denoise, device=device, method=method, rng=rng, dtype=dtype,
                          channels_last=channels_last, backend=backend, graph=graph, sigmas=sigmas, shape=shape,
                          kind=kind, centre=centre, compile_mode=compile_mode, **sampler_options)
    return draw(runner, n, batch_size=batch_size, first_index=first_index, x_init=x_init, progress=progress)


def draw(runner, n: int, *, batch_size: int | None = None, first_index: int = 0, x_init: torch.Tensor | None = None,
         progress: bool = True) -> torch.Tensor:
    """Samples first_index .. first_index + n from a runner of make_sampler, batch after batch, with one progress
    bar; float32 on the CPU."""
    if x_init is not None and tuple(x_init.shape) != (n, *runner.shape):
        raise ValueError(f"x_init must have shape {(n, *runner.shape)}, got {tuple(x_init.shape)}")
    batch_size = min(n, batch_size or runner.batch_size or n)
    n_batches = math.ceil(n / batch_size)
    outs = []
    with tqdm(total=None if runner.evals is None else runner.evals * n_batches, desc=runner.name, unit="eval",
              disable=not progress, leave=False) as bar:
        for ids, start in batches(n, batch_size, first_index, x_init):
            outs.append(runner(ids, bar.update, x_init=start).float().cpu())
    return torch.cat(outs)


def _network_dtype(dtype: torch.dtype | str, target: Target) -> torch.dtype:
    """The fast path's network dtype: 'auto' per machine (float32 for NCSN++ and functions), a warning where slow."""
    if dtype == "auto" and target.float32_auto:
        return torch.float32
    resolved, _, warning = resolve_dtype(dtype, target.device)
    if warning:
        warnings.warn(warning, SlowDtypeWarning, stacklevel=4)
    return resolved
