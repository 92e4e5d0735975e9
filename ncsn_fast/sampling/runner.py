"""Running a planned sampler (samplers.py) on a network: the fast path and the reference, batch by batch.

Both start each sample from x_T = centre + sigma_max z with z from the counter-based stream at
(seed, sample index, INIT_NORMAL_STEP) and draw every later normal from the same stream, so sample i is a
pure function of (model, settings, seed, i), whatever the batch, process count or backend; the fast path and
the reference differ only by float rounding. x_init replaces x_T (to compare with another tool's samples).
"""

from __future__ import annotations

import math
import warnings
from collections.abc import Callable

import torch

from ..ops.philox import philox_noise, philox_normal_ref
from .denoiser import Denoiser
from .langevin import NoiseSampler
from .prepare import batches, check_finite, fast_copy
from .program import GraphedProgram, run_program
from .samplers import Plan, SamplerSettings, plan
from .schedules import INIT_NORMAL_STEP, gaussian_start

Progress = Callable[[int], object] | None


def reference_start(denoiser: Denoiser, plan_: Plan, seed: int, ids: torch.Tensor, shape: tuple[int, ...],
                    generator: torch.Generator | None = None) -> torch.Tensor:
    """x_T for the reference run: from the stream, or from a torch generator (rng='torch')."""
    if generator is not None:
        z = torch.randn(len(ids), *shape, generator=generator)
    else:
        z = philox_normal_ref(seed, INIT_NORMAL_STEP, ids.cpu(), math.prod(shape)).view(len(ids), *shape)
    return gaussian_start(denoiser, plan_.start_sigma, z)


def run_reference(plan_: Plan, denoiser: Denoiser, x: torch.Tensor, noise: NoiseSampler,
                  progress: Progress = None) -> torch.Tensor:
    out = plan_.reference(denoiser, x, noise=noise, progress=progress)
    return out[0] if plan_.program is None else out


class ProgramSampler:
    """The fast path of a sampler other than ald, for one network and one set of settings: sampler(ids) ->
    the samples with these global indices, in model space on the device. Built once (a channels_last copy of
    the network in `dtype` with fused norms; CUDA graphs per batch size on a GPU) and called batch after
    batch, like FastSampler. ode runs its solver on the fast network, uncaptured.

    `model` may also be a Denoiser of the user's (a score function): it is used as it is, with `shape` the
    shape of one sample; on a GPU its loop is captured in CUDA graphs if the function allows it, else it
    runs eagerly, with a warning that says why."""

    def __init__(self, model: torch.nn.Module | Denoiser, config, settings: SamplerSettings, *, seed: int = 0,
                 device: str | torch.device | None = None, dtype: torch.dtype = torch.float32,
                 channels_last: bool = True, backend: str = "auto", graph: bool | None = None,
                 steps_per_graph: int = 1, compile_mode: str | None = None, shape: tuple[int, ...] | None = None):
        self.config, self.settings, self.seed, self.backend = config, settings, seed, backend
        if isinstance(model, Denoiser):
            if shape is None or device is None:
                raise ValueError("a score function needs the shape of one sample and the device")
            self.device, self.denoiser, self._model, self.foreign = torch.device(device), model, None, True
        else:
            self.device = torch.device(device) if device is not None else next(model.parameters()).device
            self._model = fast_copy(model, self.device, dtype, channels_last, backend, compile_mode)
            self.denoiser, self.foreign = Denoiser.of(self._model, dtype, channels_last), False
        self.shape = tuple(shape) if shape is not None else config.image_shape
        self.plan = plan(settings, self.denoiser, config)
        self.evals = self.plan.evals  # per sample (None: adaptive)
        self.graph = (self.device.type == "cuda" if graph is None else graph) and self.plan.program is not None
        self.steps_per_graph = steps_per_graph
        self._graphs: dict[int, GraphedProgram] = {}

    def initial_state(self, ids: torch.Tensor) -> torch.Tensor:
        shape = self.shape
        if self.plan.program is None:
            return reference_start(self.denoiser, self.plan, self.seed, ids, shape).to(self.device)
        return self.plan.program.initial_state(self.denoiser, self.seed, ids, shape, self.device)

    @torch.no_grad()
    def probe(self, batch_size: int) -> None:
        """One network evaluation at this batch size (to find what fits in memory)."""
        self.denoiser.raw(self.initial_state(torch.arange(batch_size)), self.denoiser.sigma_max)

    @torch.no_grad()
    def __call__(self, ids: torch.Tensor, progress: Progress = None,
                 x_init: torch.Tensor | None = None) -> torch.Tensor:
        ids = torch.as_tensor(ids, dtype=torch.long).cpu()
        m = len(ids)
        # The CPU convolutions take another path for a batch of one (last-bit differences): run two.
        run_ids = ids.repeat(2) if m == 1 else ids
        if x_init is not None:
            x0 = torch.as_tensor(x_init, dtype=torch.float32).to(self.device)
            x0 = x0.repeat(2, *([1] * (x0.dim() - 1))) if m == 1 else x0
        else:
            x0 = self.initial_state(run_ids)
        prog = self.plan.program
        if prog is None:
            x = run_reference(self.plan, self.denoiser, x0, philox_noise(self.seed, run_ids.to(self.device)), progress)
        elif self.graph:
            x = self._graphed(prog, x0, run_ids, progress)
        if prog is not None and not self.graph:
            x = run_program(prog, self.denoiser, x0, seed=self.seed, sample_ids=run_ids, backend=self.backend,
                            progress=progress)
        return check_finite(x[:m], ids, f"the {self.plan.name} sampler's settings may not suit this model")

    def _graphed(self, prog, x0, run_ids, progress):
        """The captured loop; a user's function that cannot be captured falls back to the eager loop."""
        n = len(run_ids)
        try:
            if n not in self._graphs:
                self._graphs[n] = GraphedProgram(self.denoiser, n, self.shape, self.device, backend=self.backend,
                                                 steps_per_graph=self.steps_per_graph)
            return self._graphs[n](prog, x0, seed=self.seed, sample_ids=run_ids.to(self.device), progress=progress)
        except RuntimeError as e:
            if not self.foreign:
                raise
            warnings.warn(f"the score function could not be captured in a CUDA graph ({str(e).splitlines()[0]}); "
                          f"sampling it eagerly instead", stacklevel=3)
            self.graph = False
            self._graphs.clear()
            return None


def sample_planned(model: torch.nn.Module, config, settings: SamplerSettings, n: int, *, seed: int, batch_size: int,
                   device: torch.device, progress: bool, method: str, rng: str, first_index: int,
                   dtype: torch.dtype, channels_last: bool, backend: str, graph: bool | None,
                   x_init: torch.Tensor | None) -> torch.Tensor:
    """sample() for every sampler but ald (api.py checks the arguments)."""
    from tqdm.auto import tqdm

    shape = config.image_shape
    fast = ProgramSampler(model, config, settings, seed=seed, device=device, dtype=dtype, channels_last=channels_last,
                          backend=backend, graph=graph) if method == "fast" else None
    denoiser = fast.denoiser if fast is not None else Denoiser.of(model)
    plan_ = fast.plan if fast is not None else plan(settings, denoiser, config)
    generator = torch.Generator(device="cpu").manual_seed(seed)
    n_batches = math.ceil(n / batch_size)
    total = None if plan_.evals is None else plan_.evals * n_batches
    outs = []
    with tqdm(total=total, desc=settings.name, unit="eval", disable=not progress, leave=False) as bar:
        for ids, start in batches(n, batch_size, first_index, x_init):
            if fast is not None:
                outs.append(fast(ids, bar.update, x_init=start).float().cpu())
                continue
            x0 = reference_start(denoiser, plan_, seed, ids, shape, generator if rng == "torch" else None)
            x0 = (x0 if start is None else start.float()).to(device)
            noise = _torch_noise(generator, device) if rng == "torch" else philox_noise(seed, ids.to(device))
            x = run_reference(plan_, denoiser, x0, noise, bar.update)
            outs.append(check_finite(x, ids, f"the {settings.name} sampler's settings may not suit this model")
                        .float().cpu())
    return torch.cat(outs)


def _torch_noise(generator: torch.Generator, device: torch.device) -> NoiseSampler:
    """One randn of x's shape per draw from a CPU generator, moved to x's device (device-independent)."""
    def sample(step: int, x: torch.Tensor) -> torch.Tensor:
        return torch.randn(x.shape, generator=generator).to(device=x.device, dtype=x.dtype)
    return sample
