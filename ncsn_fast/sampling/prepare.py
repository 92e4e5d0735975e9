"""What every sampling path shares: the batches, the start's data transform, the divergence check, the fast copy
of a model."""

from __future__ import annotations

import copy
import math
from collections.abc import Iterator

import torch

from ..config import Config


def data_transform(x: torch.Tensor, config: Config) -> torch.Tensor:
    """[0, 1] image space -> model space (the originals' data_transform for the initial state)."""
    if config.data.logit_transform:
        lam = 1e-6
        x = lam + (1 - 2 * lam) * x
        return torch.log(x) - torch.log1p(-x)
    if config.data.rescaled:
        return 2 * x - 1.0
    return x


def check_finite(x: torch.Tensor, ids: torch.Tensor, hint: str) -> torch.Tensor:
    """x, or a FloatingPointError naming the samples and `hint`, if the sampler diverged."""
    if not torch.isfinite(x).all():
        raise FloatingPointError(f"samples {int(ids[0])}..{int(ids[-1])} contain NaN or inf after sampling ({hint})")
    return x


def fast_copy(model: torch.nn.Module, device, dtype: torch.dtype, channels_last: bool, backend: str,
              compile_mode: str | None = None) -> torch.nn.Module:
    """The fast path's copy of a network: on `device` in `dtype` (but the tensors its keep_dtype() names, if it
    has one), eval mode, channels_last, fused norms (our ops on `backend`), optionally under torch.compile (our
    ops compose with it)."""
    from ..models import set_backend

    fast_model = copy.deepcopy(model).to(device=device).eval()
    keep = set(fast_model.keep_dtype()) if hasattr(fast_model, "keep_dtype") else set()
    for name, t in [*fast_model.named_parameters(), *fast_model.named_buffers()]:
        if t.is_floating_point() and name not in keep:
            t.data = t.data.to(dtype)
    if channels_last:
        fast_model = fast_model.to(memory_format=torch.channels_last)
    set_backend(fast_model, backend)
    if compile_mode is not None:
        fast_model = torch.compile(fast_model, mode=None if compile_mode == "default" else compile_mode)
    return fast_model


def batches(n: int, batch_size: int, first_index: int = 0,
            x_init: torch.Tensor | None = None) -> Iterator[tuple[torch.Tensor, torch.Tensor | None]]:
    """(the global indices of each batch, its rows of x_init or None): samples first_index .. first_index + n."""
    for b in range(math.ceil(n / batch_size)):
        lo, m = b * batch_size, min(batch_size, n - b * batch_size)
        yield (torch.arange(first_index + lo, first_index + lo + m),
               None if x_init is None else x_init[lo: lo + m])
