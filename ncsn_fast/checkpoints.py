"""Loading checkpoints of the original NCSN / NCSNv2 code (and our own), safely; writing ours.

Formats read:
- NCSN v1:  [model.state_dict(), optimizer.state_dict()]
- NCSNv2:   [model.state_dict(), optimizer.state_dict(), epoch, step] (+ [ema_shadow] if model.ema)
- ncsn_fast: {"ncsn_fast": 1, "config": {...}, "state_dict": {...}, "ema": {...} | None, ...}
- a bare state_dict.
Keys may carry DataParallel's `module.` prefix. Every file is read with torch.load(weights_only=True):
a file that needs code to unpickle is refused and nothing in it runs.
"""

from __future__ import annotations

import pickle
from collections.abc import Mapping
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

import torch

from .config import Config, ConfigError, config_from_dict, load_config, sigma_ladder
from .errors import CheckpointError
from .fileio import atomic_write
from .models import RefineNetScore, build_model

OUR_FORMAT = 1


@dataclass
class CheckpointInfo:
    """What was found in a checkpoint file, for `ncsn-fast info` and for error messages."""

    path: str
    layout: str  # 'ncsn' | 'ncsnv2' | 'ncsn_fast' | 'state_dict'
    config_source: str  # where the config came from
    has_ema: bool
    ema_applied: bool
    step: int | None
    config_note: str = ""  # what the config's source assumed (an NCSN++ config inferred from the weights)


def _torch_load(path: Path) -> Any:
    if not path.exists():
        raise CheckpointError(f"checkpoint not found: {path}")
    if not path.is_file():
        raise CheckpointError(f"checkpoint path is not a file: {path}")
    try:
        return torch.load(path, map_location="cpu", weights_only=True)
    except pickle.UnpicklingError as e:
        first = str(e).strip().splitlines()[0] if str(e).strip() else type(e).__name__
        raise CheckpointError(
            f"refused to load {path}: it holds Python objects that would run code when unpickled "
            f"(torch.load weights_only=True said: {first}). ncsn_fast only reads tensors, numbers and "
            "strings; re-save the weights with torch.save(state_dict) from code you trust.") from None
    except (RuntimeError, EOFError, OSError, ValueError) as e:
        first = str(e).strip().splitlines()[0] if str(e).strip() else type(e).__name__
        raise CheckpointError(f"cannot read {path} as a PyTorch checkpoint: {first}") from None


def read_checkpoint(path: Path) -> tuple[str, dict, dict | None, dict | None, int | None]:
    """split_checkpoint of a torch file, or the contents of a .safetensors one (safetensors_io.py)."""
    from . import safetensors_io
    if safetensors_io.is_safetensors(path):
        state, config, meta = safetensors_io.read(path)
        kind = {"ema": "EMA weights", "raw": "raw weights"}.get(meta.get("weights"), "weights of unknown kind")
        return f"safetensors, {kind}", strip_prefix(state), None, config, None
    return split_checkpoint(_torch_load(path))


def _is_state_dict(obj: Any) -> bool:
    return isinstance(obj, Mapping) and len(obj) > 0 and all(
        isinstance(k, str) and isinstance(v, torch.Tensor) for k, v in obj.items())


def strip_prefix(state: Mapping[str, torch.Tensor], prefix: str = "module.") -> dict[str, torch.Tensor]:
    """Remove DataParallel's prefix when every key has it."""
    if state and all(k.startswith(prefix) for k in state):
        return {k[len(prefix):]: v for k, v in state.items()}
    return dict(state)


def split_checkpoint(obj: Any) -> tuple[str, dict, dict | None, dict | None, int | None]:
    """(layout, state_dict, ema_shadow or None, embedded config or None, step or None)."""
    if isinstance(obj, Mapping) and obj.get("ncsn_fast") is not None:
        if obj["ncsn_fast"] != OUR_FORMAT or not _is_state_dict(obj.get("state_dict")):
            raise CheckpointError(f"unsupported ncsn_fast checkpoint version {obj.get('ncsn_fast')!r}")
        ema = strip_prefix(obj["ema"]) if obj.get("ema") else None
        return "ncsn_fast", strip_prefix(obj["state_dict"]), ema, obj.get("config"), obj.get("step")
    if isinstance(obj, (list, tuple)) and obj and _is_state_dict(obj[0]):
        state = strip_prefix(obj[0])
        if len(obj) >= 4 and isinstance(obj[3], int):  # NCSNv2: [model, optim, epoch, step, (ema)]
            ema = strip_prefix(obj[4]) if len(obj) >= 5 and _is_state_dict(obj[4]) else None
            return "ncsnv2", state, ema, None, obj[3]
        return "ncsn", state, None, None, None
    if _is_state_dict(obj):
        return "state_dict", strip_prefix(obj), None, None, None
    raise CheckpointError("not an NCSN/NCSNv2 checkpoint: expected the original list "
                          "[state_dict, optimizer, ...], an ncsn_fast checkpoint or a state_dict")


def infer_config(state: Mapping[str, torch.Tensor], image_size: int | None = None,
                 sigma_begin: float | None = None, sigma_end: float | None = None,
                 sigma_dist: str = "geometric") -> Config:
    """Architecture from the weights alone; what weights cannot tell must be passed in."""
    if "begin_conv.weight" not in state:
        raise CheckpointError("cannot infer the architecture: no begin_conv.weight in the state_dict")
    ngf, channels = state["begin_conv.weight"].shape[:2]
    if "normalizer.embed.weight" in state:
        family, arch = "ncsn", "CondRefineNetDilated"
        num_classes = state["normalizer.embed.weight"].shape[0]
    elif "normalizer.alpha" in state:
        family = "ncsnv2"
        arch = ("NCSNv2Deepest" if "res31.0.conv1.weight" in state else
                "NCSNv2Deeper" if "res5.0.conv1.weight" in state else "NCSNv2")
        num_classes = state["sigmas"].shape[0] if "sigmas" in state else None
    else:
        raise CheckpointError("cannot infer the architecture: no normalizer parameters")
    if family == "ncsnv2" and "sigmas" in state:
        sig = state["sigmas"].float()
        # The buffer is float32: take the shortest decimal that rounds to it (0.01, not 0.00999999977).
        sigma_begin = float(str(sig[0].numpy())) if sigma_begin is None else sigma_begin
        sigma_end = float(str(sig[-1].numpy())) if sigma_end is None else sigma_end
        uniform = sigma_ladder(sigma_begin, sigma_end, len(sig), "uniform", torch.float32)
        if len(sig) > 2 and torch.allclose(uniform, state["sigmas"].float(), rtol=1e-5):
            sigma_dist = "uniform"
    if num_classes is None:
        raise CheckpointError("cannot infer the number of noise levels: no `sigmas` buffer")
    missing = []
    if image_size is None:
        missing.append(("the image size", "--image-size"))
    if sigma_begin is None or sigma_end is None:
        missing.append(("the sigma range", "--sigma-begin and --sigma-end"))
    if missing:
        raise CheckpointError(
            "no config given, and the weights do not tell " + " or ".join(m[0] for m in missing) +
            ": pass --config config.yml, or " + " and ".join(m[1] for m in missing) +
            " (in Python: load_checkpoint(..., config=... or image_size=, sigma_begin=, sigma_end=))")
    dataset = {"NCSNv2Deeper": "LSUN", "NCSNv2Deepest": "FFHQ"}.get(arch, "CIFAR10")
    raw = {"family": family, "arch": arch,
           "data": {"dataset": dataset, "image_size": image_size, "channels": channels},
           "model": {"ngf": ngf, "num_classes": num_classes, "sigma_begin": sigma_begin,
                     "sigma_end": sigma_end, "sigma_dist": sigma_dist}}
    return config_from_dict(raw)


def describe_weights(path: str | Path) -> dict:
    """What a checkpoint's weights tell without any config (for `ncsn-fast info` on a bare checkpoint), and
    what they do not: {'layout', 'step', 'has_ema', 'family', 'arch', 'ngf', 'channels', 'num_classes',
    'sigmas' (NCSNv2's buffer, or None), 'parameters', 'entries', 'unknown': [(what, option), ...]}."""
    path = Path(path)
    layout, state, shadow, embedded, step = read_checkpoint(path)
    if "begin_conv.weight" not in state or not ("normalizer.embed.weight" in state or "normalizer.alpha" in state):
        raise CheckpointError(f"{path} holds a state_dict, but not of an NCSN/NCSNv2 network (no begin_conv / "
                              f"normalizer parameters among its {len(state)} entries)")
    ngf, channels = state["begin_conv.weight"].shape[:2]
    conditional = "normalizer.embed.weight" in state
    arch = ("CondRefineNetDilated" if conditional else "NCSNv2Deepest" if "res31.0.conv1.weight" in state else
            "NCSNv2Deeper" if "res5.0.conv1.weight" in state else "NCSNv2")
    sigmas = None if conditional or "sigmas" not in state else state["sigmas"].double()
    num_classes = state["normalizer.embed.weight"].shape[0] if conditional else \
        (len(sigmas) if sigmas is not None else None)
    unknown = [("the image size", "--image-size (or --config)")]
    if sigmas is None:
        unknown.append(("the sigma ladder", "--sigma-begin and --sigma-end (or --config)"))
    if num_classes is None:
        unknown.append(("the number of noise levels", "--config"))
    return {"layout": layout, "step": step, "has_ema": shadow is not None, "family": "ncsn" if conditional else
            "ncsnv2", "arch": arch, "ngf": int(ngf), "channels": int(channels), "num_classes": num_classes,
            "sigmas": sigmas, "parameters": sum(v.numel() for k, v in state.items() if k != "sigmas"),
            "entries": len(state), "unknown": unknown}


def check_against_config(state: Mapping[str, torch.Tensor], config: Config) -> None:
    """Raise CheckpointError naming the keys and shapes that differ between weights and config."""
    with torch.device("meta"):
        expected = {k: tuple(v.shape) for k, v in build_model(config).state_dict().items()}
    got = {k: tuple(v.shape) for k, v in state.items()}
    family = ("ncsn" if "normalizer.embed.weight" in got else
              "ncsnv2" if "normalizer.alpha" in got else None)
    if family is not None and family != config.family:
        names = {"ncsn": "NCSN v1 (CondRefineNetDilated)", "ncsnv2": "NCSNv2"}
        raise CheckpointError(f"checkpoint is an {names[family]} network but the config describes "
                              f"{names[config.family]}: wrong config.yml for this checkpoint?")
    missing = [k for k in expected if k not in got]
    unexpected = [k for k in got if k not in expected]
    shapes = [f"{k}: checkpoint {got[k]} vs config {expected[k]}"
              for k in expected if k in got and got[k] != expected[k]]
    if not (missing or unexpected or shapes):
        return

    def head(items, n=5):
        return ", ".join(items[:n]) + (f" (+{len(items) - n} more)" if len(items) > n else "")

    parts = []
    if shapes:
        parts.append(f"{len(shapes)} shape(s) differ: {head(shapes, 3)}")
    if missing:
        parts.append(f"{len(missing)} key(s) missing from the checkpoint: {head(missing)}")
    if unexpected:
        parts.append(f"{len(unexpected)} unexpected key(s) in the checkpoint: {head(unexpected)}")
    raise CheckpointError(f"checkpoint does not match the config ({config.arch}, ngf "
                          f"{config.model.ngf}, {config.model.num_classes} levels, "
                          f"{config.data.channels} channels): " + "; ".join(parts))


def resolve_config(path: Path, config: Config | str | Path | None, embedded: Mapping | None,
                   state: Mapping[str, torch.Tensor], **overrides) -> tuple[Config, str]:
    """Pick the config: given > embedded in the checkpoint > config.yml beside it > inferred."""
    if isinstance(config, Config):
        return config, "given"
    if config is not None:
        return load_config(config), str(config)
    if embedded is not None:
        try:
            return config_from_dict(embedded), "embedded in the checkpoint"
        except (ConfigError, TypeError, ValueError, KeyError) as e:
            raise CheckpointError(f"{path}: its embedded config cannot be read ({e})") from None
    beside = path.parent / "config.yml"
    if beside.is_file():
        return load_config(beside), str(beside)
    return infer_config(state, **overrides), "inferred from the weights"


def load_checkpoint(path: str | Path, config: Config | str | Path | None = None, ema: bool = True,
                    device: str | torch.device = "cpu", *, image_size: int | None = None,
                    sigma_begin: float | None = None, sigma_end: float | None = None,
                    return_info: bool = False):
    """Load a checkpoint of the original NCSN/NCSNv2 code or ours; returns (model in eval mode, config).

    config: a Config, a path to the run's config.yml, or None (then: the config embedded in our
    checkpoints, else `config.yml` in the checkpoint's folder as the original code leaves it, else
    the architecture is inferred from the weights and image_size / sigma range must be given).
    ema: use the EMA weights when the checkpoint has them (as the original sampler does).
    """
    path = Path(path)
    layout, state, shadow, embedded, step = read_checkpoint(path)
    try:
        cfg, source = resolve_config(path, config, embedded, state, image_size=image_size,
                                     sigma_begin=sigma_begin, sigma_end=sigma_end)
    except ConfigError as e:
        raise CheckpointError(str(e)) from None
    if image_size is not None and cfg.data.image_size != image_size:
        cfg = cfg.replace(data=replace(cfg.data, image_size=image_size))
    check_against_config(state, cfg)
    with torch.device("meta"):
        model = build_model(cfg)
    model.load_state_dict(state, strict=True, assign=True)
    ema_applied = False
    if ema and shadow is not None:
        params = dict(model.named_parameters())
        missing = sorted(set(params) - set(shadow))
        if missing:
            raise CheckpointError(f"EMA weights lack {len(missing)} parameter(s), e.g. {missing[0]}")
        with torch.no_grad():
            for name, p in params.items():
                if tuple(shadow[name].shape) != tuple(p.shape):
                    raise CheckpointError(f"EMA weight {name} has shape {tuple(shadow[name].shape)}, "
                                          f"the model {tuple(p.shape)}")
                p.copy_(shadow[name])
        ema_applied = True
    model = model.to(device).eval()
    if return_info:
        stored_ema = layout == "safetensors, EMA weights"  # converted: the EMA weights are the weights
        info = CheckpointInfo(str(path), layout, source, shadow is not None or stored_ema, ema_applied or stored_ema,
                              step)
        return model, cfg, info
    return model, cfg


def save_checkpoint(path: str | Path, model: RefineNetScore, config: Config, *,
                    ema_state: Mapping[str, torch.Tensor] | None = None, step: int | None = None,
                    extra: Mapping[str, Any] | None = None) -> None:
    """Write our format (config embedded, tensors only) atomically: temp file, then rename."""
    obj = {"ncsn_fast": OUR_FORMAT, "config": config.to_dict(),
           "state_dict": {k: v.detach().cpu() for k, v in model.state_dict().items()},
           "ema": None if ema_state is None else {k: v.detach().cpu() for k, v in ema_state.items()},
           "step": step}
    if extra:
        obj.update(extra)
    atomic_torch_save(obj, path)


def atomic_torch_save(obj: Any, path: str | Path) -> None:
    atomic_write(path, lambda f: torch.save(obj, f))


__all__ = ["CheckpointInfo", "atomic_torch_save", "check_against_config", "describe_weights", "infer_config",
           "load_checkpoint", "save_checkpoint", "split_checkpoint", "strip_prefix"]
