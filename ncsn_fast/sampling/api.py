"""Sampling a loaded network with its checkpoint's own settings, in batches, with a progress bar."""

from __future__ import annotations

import dataclasses
import math
import warnings
from collections.abc import Callable

import torch
from tqdm.auto import tqdm

from ..config import Config
from ..machine import SlowDtypeWarning, resolve_dtype
from ..models import is_ncsnpp
from ..ops.philox import INIT_STEP, philox_noise, philox_uniform_ref
from .langevin import anneal_langevin, torch_noise
from .prepare import batches, check_finite, data_transform, fast_copy
from .samplers import SamplerSettings


def model_score(model: torch.nn.Module) -> Callable[[torch.Tensor, int], torch.Tensor]:
    """Wrap a network s(x, labels) as score(x, level) with one label for the whole batch."""
    def score(x: torch.Tensor, level: int) -> torch.Tensor:
        return model(x, torch.full((x.shape[0],), level, dtype=torch.long, device=x.device))
    return score


class FastSampler:
    """The fast path for one model and one set of settings: sampler(ids) -> the samples with these global
    indices, in model space on the device. Built once (a channels_last copy of the model in `dtype`, fused
    norms, CUDA graphs per batch size on a GPU) and called batch after batch. compile_mode (e.g. 'default')
    also puts the network under torch.compile (our ops compose with it): on the CPU that made float32 steps
    ~7 % faster after a first call of seconds (warm cache) to a minute (cold); results move by float rounding.

    Sample i is a pure function of (model, settings, seed, i): x0 and every noise draw come from the
    counter-based stream keyed by (seed, i, step), and the network's per-sample arithmetic does not depend on
    the rest of the batch. One exception had to be closed: the CPU convolution kernels take another path for
    a batch of one (results differ in the last bits), so a lone sample is evaluated as a batch of two.
    """

    def __init__(self, model: torch.nn.Module, config: Config, *, seed: int = 0, n_steps_each: int | None = None,
                 step_lr: float | None = None, denoise: bool | None = None,
                 device: str | torch.device | None = None, dtype: torch.dtype = torch.float32,
                 channels_last: bool = True, backend: str = "auto", graph: bool | None = None,
                 steps_per_graph: int = 1, compile_mode: str | None = None):
        s = config.sampling
        self.config, self.seed = config, seed
        self.n_steps_each = n_steps_each or s.n_steps_each
        self.step_lr = step_lr if step_lr is not None else s.step_lr
        self.denoise = s.denoise if denoise is None else denoise
        self.device = torch.device(device) if device is not None else next(model.parameters()).device
        self.evals = len(config.sampling_sigmas()) * self.n_steps_each + int(self.denoise)  # per batch
        self._run, self._model = _fast_runner(model, config, self.device, dtype, channels_last, backend, graph,
                                              self.n_steps_each, self.step_lr, self.denoise, seed, steps_per_graph,
                                              compile_mode)
        self._dtype, self._channels_last = dtype, channels_last

    @torch.no_grad()
    def probe(self, batch_size: int) -> None:
        """One network evaluation at this batch size (to find what fits in memory)."""
        from .fast import model_raw_score
        x = self.initial_state(torch.arange(batch_size))
        model_raw_score(self._model, self._dtype, self._channels_last)(x, 0)

    def initial_state(self, ids: torch.Tensor) -> torch.Tensor:
        x0 = philox_uniform_ref(self.seed, INIT_STEP, ids.cpu(), math.prod(self.config.image_shape))
        return data_transform(x0.view(len(ids), *self.config.image_shape), self.config).to(self.device)

    @torch.no_grad()
    def __call__(self, ids: torch.Tensor, progress: Callable[[int], object] | None = None,
                 x_init: torch.Tensor | None = None) -> torch.Tensor:
        ids = torch.as_tensor(ids, dtype=torch.long).cpu()
        m = len(ids)
        run_ids = ids.repeat(2) if m == 1 else ids  # see the class docstring
        x0 = self.initial_state(run_ids) if x_init is None else \
            torch.as_tensor(x_init, dtype=torch.float32).to(self.device).repeat(len(run_ids) // m, 1, 1, 1)
        x = self._run(x0, run_ids, progress or (lambda k: None))[:m]
        return check_finite(x, ids, _ald_hint(self.step_lr))


@torch.no_grad()
def sample(model: torch.nn.Module, config: Config | None = None, n: int = 64, *,
           sampler: str | SamplerSettings | None = None,
           seed: int = 0, batch_size: int | None = None, n_steps_each: int | None = None,
           step_lr: float | None = None, denoise: bool | None = None, device: str | torch.device | None = None,
           progress: bool = True, method: str = "fast", rng: str | None = None, first_index: int = 0,
           dtype: torch.dtype | str = "auto", channels_last: bool = True, backend: str = "auto",
           graph: bool | None = None, x_init: torch.Tensor | None = None, sigmas=None,
           shape: tuple[int, ...] | None = None, kind: str = "score", centre: float = 0.0,
           **sampler_options) -> torch.Tensor:
    """n samples in model space (N, C, H, W), float32 on the CPU.

    model: one of our networks (a loaded checkpoint), or any callable fn(x, sigma) -> score (kind='score')
        or denoised x (kind='denoiser'), sigma an (N,) float32 tensor; a callable needs `sigmas` (its
        trained noise levels, largest first: the range its samplers may use; for ald, its ladder), `shape`
        (of one sample) and `device`, and starts from N(centre, sigma_max^2 I). config is then unused.

    sampler: 'ald' (the default for networks: the original annealed Langevin dynamics with the config's settings, which
        n_steps_each / step_lr / denoise override) or another sampler of `SAMPLERS` ('heun', 'dpmpp-2m', ...)
        with its options as keywords (steps=18, churn=..., sigma_max=...; see SamplerSettings; step_lr and
        denoise go to the samplers that have them), or a SamplerSettings. For a callable the default is heun.
    method='fast' (default): fused ops, the network in `dtype` (the sampler's state stays float32; 'auto':
        bfloat16 on a CPU that computes it natively, float32 elsewhere, see machine.resolve_dtype),
        channels_last, CUDA graphs on a GPU (graph=None: when the model is on CUDA); noise from the
        counter-based stream, so sample i (counted from `first_index`) is the same whatever the batch
        size, the number of processes or the backend.
    method='reference': the algorithm as written, eager. rng='torch' (default) draws the start and the
        noise from one torch generator seeded with `seed`, batch after batch, as the original samplers do
        (results depend on batch_size); rng='philox' uses the stream of the fast path, to compare the two.
        For an NCSN++, sampler 'pc' (its default) or 'ode' with rng='torch' runs the score-SDE code's own
        sampler (score_sde.py): its samples for that torch seed.
    x_init: (n, C, H, W) starting states instead of the sampler's own start (to compare with another tool).
    """
    if n < 1:
        raise ValueError(f"n must be >= 1, got {n}")
    if is_ncsnpp(model):  # an NCSN++ of the score-SDE code: its own config and denoiser view
        name = sampler.name if isinstance(sampler, SamplerSettings) else (sampler or "pc")
        if method == "reference" and rng in (None, "torch") and name in ("pc", "ode"):
            from .score_sde import sample_as_score_sde
            opts = dict(sampler_options)
            if isinstance(sampler, SamplerSettings):  # what the command line set
                opts.update({k: getattr(sampler, k) for k in ("steps", "snr", "rtol", "atol", "denoise")
                             if getattr(sampler, k) is not None})
            return sample_as_score_sde(model, n, name, seed=seed, batch_size=batch_size, x_init=x_init, **opts)
        return _sample_ncsnpp(model, n, sampler, seed=seed, batch_size=batch_size, n_steps_each=n_steps_each,
                              step_lr=step_lr, denoise=denoise, device=device, progress=progress, method=method,
                              rng=rng, first_index=first_index, dtype=dtype, channels_last=channels_last,
                              backend=backend, graph=graph, x_init=x_init, **sampler_options)
    if not isinstance(model, torch.nn.Module) or not hasattr(model, "config"):
        if not callable(model):
            raise TypeError(f"model must be a score network or a callable fn(x, sigma), got {type(model).__name__}")
        from .functions import sample_function
        return sample_function(model, n, sigmas=sigmas, shape=shape, kind=kind, centre=centre,
                               sampler="heun" if sampler is None else sampler,
                               seed=seed, batch_size=batch_size, n_steps_each=n_steps_each, step_lr=step_lr,
                               denoise=denoise, device=device, progress=progress, method=method,
                               first_index=first_index, backend=backend, graph=graph, x_init=x_init,
                               **sampler_options)
    if method not in ("fast", "reference"):
        raise ValueError(f"method must be 'fast' or 'reference', got {method!r}")
    rng = rng or ("philox" if method == "fast" else "torch")
    if rng not in ("torch", "philox") or (method == "fast" and rng != "philox"):
        raise ValueError(f"rng must be 'torch' or 'philox' ('philox' for the fast path), got {rng!r}")
    config = config or model.config
    sampler = "ald" if sampler is None else sampler
    settings = sampler if isinstance(sampler, SamplerSettings) else SamplerSettings(sampler, **sampler_options)
    if isinstance(sampler, SamplerSettings) and sampler_options:
        settings = dataclasses.replace(settings, **sampler_options)
    if x_init is not None and tuple(x_init.shape) != (n, *config.image_shape):
        raise ValueError(f"x_init must have shape {(n, *config.image_shape)}, got {tuple(x_init.shape)}")
    batch_size = min(n, batch_size or config.sampling.batch_size)
    device = torch.device(device) if device is not None else next(model.parameters()).device
    dtype, _, warning = resolve_dtype(dtype, device)
    if warning and method == "fast":
        warnings.warn(warning, SlowDtypeWarning, stacklevel=2)
    if settings.name != "ald":
        if n_steps_each is not None:
            raise ValueError(f"n_steps_each sets annealed Langevin (ald); {settings.name} takes steps=")
        given = {k: v for k, v in (("step_lr", step_lr), ("denoise", denoise)) if v is not None}
        settings = dataclasses.replace(settings, **given)
        from .runner import sample_planned
        return sample_planned(model, config, settings, n, seed=seed, batch_size=batch_size, device=device,
                              progress=progress, method=method, rng=rng, first_index=first_index, dtype=dtype,
                              channels_last=channels_last, backend=backend, graph=graph, x_init=x_init)
    s = config.sampling
    n_steps_each = n_steps_each or s.n_steps_each
    step_lr = step_lr if step_lr is not None else s.step_lr
    denoise = s.denoise if denoise is None else denoise
    sigmas = config.sampling_sigmas()
    generator = torch.Generator(device="cpu").manual_seed(seed)
    n_batches = math.ceil(n / batch_size)
    evals = n_batches * (len(sigmas) * n_steps_each + int(denoise))
    fast = FastSampler(model, config, seed=seed, n_steps_each=n_steps_each, step_lr=step_lr, denoise=denoise,
                       device=device, dtype=dtype, channels_last=channels_last, backend=backend,
                       graph=graph) if method == "fast" else None
    outs = []
    with tqdm(total=evals, desc="annealed Langevin", unit="eval", disable=not progress, leave=False) as bar:
        for ids, start in batches(n, batch_size, first_index, x_init):
            m = len(ids)
            if fast is not None:
                outs.append(fast(ids, bar.update, x_init=start).float().cpu())
                continue
            if rng == "torch":
                x0 = torch.rand(m, *config.image_shape, generator=generator)
            else:
                x0 = philox_uniform_ref(seed, INIT_STEP, ids, math.prod(config.image_shape))
                x0 = x0.view(m, *config.image_shape)
            x0 = (data_transform(x0, config) if start is None else start.float()).to(device)
            noise = _cpu_noise(generator, device) if rng == "torch" else philox_noise(seed, ids.to(device))
            # NCSN v1 draws the noise before the score call, NCSNv2 after it.
            x = anneal_langevin(model_score(model), x0, sigmas, n_steps_each=n_steps_each, step_lr=step_lr,
                                noise_first=config.family == "ncsn", denoise=denoise, noise=noise,
                                progress=bar.update)
            outs.append(check_finite(x, ids, _ald_hint(step_lr)).float().cpu())
    return torch.cat(outs)


def _sample_ncsnpp(model, n, sampler, *, seed, batch_size, n_steps_each, step_lr, denoise, device, progress, method,
                   rng, first_index, dtype, channels_last, backend, graph, x_init, **sampler_options):
    """sample() for NCSN++: the score-SDE predictor-corrector by default (its config's snr), any sampler but ald;
    dtype 'auto' is float32 (bfloat16 / float16 on request)."""
    from ..ncsnpp_checkpoints import ScoreSdeConfig
    from .runner import sample_planned
    cfg = ScoreSdeConfig(model.config)
    if n_steps_each is not None:
        raise ValueError("n_steps_each sets annealed Langevin (ald); the NCSN++ samplers take steps=")
    if sampler is None:
        sampler = "pc"
        sampler_options.setdefault("snr", getattr(cfg.sampling, "snr", None) or 0.16)
    settings = sampler if isinstance(sampler, SamplerSettings) else SamplerSettings(sampler, **sampler_options)
    if isinstance(sampler, SamplerSettings) and sampler_options:
        settings = dataclasses.replace(settings, **sampler_options)
    if settings.name == "ald":
        raise ValueError("annealed Langevin (ald) needs an NCSN / NCSNv2 config; an NCSN++ samples with pc (its "
                         "default) or any other sampler")
    settings = dataclasses.replace(settings, **{k: v for k, v in (("step_lr", step_lr), ("denoise", denoise))
                                                if v is not None})
    if method not in ("fast", "reference"):
        raise ValueError(f"method must be 'fast' or 'reference', got {method!r}")
    if x_init is not None and tuple(x_init.shape) != (n, *cfg.image_shape):
        raise ValueError(f"x_init must have shape {(n, *cfg.image_shape)}, got {tuple(x_init.shape)}")
    device = torch.device(device) if device is not None else next(model.parameters()).device
    if dtype == "auto":
        dtype = torch.float32
    else:
        dtype, _, warning = resolve_dtype(dtype, device)
        if warning and method == "fast":
            warnings.warn(warning, SlowDtypeWarning, stacklevel=3)
    return sample_planned(model, cfg, settings, n, seed=seed, batch_size=min(n, batch_size or n), device=device,
                          progress=progress, method=method, rng=rng or ("philox" if method == "fast" else "torch"),
                          first_index=first_index, dtype=dtype, channels_last=channels_last, backend=backend,
                          graph=graph, x_init=x_init)


def _fast_runner(model, config, device, dtype, channels_last, backend, graph, n_steps_each, step_lr, denoise, seed,
                 steps_per_graph=1, compile_mode=None):
    """A function (x0, ids, progress) -> x running the fused loop, graphed on CUDA (a graph of `steps_per_graph`
    steps); on a copy of the model, with compile_mode under torch.compile too (our ops compose with it)."""
    from .fast import GraphedLangevin, anneal_langevin_fused, model_raw_score

    fast_model = fast_copy(model, device, dtype, channels_last, backend, compile_mode)
    sigmas = config.sampling_sigmas()
    scales = model.score_scales()[: len(sigmas)]  # the scale of each label the loop uses
    graph = device.type == "cuda" if graph is None else graph
    graphs: dict[int, GraphedLangevin] = {}

    def run(x0, ids, progress):
        if graph:
            m = x0.shape[0]
            if m not in graphs:
                graphs[m] = GraphedLangevin(fast_model, m, config.image_shape, dtype=dtype,
                                            channels_last=channels_last, backend=backend,
                                            steps_per_graph=steps_per_graph)
            return graphs[m](x0, sigmas, n_steps_each=n_steps_each, step_lr=step_lr, seed=seed,
                             sample_ids=ids.to(device), score_scales=scales, denoise=denoise, progress=progress)
        x, _ = anneal_langevin_fused(model_raw_score(fast_model, dtype, channels_last), x0, sigmas,
                                     n_steps_each=n_steps_each, step_lr=step_lr, seed=seed, sample_ids=ids,
                                     score_scales=scales, denoise=denoise, backend=backend, progress=progress)
        return x
    return run, fast_model


def _ald_hint(step_lr: float) -> str:
    return f"step_lr {step_lr} may be too large for this model"


def _cpu_noise(generator: torch.Generator, device: torch.device):
    """Noise from a CPU generator moved to `device`, so results do not depend on the device."""
    cpu = torch_noise(generator)
    if device.type == "cpu":
        return cpu
    return lambda i, x: cpu(i, x.cpu()).to(device)
