"""Checkpoints as .safetensors: the weights to sample with and the resolved config, and nothing that runs.

`ncsn-fast convert CHECKPOINT OUT.safetensors` writes the network's state_dict (the EMA weights by default)
with the config as JSON in the file's metadata; a .safetensors file is then accepted wherever a checkpoint
is. The format holds tensors and strings only, so reading one can run no code at all.
"""

from __future__ import annotations

import json
from pathlib import Path

import torch

from .errors import CheckpointError
from .fileio import atomic_write_bytes

FORMAT = "ncsn_fast.safetensors.1"


def is_safetensors(path: str | Path) -> bool:
    return Path(path).suffix == ".safetensors"


def read(path: str | Path) -> tuple[dict[str, torch.Tensor], dict | None, dict]:
    """(state_dict, embedded config or None, the file's metadata); CheckpointError for a bad file."""
    try:
        from safetensors import SafetensorError
        from safetensors.torch import safe_open
    except ImportError as e:  # a dependency, but say what needs it
        raise CheckpointError(f"reading {path} needs the safetensors package (pip install safetensors)") from e
    path = Path(path)
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
        except ValueError as e:
            raise CheckpointError(f"{path}: its metadata 'config' is not valid JSON ({e})") from None
    return state, config, meta


def write(path: str | Path, state: dict[str, torch.Tensor], config: dict, *, ema: bool, source: str) -> None:
    """The tensors (contiguous, on the CPU) and the config, atomically (temp file + rename)."""
    from safetensors.torch import save

    tensors = {k: v.detach().cpu().contiguous() for k, v in state.items()}
    meta = {"format": FORMAT, "config": json.dumps(config), "weights": "ema" if ema else "raw", "source": source}
    atomic_write_bytes(path, save(tensors, metadata=meta))
