"""Sampling a loaded network with its checkpoint's own settings, in batches, with a progress bar."""

from __future__ import annotations

import math
from collections.abc import Callable

import torch
from tqdm.auto import tqdm

from ..config import Config
from ..ops.philox import INIT_STEP, philox_noise, philox_uniform_ref
from .langevin import anneal_langevin, torch_noise


def model_score(model: torch.nn.Module) -> Callable[[torch.Tensor, int], torch.Tensor]:
    """Wrap a network s(x, labels) as score(x, level) with one label for the whole batch."""
    def score(x: torch.Tensor, level: int) -> torch.Tensor:
        return model(x, torch.full((x.shape[0],), level, dtype=torch.long, device=x.device))
    return score


def data_transform(x: torch.Tensor, config: Config) -> torch.Tensor:
    """[0, 1] image space -> model space (the originals' data_transform for the initial state)."""
    if config.data.logit_transform:
        lam = 1e-6
        x = lam + (1 - 2 * lam) * x
        return torch.log(x) - torch.log1p(-x)
    if config.data.rescaled:
        return 2 * x - 1.0
    return x


@torch.no_grad()
def sample(model: torch.nn.Module, config: Config, n: int, *, seed: int = 0, batch_size: int | None = None,
           n_steps_each: int | None = None, step_lr: float | None = None, denoise: bool | None = None,
           device: str | torch.device | None = None, progress: bool = True, rng: str = "torch",
           first_index: int = 0) -> torch.Tensor:
    """n samples in model space (N, C, H, W), float32 on the CPU, with the config's sampling settings.

    rng='torch': x0 ~ U(0, 1) and the Langevin noise come from one torch generator seeded with `seed`,
        batch after batch, exactly as the original samplers draw them (results depend on batch_size).
    rng='philox': the counter-based stream keyed by (seed, sample index, step): sample i (counted from
        `first_index`) is the same whatever the batch size, the device or the noise backend.
    """
    if n < 1:
        raise ValueError(f"n must be >= 1, got {n}")
    if rng not in ("torch", "philox"):
        raise ValueError(f"rng must be 'torch' or 'philox', got {rng!r}")
    s = config.sampling
    n_steps_each = n_steps_each or s.n_steps_each
    step_lr = step_lr if step_lr is not None else s.step_lr
    denoise = s.denoise if denoise is None else denoise
    batch_size = min(n, batch_size or s.batch_size)
    device = torch.device(device) if device is not None else next(model.parameters()).device
    sigmas = config.sampling_sigmas()
    generator = torch.Generator(device="cpu").manual_seed(seed)
    score = model_score(model)
    n_batches = math.ceil(n / batch_size)
    evals = n_batches * (len(sigmas) * n_steps_each + int(denoise))
    outs = []
    with tqdm(total=evals, desc="annealed Langevin", unit="eval", disable=not progress, leave=False) as bar:
        for b in range(n_batches):
            m = min(batch_size, n - b * batch_size)
            if rng == "torch":
                x0 = torch.rand(m, *config.image_shape, generator=generator)
                noise = _cpu_noise(generator, device)
            else:
                ids = torch.arange(first_index + b * batch_size, first_index + b * batch_size + m)
                x0 = philox_uniform_ref(seed, INIT_STEP, ids, math.prod(config.image_shape))
                x0 = x0.view(m, *config.image_shape)
                noise = philox_noise(seed, ids.to(device))
            # NCSN v1 draws the noise before the score call, NCSNv2 after it.
            x = anneal_langevin(score, data_transform(x0, config).to(device), sigmas, n_steps_each=n_steps_each,
                                step_lr=step_lr, noise_first=config.family == "ncsn", denoise=denoise,
                                noise=noise, progress=bar.update)
            if not torch.isfinite(x).all():
                raise FloatingPointError(
                    f"batch {b}: samples contain NaN or inf after Langevin dynamics "
                    f"(step_lr {step_lr} may be too large for this model)")
            outs.append(x.float().cpu())
    return torch.cat(outs)


def _cpu_noise(generator: torch.Generator, device: torch.device):
    """Noise from a CPU generator moved to `device`, so results do not depend on the device."""
    cpu = torch_noise(generator)
    if device.type == "cpu":
        return cpu
    return lambda i, x: cpu(i, x.cpu()).to(device)
