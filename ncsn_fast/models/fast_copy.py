"""The fast path's copy of a network: on its device in the sampling dtype, channels_last, our fused ops."""

from __future__ import annotations

import copy
import os
from pathlib import Path

import torch

from .conv import prepare_convs
from .norms import set_backend


def fast_copy(model: torch.nn.Module, device, dtype: torch.dtype, channels_last: bool, backend: str,
              compile_mode: str | None = None) -> torch.nn.Module:
    """A copy of `model` on `device` in `dtype` (but the tensors its keep_dtype() names, if it has one), eval mode,
    channels_last, fused norms (our ops on `backend`), optionally under torch.compile (our ops compose with it)."""
    fast_model = copy.deepcopy(model).to(device=device).eval()
    keep = set(fast_model.keep_dtype()) if hasattr(fast_model, "keep_dtype") else set()
    for name, t in [*fast_model.named_parameters(), *fast_model.named_buffers()]:
        if t.is_floating_point() and name not in keep:
            t.data = t.data.to(dtype)
    if channels_last:
        fast_model = fast_model.to(memory_format=torch.channels_last)
    set_backend(fast_model, backend)
    if compile_mode is not None:
        if backend != "torch":
            prepare_convs(fast_model)  # the transformed conv weights, kept for the compiled graph
        keep_compile_cache()
        fast_model = torch.compile(fast_model, mode=None if compile_mode == "default" else compile_mode)
    return fast_model


def keep_compile_cache() -> str:
    """Point inductor's caches (compiled graphs, kernels, autotuning) at a folder that outlives the process and
    the machine's /tmp, so that a second process compiles from them in seconds: $TORCHINDUCTOR_CACHE_DIR when set,
    else $XDG_CACHE_HOME/ncsn_fast/inductor (~/.cache/ncsn_fast/inductor), with a folder of its own per set of ISA
    caps (machine.ISA_CAPS): inductor's cache does not key on them, and shared it hands a capped process code for
    the full ISA (which fails to compile) and an uncapped one the capped scalar code. Returns the folder."""
    if "TORCHINDUCTOR_CACHE_DIR" not in os.environ:
        from ..machine import ISA_CAPS, isa_caps
        caps = isa_caps()
        name = "inductor" + "".join(f"-{caps[k].lower()}" for k in ISA_CAPS if k in caps)
        base = os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache"
        os.environ["TORCHINDUCTOR_CACHE_DIR"] = str(Path(base) / "ncsn_fast" / name)
    return os.environ["TORCHINDUCTOR_CACHE_DIR"]
