"""Checkpoints: one loader for every format we read (load.py), one safe unpickler (safe_load.py), one module per
format family (ermongroup.py: NCSN / NCSNv2; score_sde.py: NCSN++; ours.py: our .pth and .safetensors, written
atomically) and the NCSN++ config inferred from the weights (ncsnpp_infer.py)."""

from .load import CheckpointInfo, describe_weights, load_checkpoint, read
from .ours import atomic_torch_save, save_checkpoint, write_safetensors
from .safe_load import Contents, strip_prefix

__all__ = ["CheckpointInfo", "Contents", "atomic_torch_save", "describe_weights", "load_checkpoint", "read",
           "save_checkpoint", "strip_prefix", "write_safetensors"]
