"""Running a planned sampler (plan.py) on a model, a batch of sample indices at a time: the fast path (the table of
fused updates, in CUDA graphs on a GPU) and the reference (the sampler's paper function, eager).

Both draw the start and every normal from the counter-based stream keyed by (seed, sample index, step), so
sample i is a pure function of (model, settings, seed, i), whatever the batch, process count or backend; the
fast path and the reference differ only by float rounding. The reference may instead draw from one torch
generator, batch after batch, in the original samplers' order (rng='torch'). x_init replaces the start (to
compare with another tool's samples).
"""

from __future__ import annotations

import math
import warnings
from collections.abc import Callable, Iterator

import torch

from ..models.fast_copy import fast_copy
from ..ops.philox import philox_noise
from .denoiser import Denoiser
from .langevin import NoiseSampler
from .plan import SamplerSettings, plan
from .table import GraphedProgram, run_program

Progress = Callable[[int], object] | None


class Sampler:
    """The fast path for one model and one set of settings: sampler(ids) -> the samples with these global
    indices, in model space on the device. Built once (a channels_last copy of the network in `dtype` with fused
    norms, optionally under torch.compile; CUDA graphs per batch size on a GPU) and called batch after batch.
    ode runs its solver on the fast network, uncaptured.

    `model` may also be a Denoiser of the user's (a score function): it is used as it is, with `shape` the
    shape of one sample; on a GPU its loop is captured in CUDA graphs if the function allows it, else it
    runs eagerly, with a warning that says why. compile_mode (e.g. 'default') puts the network under
    torch.compile too (our ops compose with it); results then move by float rounding.

    Sample i does not depend on the rest of its batch: the network's per-sample arithmetic does not, with one
    exception closed here: the CPU convolutions take another path for a batch of one (last-bit differences), so
    a lone sample is evaluated as a batch of two.
    """

    def __init__(self, model: torch.nn.Module | Denoiser, config, settings: SamplerSettings, *, seed: int = 0,
                 device: str | torch.device | None = None, dtype: torch.dtype = torch.float32,
                 channels_last: bool = True, backend: str = "auto", graph: bool | None = None,
                 steps_per_graph: int = 1, compile_mode: str | None = None, shape: tuple[int, ...] | None = None):
        self.config, self.settings, self.seed, self.backend = config, settings, seed, backend
        if isinstance(model, Denoiser):
            if shape is None or device is None:
                raise ValueError("a score function needs the shape of one sample and the device")
            if compile_mode is not None:
                raise ValueError("compile_mode compiles one of our networks; compile a function of your own with "
                                 "torch.compile before handing it over")
            self.device, self.denoiser, self._model, self.foreign = torch.device(device), model, None, True
        else:
            self.device = torch.device(device) if device is not None else next(model.parameters()).device
            self._model = fast_copy(model, self.device, dtype, channels_last, backend, compile_mode)
            self.denoiser, self.foreign = Denoiser.of(self._model, dtype, channels_last, config), False
        self.shape = tuple(shape) if shape is not None else config.image_shape
        self.plan = plan(settings, self.denoiser, config)
        self.name, self.summary = self.plan.name, self.plan.summary
        self.evals = self.plan.evals  # per sample (None: adaptive)
        self.sample_evals: list[torch.Tensor] = []  # adaptive samplers: each sample's evaluations, batch after batch
        self.graph = (self.device.type == "cuda" if graph is None else graph) and self.plan.program is not None
        self.steps_per_graph = steps_per_graph
        self._graphs: dict[int, GraphedProgram] = {}

    def initial_state(self, ids: torch.Tensor) -> torch.Tensor:
        return self.plan.initial_state(self.denoiser, self.seed, ids, self.shape, self.device)

    @torch.no_grad()
    def probe(self, batch_size: int) -> None:
        """One network evaluation at this batch size (to find what fits in memory)."""
        self.denoiser.raw(self.initial_state(torch.arange(batch_size)), self.denoiser.sigma_max)

    @torch.no_grad()
    def __call__(self, ids: torch.Tensor, progress: Progress = None,
                 x_init: torch.Tensor | None = None) -> torch.Tensor:
        ids = torch.as_tensor(ids, dtype=torch.long).cpu()
        m = len(ids)
        run_ids = ids.repeat(2) if m == 1 else ids  # see the class docstring
        if x_init is not None:
            x0 = torch.as_tensor(x_init, dtype=torch.float32).to(self.device)
            x0 = x0.repeat(2, *([1] * (x0.dim() - 1))) if m == 1 else x0
        else:
            x0 = self.initial_state(run_ids)
        prog = self.plan.program
        x = None
        try:
            if prog is None:
                x = self.plan.reference(self.denoiser, x0, noise=philox_noise(self.seed, run_ids.to(self.device)),
                                        progress=progress, counts=lambda c: self.sample_evals.append(c[:m]))
            elif self.graph:
                x = self._graphed(prog, x0, run_ids, progress)
            if x is None:
                x = run_program(prog, self.denoiser, x0, seed=self.seed, sample_ids=run_ids, backend=self.backend,
                                progress=progress)
        except FloatingPointError as e:  # the table's watch stopped it within a few rows
            raise FloatingPointError(f"{e}: {divergence_hint(self.plan, self.foreign)}") from None
        return check_finite(x[:m], ids, divergence_hint(self.plan, self.foreign))

    def _graphed(self, prog, x0, run_ids, progress):
        """The captured loop; a user's function that cannot be captured falls back to the eager loop (None)."""
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


class ReferenceSampler:
    """The reference path, with the fast path's call signature: each sampler's paper function, eager, on the model
    as it is. rng='philox': the fast path's stream; rng='torch': one torch generator seeded with `seed` draws
    each batch's start and then its noise, as the original samplers do (results then depend on the batches)."""

    def __init__(self, model: torch.nn.Module | Denoiser, config, settings: SamplerSettings, *, seed: int = 0,
                 device: str | torch.device | None = None, rng: str = "philox", shape: tuple[int, ...] | None = None):
        self.foreign = isinstance(model, Denoiser)
        self.denoiser = model if self.foreign else Denoiser.of(model, config=config)
        self.device = torch.device(device) if device is not None else next(model.parameters()).device
        self.shape = tuple(shape) if shape is not None else config.image_shape
        self.seed, self.rng = seed, rng
        self.plan = plan(settings, self.denoiser, config)
        self.name, self.summary, self.evals = self.plan.name, self.plan.summary, self.plan.evals
        self.sample_evals: list[torch.Tensor] = []  # as Sampler's
        self.generator = torch.Generator(device="cpu").manual_seed(seed) if rng == "torch" else None

    @torch.no_grad()
    def __call__(self, ids: torch.Tensor, progress: Progress = None,
                 x_init: torch.Tensor | None = None) -> torch.Tensor:
        ids = torch.as_tensor(ids, dtype=torch.long).cpu()
        # Drawn even when x_init replaces it, so that the generator's later draws do not depend on x_init.
        x0 = self.plan.initial_state(self.denoiser, self.seed, ids, self.shape, self.device, self.generator,
                                     reference=True)
        x0 = x0 if x_init is None else torch.as_tensor(x_init, dtype=torch.float32).to(self.device)
        noise = torch_generator_noise(self.generator) if self.generator is not None else \
            philox_noise(self.seed, ids.to(self.device))
        counted = {"counts": self.sample_evals.append} if self.plan.program is None else {}
        x = self.plan.reference(self.denoiser, x0, noise=noise, progress=progress, **counted)
        return check_finite(x, ids, divergence_hint(self.plan, self.foreign))


def torch_generator_noise(generator: torch.Generator) -> NoiseSampler:
    """One randn of x's shape per draw from a CPU generator, moved to x's device (device-independent)."""
    def sample(step: int, x: torch.Tensor) -> torch.Tensor:
        return torch.randn(x.shape, generator=generator).to(device=x.device, dtype=x.dtype)
    return sample


def divergence_hint(plan_, foreign: bool) -> str:
    if plan_.name == "ald":
        return f"step_lr {plan_.reference.keywords['step_lr']} may be too large for this " + \
            ("function" if foreign else "model")
    return f"the {plan_.name} sampler's settings may not suit this {'function' if foreign else 'model'}"


def check_finite(x: torch.Tensor, ids: torch.Tensor, hint: str) -> torch.Tensor:
    """x, or a FloatingPointError naming the samples and `hint`, if the sampler diverged."""
    if not torch.isfinite(x).all():
        raise FloatingPointError(f"samples {int(ids[0])}..{int(ids[-1])} contain NaN or inf after sampling ({hint})")
    return x


def batches(n: int, batch_size: int, first_index: int = 0,
            x_init: torch.Tensor | None = None) -> Iterator[tuple[torch.Tensor, torch.Tensor | None]]:
    """(the global indices of each batch, its rows of x_init or None): samples first_index .. first_index + n."""
    for b in range(math.ceil(n / batch_size)):
        lo, m = b * batch_size, min(batch_size, n - b * batch_size)
        yield (torch.arange(first_index + lo, first_index + lo + m),
               None if x_init is None else x_init[lo: lo + m])
