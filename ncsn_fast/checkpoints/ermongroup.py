"""Checkpoints of the original NCSN / NCSNv2 code (ermongroup/ncsn, ermongroup/ncsnv2), and bare state_dicts of
their networks.

Layouts read (keys may carry DataParallel's `module.` prefix):
- NCSN v1:  [model.state_dict(), optimizer.state_dict()]
- NCSNv2:   [model.state_dict(), optimizer.state_dict(), epoch, step] (+ [ema_shadow] if model.ema)
- a bare state_dict.
The config: given, embedded (ours), the run's `config.yml` beside the checkpoint as the original code leaves it,
or the architecture inferred from the weights (what they cannot tell must be passed in).
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import Any

import torch

from ..config import Config, config_from_dict, load_config, sigma_ladder
from ..errors import CheckpointError
from ..models import build_model
from .safe_load import Contents, is_ncsnpp_state, is_state_dict, strip_prefix

FAMILY_NAMES = {"ncsn": "NCSN v1 (CondRefineNetDilated)", "ncsnv2": "NCSNv2"}


def split(obj: Any) -> Contents | None:
    """The contents of an original NCSN / NCSNv2 file or a bare state_dict of their networks; None if not one."""
    if isinstance(obj, (list, tuple)) and obj and is_state_dict(obj[0]):
        state = strip_prefix(obj[0])
        if len(obj) >= 4 and isinstance(obj[3], int):  # NCSNv2: [model, optim, epoch, step, (ema)]
            ema = strip_prefix(obj[4]) if len(obj) >= 5 and is_state_dict(obj[4]) else None
            return Contents("ncsnv2", "refinenet", state, ema, None, obj[3])
        return Contents("ncsn", "refinenet", state)
    if is_state_dict(obj) and not is_ncsnpp_state(strip_prefix(obj)):
        return Contents("state_dict", "refinenet", strip_prefix(obj))
    return None


def family_of(state: Mapping[str, torch.Tensor]) -> str | None:
    return ("ncsn" if "normalizer.embed.weight" in state else "ncsnv2" if "normalizer.alpha" in state else None)


def arch_of(state: Mapping[str, torch.Tensor]) -> str:
    if "normalizer.embed.weight" in state:
        return "CondRefineNetDilated"
    return ("NCSNv2Deepest" if "res31.0.conv1.weight" in state else
            "NCSNv2Deeper" if "res5.0.conv1.weight" in state else "NCSNv2")


# The config, by the rules load.py applies in order: given, embedded, beside the checkpoint, inferred.

def config_given(config) -> tuple[Config, str]:
    if isinstance(config, Config):
        return config, "given"
    return load_config(config), str(config)


def config_embedded(raw: Mapping) -> Config:
    return config_from_dict(raw)


def config_beside(path: Path) -> tuple[Config, str] | None:
    beside = path.parent / "config.yml"
    return (load_config(beside), str(beside)) if beside.is_file() else None


def infer_config(state: Mapping[str, torch.Tensor], image_size: int | None = None,
                 sigma_begin: float | None = None, sigma_end: float | None = None,
                 sigma_dist: str = "geometric") -> Config:
    """Architecture from the weights alone; what weights cannot tell must be passed in."""
    if "begin_conv.weight" not in state:
        raise CheckpointError("cannot infer the architecture: no begin_conv.weight in the state_dict")
    ngf, channels = state["begin_conv.weight"].shape[:2]
    family = family_of(state)
    if family is None:
        raise CheckpointError("cannot infer the architecture: no normalizer parameters")
    arch = arch_of(state)
    if family == "ncsn":
        num_classes = state["normalizer.embed.weight"].shape[0]
    else:
        num_classes = state["sigmas"].shape[0] if "sigmas" in state else None
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


def config_inferred(state, image_size=None, sigma_begin=None, sigma_end=None) -> tuple[Config, str, str]:
    return infer_config(state, image_size, sigma_begin, sigma_end), "inferred from the weights", ""


def with_image_size(cfg: Config, image_size: int | None) -> Config:
    if image_size is None or cfg.data.image_size == image_size:
        return cfg
    import dataclasses
    return cfg.replace(data=dataclasses.replace(cfg.data, image_size=image_size))


def check_against_config(state: Mapping[str, torch.Tensor], config: Config, source: str = "") -> None:
    """Raise CheckpointError naming the keys and shapes that differ between weights and config."""
    with torch.device("meta"):
        expected = {k: tuple(v.shape) for k, v in build_model(config).state_dict().items()}
    got = {k: tuple(v.shape) for k, v in state.items()}
    family = family_of(got)
    if family is not None and family != config.family:
        raise CheckpointError(f"checkpoint is an {FAMILY_NAMES[family]} network but the config describes "
                              f"{FAMILY_NAMES[config.family]}: wrong config.yml for this checkpoint?")
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


def build(cfg: Config, contents: Contents, use_ema: bool, source: str) -> tuple[torch.nn.Module, bool]:
    """(the network with the checkpoint's weights, the EMA ones if asked and present; whether EMA was applied)."""
    state, shadow = contents.state, contents.ema
    check_against_config(state, cfg, source)
    with torch.device("meta"):
        model = build_model(cfg)
    model.load_state_dict(state, strict=True, assign=True)
    if not (use_ema and shadow is not None):
        return model, False
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
    return model, True


def describe_weights(contents: Contents) -> dict:
    """What a checkpoint's weights tell without any config (for `ncsn-fast info` on a bare checkpoint), and
    what they do not: {'layout', 'step', 'has_ema', 'family', 'arch', 'ngf', 'channels', 'num_classes',
    'sigmas' (NCSNv2's buffer, or None), 'parameters', 'entries', 'unknown': [(what, option), ...]}."""
    state = contents.state
    if "begin_conv.weight" not in state or family_of(state) is None:
        raise CheckpointError(f"it holds a state_dict, but not of an NCSN/NCSNv2 network (no begin_conv / "
                              f"normalizer parameters among its {len(state)} entries)")
    ngf, channels = state["begin_conv.weight"].shape[:2]
    conditional = family_of(state) == "ncsn"
    sigmas = None if conditional or "sigmas" not in state else state["sigmas"].double()
    num_classes = state["normalizer.embed.weight"].shape[0] if conditional else \
        (len(sigmas) if sigmas is not None else None)
    unknown = [("the image size", "--image-size (or --config)")]
    if sigmas is None:
        unknown.append(("the sigma ladder", "--sigma-begin and --sigma-end (or --config)"))
    if num_classes is None:
        unknown.append(("the number of noise levels", "--config"))
    return {"layout": contents.layout, "step": contents.step, "has_ema": contents.ema is not None,
            "family": family_of(state), "arch": arch_of(state), "ngf": int(ngf), "channels": int(channels),
            "num_classes": num_classes, "sigmas": sigmas,
            "parameters": sum(v.numel() for k, v in state.items() if k != "sigmas"), "entries": len(state),
            "unknown": unknown}
