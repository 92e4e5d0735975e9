"""The one way a checkpoint file is unpickled: torch.load(weights_only=True), admitting exactly the NumPy scalar
globals that score-SDE files carry, so that nothing in a file can run code; and what a format module makes of it.

score-SDE checkpoints carry a NumPy float64 (the warm-up learning rate in the optimizer state), so their pickle
names NumPy's scalar reconstructor, `numpy.dtype` and dtype classes: exactly those are admitted (under their NumPy 1
and NumPy 2 names), `numpy.dtype` only as a builder of the few scalar dtypes such files carry, and nothing else.
Files in torch's zip format are memory-mapped, so a tensor's storage is not read into memory until it is used:
the shapes are checked against the config first.
"""

from __future__ import annotations

import pickle
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch

from ..errors import CheckpointError


@dataclass
class Contents:
    """What a checkpoint file holds, whatever its format."""
    layout: str  # for the user: 'ncsn', 'ncsnv2', 'ncsn_fast', 'state_dict', 'score-SDE', 'safetensors, ...'
    family: str  # 'refinenet' (NCSN, NCSNv2) or 'ncsnpp'
    state: dict[str, torch.Tensor]  # the network's state_dict, without DataParallel's `module.`
    ema: dict | list | None = None  # EMA shadow weights: by name (NCSNv2, ours) or in parameter order (score-SDE)
    config: dict | None = None  # a config embedded in the file
    step: int | None = None
    weights_are_ema: bool = False  # the stored weights are the EMA ones (a converted .safetensors)
    config_source: str = "embedded in the checkpoint"  # where a config that came with the weights came from


# The NumPy dtypes a checkpoint's scalars may have; `numpy.dtype` is admitted only as a builder of these.
SCALAR_DTYPES = ("f8", "f4", "i8", "i4", "b1")


def _scalar_dtype(name, align=False, copy=True):
    """numpy.dtype as a pickle may call it, for the scalar dtypes above only (anything else is refused)."""
    if not isinstance(name, str) or name.lstrip("<>=|") not in SCALAR_DTYPES or align is not False:
        raise pickle.UnpicklingError(f"Unsupported global: numpy.dtype({name!r}) is not a scalar dtype of a "
                                     f"checkpoint ({', '.join(SCALAR_DTYPES)})")
    return np.dtype(name)


def _numpy_globals() -> list:
    core = getattr(np, "_core", None) or np.core
    scalar = core.multiarray.scalar
    allowed = [(scalar, "numpy.core.multiarray.scalar"), (scalar, "numpy._core.multiarray.scalar"),
               (_scalar_dtype, "numpy.dtype")]
    dtypes = getattr(np, "dtypes", None)
    if dtypes is not None:
        allowed += [getattr(dtypes, n) for n in ("Float64DType", "Float32DType", "Int64DType", "Int32DType",
                                                 "BoolDType") if hasattr(dtypes, n)]
    return allowed


def torch_load(path: Path) -> Any:
    """The file's object, unpickled once with torch.load(weights_only=True); CheckpointError if it cannot be."""
    if not path.exists():
        raise CheckpointError(f"checkpoint not found: {path}")
    if not path.is_file():
        raise CheckpointError(f"checkpoint path is not a file: {path}")
    import zipfile
    try:
        with torch.serialization.safe_globals(_numpy_globals()):
            return torch.load(path, map_location="cpu", weights_only=True, mmap=zipfile.is_zipfile(path))
    except pickle.UnpicklingError as e:
        text = str(e)
        signs = ("unsupported global", "can only build", "unsupported operand")
        why = next((ln.strip() for ln in text.splitlines() if any(w in ln.lower() for w in signs)), "")
        if why and ("operand" not in why.lower() or _is_pickle(path)):
            raise CheckpointError(
                f"refused to load {path}: it holds Python objects other than tensors, numbers, strings and NumPy "
                f"scalars, which could run code when unpickled, so nothing in it was run (torch.load "
                f"weights_only=True said: {why[:200]}); re-save the weights with torch.save(state_dict) from code "
                f"you trust") from None
        raise CheckpointError(f"cannot read {path} as a PyTorch checkpoint (truncated or not one?)") from None
    except (RuntimeError, EOFError, OSError, ValueError) as e:
        first = str(e).strip().splitlines()[0] if str(e).strip() else type(e).__name__
        raise CheckpointError(f"cannot read {path} as a PyTorch checkpoint: {first}") from None


def _is_pickle(path: Path) -> bool:
    """Whether the file is a well-formed pickle (its opcodes read without running any): one that torch's
    weights-only unpickler refused is then refused for what it would build, not taken for a broken file."""
    import pickletools
    try:
        with open(path, "rb") as f:
            for _ in pickletools.genops(f):
                pass
        return True
    except Exception:  # noqa: BLE001 -- any failure to read it as opcodes means it is no pickle
        return False


def is_state_dict(obj: Any) -> bool:
    return isinstance(obj, Mapping) and len(obj) > 0 and all(
        isinstance(k, str) and isinstance(v, torch.Tensor) for k, v in obj.items())


def strip_prefix(state: Mapping[str, torch.Tensor], prefix: str = "module.") -> dict[str, torch.Tensor]:
    """Remove DataParallel's prefix when every key has it."""
    if state and all(k.startswith(prefix) for k in state):
        return {k[len(prefix):]: v for k, v in state.items()}
    return dict(state)


def is_ncsnpp_state(state: Mapping[str, torch.Tensor]) -> bool:
    """Whether a state_dict (without `module.`) is an NCSN++'s: its modules are all_modules.<i>."""
    return any(k.startswith("all_modules.") for k in state)


def describe(obj: Any) -> str:
    """What an unpickled object is, in a few words (for the error naming what a file is not)."""
    if isinstance(obj, Mapping):
        keys = ", ".join(map(str, list(obj)[:6])) + (", ..." if len(obj) > 6 else "")
        return f"a dict with keys {keys}" if obj else "an empty dict"
    if isinstance(obj, (list, tuple)):
        return f"a {type(obj).__name__} of {len(obj)} items"
    return f"a {type(obj).__name__}"
