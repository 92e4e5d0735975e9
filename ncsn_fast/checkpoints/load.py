"""One loader for every checkpoint we read: the file is opened once (safe_load.py, or a .safetensors read), its
format told from its contents, its config resolved by one rule, and its family builds the network.

Formats: the original NCSN / NCSNv2 files (ermongroup.py), the score-SDE code's NCSN++ files (score_sde.py), ours
(.pth and .safetensors, any family: ours.py), NCSN++ folders in the diffusers format (diffusers.py), and bare
state_dicts of either family.
Config, first that applies: given > embedded in the file > `config.yml` beside it (NCSN / NCSNv2, as the original
code leaves it) > inferred from the weights (what they cannot tell is asked for or, for NCSN++, assumed and said).
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import torch

from ..config import ConfigError
from ..errors import CheckpointError
from . import diffusers, ermongroup, ours, score_sde
from .safe_load import Contents, describe, torch_load

FAMILIES = {"refinenet": ermongroup, "ncsnpp": score_sde}


@dataclass
class CheckpointInfo:
    """What was found in a checkpoint file, for `ncsn-fast info` and for error messages."""

    path: str
    layout: str  # 'ncsn' | 'ncsnv2' | 'ncsn_fast' | 'state_dict' | 'score-SDE' | 'safetensors, ...'
    config_source: str  # where the config came from
    has_ema: bool
    ema_applied: bool
    step: int | None
    config_note: str = ""  # what the config's source assumed (an NCSN++ config inferred from the weights)


def read(path: str | Path) -> Contents:
    """The contents of a checkpoint file of any format we read, unpickled once; CheckpointError naming what the
    file is if it is not one."""
    path = Path(path)
    if ours.is_safetensors(path):
        return ours.read_safetensors(path)
    if diffusers.is_folder(path):
        return diffusers.read(path)
    obj = torch_load(path)
    for fmt in (ours, score_sde, ermongroup):
        contents = fmt.split(obj)
        if contents is not None:
            return contents
    raise CheckpointError(
        f"{path} is not a checkpoint ncsn_fast reads: not an NCSN/NCSNv2 checkpoint (the original list "
        f"[state_dict, optimizer, ...], ours, or a state_dict) nor a score-SDE one (a dict whose 'model' holds an "
        f"NCSN++ state_dict); it holds {describe(obj)}")


def resolve_config(path: Path, contents: Contents, config, *, image_size=None, sigma_begin=None, sigma_end=None):
    """(config, where it came from, what it assumed) by the rule in the module docstring."""
    family = FAMILIES[contents.family]
    try:
        if config is not None:
            cfg, source = family.config_given(config)
            return family.with_image_size(cfg, image_size), source, ""
        if contents.config is not None:
            try:
                cfg = family.config_embedded(contents.config)
            except (ConfigError, TypeError, ValueError, KeyError, OverflowError, RecursionError) as e:
                raise CheckpointError(f"{path}: its embedded config cannot be read ({e})") from None
            return family.with_image_size(cfg, image_size), contents.config_source, ""
        beside = family.config_beside(path)
        if beside is not None:
            return family.with_image_size(beside[0], image_size), beside[1], ""
        return family.config_inferred(contents.state, image_size=image_size, sigma_begin=sigma_begin,
                                      sigma_end=sigma_end)
    except ConfigError as e:
        raise CheckpointError(str(e)) from None


def load_checkpoint(path: str | Path, config=None, ema: bool = True, device: str | torch.device = "cpu", *,
                    image_size: int | None = None, sigma_begin: float | None = None, sigma_end: float | None = None,
                    return_info: bool = False):
    """Load a checkpoint of any format we read; returns (model in eval mode, config[, CheckpointInfo]).

    config: for NCSN / NCSNv2 a Config or the run's config.yml; for NCSN++ a published config's name, a JSON file
    of the resolved config, or a dict; None: embedded, beside the checkpoint (config.yml), else inferred from the
    weights (NCSN / NCSNv2 then need image_size, NCSN v1 also sigma_begin / sigma_end).
    ema: use the EMA weights when the checkpoint has them (as the original samplers do).
    The config returned is a Config (NCSN, NCSNv2) or a ScoreSdeConfig (NCSN++, the score-SDE code's dict).
    """
    path = Path(path)
    contents = read(path)
    cfg, source, note = resolve_config(path, contents, config, image_size=image_size, sigma_begin=sigma_begin,
                                       sigma_end=sigma_end)
    model, ema_applied = FAMILIES[contents.family].build(cfg, contents, ema, source)
    model = model.to(device).eval()
    if not return_info:
        return model, cfg
    info = CheckpointInfo(str(path), contents.layout, source, contents.ema is not None or contents.weights_are_ema,
                          ema_applied or contents.weights_are_ema, contents.step, note)
    return model, cfg, info


def describe_weights(path: str | Path) -> dict:
    """What an NCSN / NCSNv2 checkpoint's weights tell without any config (see ermongroup.describe_weights)."""
    contents = read(path)
    try:
        return ermongroup.describe_weights(contents)
    except CheckpointError as e:
        raise CheckpointError(f"{path}: {e}") from None
