"""Our own checkpoint formats, written atomically (temp file + rename), holding nothing that runs:

- `.pth` (training): {"ncsn_fast": 1, "config": {...}, "state_dict": {...}, "ema": {...} | None, "step": int, ...}
- `.safetensors` (`ncsn-fast convert`): the network's state_dict to sample with (the EMA weights by default) and
  the resolved config as JSON in the file's metadata, for every family (NCSN, NCSNv2, NCSN++); the format holds
  tensors and strings only, so reading one can run no code at all.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import torch

from ..errors import CheckpointError
from ..fileio import atomic_write, atomic_write_bytes
from .safe_load import Contents, is_ncsnpp_state, is_state_dict, strip_prefix

OUR_FORMAT = 1
SAFETENSORS_FORMAT = "ncsn_fast.safetensors.1"


def split(obj: Any) -> Contents | None:
    """The contents of our .pth checkpoint; None if `obj` is not one."""
    if not (isinstance(obj, Mapping) and obj.get("ncsn_fast") is not None):
        return None
    if obj["ncsn_fast"] != OUR_FORMAT or not is_state_dict(obj.get("state_dict")):
        raise CheckpointError(f"unsupported ncsn_fast checkpoint version {obj.get('ncsn_fast')!r}")
    state = strip_prefix(obj["state_dict"])
    ema = strip_prefix(obj["ema"]) if obj.get("ema") else None
    family = "ncsnpp" if is_ncsnpp_state(state) else "refinenet"
    return Contents("ncsn_fast", family, state, ema, obj.get("config"), obj.get("step"))


def save_checkpoint(path: str | Path, model: torch.nn.Module, config, *,
                    ema_state: Mapping[str, torch.Tensor] | None = None, step: int | None = None,
                    extra: Mapping[str, Any] | None = None) -> None:
    """Write our .pth format (config embedded, tensors only) atomically: temp file, then rename."""
    obj = {"ncsn_fast": OUR_FORMAT, "config": config.to_dict(),
           "state_dict": {k: v.detach().cpu() for k, v in model.state_dict().items()},
           "ema": None if ema_state is None else {k: v.detach().cpu() for k, v in ema_state.items()},
           "step": step}
    if extra:
        obj.update(extra)
    atomic_torch_save(obj, path)


def atomic_torch_save(obj: Any, path: str | Path, durable: bool = False) -> None:
    atomic_write(path, lambda f: torch.save(obj, f), durable)


def is_safetensors(path: str | Path) -> bool:
    return Path(path).suffix == ".safetensors"


def read_safetensors(path: Path) -> Contents:
    """The contents of a .safetensors file (ours: config in the metadata); CheckpointError for a bad file."""
    try:
        from safetensors import SafetensorError
        from safetensors.torch import safe_open
    except ImportError as e:  # a dependency, but say what needs it
        raise CheckpointError(f"reading {path} needs the safetensors package (pip install safetensors)") from e
    if not path.is_file():
        raise CheckpointError(f"checkpoint not found: {path}")
    try:
        with safe_open(str(path), framework="pt", device="cpu") as f:
            meta = dict(f.metadata() or {})
            state = {k: f.get_tensor(k) for k in f.keys()}
    except (SafetensorError, OSError, ValueError, RuntimeError) as e:
        first = str(e).strip().splitlines()[0] if str(e).strip() else type(e).__name__
        raise CheckpointError(f"cannot read {path} as a .safetensors file ({first}): truncated or not one?") from None
    if not state:
        raise CheckpointError(f"{path} holds no tensors")
    config = None
    if "config" in meta:
        try:
            config = json.loads(meta["config"])
        except (ValueError, RecursionError) as e:
            raise CheckpointError(f"{path}: its metadata 'config' is not valid JSON ({e})") from None
    state = strip_prefix(state)
    kind = {"ema": "EMA weights", "raw": "raw weights"}.get(meta.get("weights"), "weights of unknown kind")
    return Contents(f"safetensors, {kind}", "ncsnpp" if is_ncsnpp_state(state) else "refinenet", state, None, config,
                    weights_are_ema=meta.get("weights") == "ema")


def write_safetensors(path: str | Path, state: dict[str, torch.Tensor], config: dict, *, ema: bool,
                      source: str) -> None:
    """The tensors (contiguous, on the CPU) and the config, atomically (temp file + rename)."""
    from safetensors.torch import save

    tensors = {k: v.detach().cpu().contiguous() for k, v in state.items()}
    meta = {"format": SAFETENSORS_FORMAT, "config": json.dumps(config), "weights": "ema" if ema else "raw",
            "source": source}
    atomic_write_bytes(path, save(tensors, metadata=meta))
