"""Checkpoints of the score-SDE code (NCSN++ with the VE SDE), read as its training loop writes them:
{'model': DataParallel state_dict, 'ema': {'decay', 'num_updates', 'shadow_params': [tensor, ...]},
'optimizer': ..., 'step': int}; and bare NCSN++ state_dicts.

The EMA's bare list of shadow parameters is mapped onto the parameters with requires_grad, in order (the frozen
Fourier features `W` are not in it). The config is the resolved score-SDE config: a dict, a JSON file (as the
fixtures hold it), a published config's name, embedded (a converted .safetensors), config.json beside the file
(our trainer's runs), or inferred from the weights (ncsnpp_infer.py).
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import Any

import torch

from ..config import ScoreSdeConfig, load_ncsnpp_config, published_ncsnpp_configs
from ..errors import CheckpointError, ConfigError
from ..models.ncsnpp import NCSNpp
from .safe_load import Contents, is_ncsnpp_state, is_state_dict, strip_prefix


def split(obj: Any) -> Contents | None:
    """The contents of a score-SDE checkpoint or a bare NCSN++ state_dict; None if not one."""
    if isinstance(obj, Mapping) and is_state_dict(obj.get("model")) and is_ncsnpp_state(strip_prefix(obj["model"])):
        ema = obj.get("ema")
        shadow = ema.get("shadow_params") if isinstance(ema, Mapping) else None
        step = obj.get("step")
        return Contents("score-SDE", "ncsnpp", strip_prefix(obj["model"]), shadow, None,
                        int(step) if isinstance(step, (int, torch.Tensor)) else None)
    if is_state_dict(obj) and is_ncsnpp_state(strip_prefix(obj)):
        return Contents("state_dict", "ncsnpp", strip_prefix(obj))
    return None


# The config, by the rules load.py applies in order: given, embedded, (none beside), inferred.

def config_given(config) -> tuple[ScoreSdeConfig, str]:
    return load_ncsnpp_config(config)


def config_embedded(raw: Mapping) -> ScoreSdeConfig:
    return ScoreSdeConfig(raw)


def config_beside(path: Path) -> tuple[ScoreSdeConfig, str] | None:
    """config.json beside the checkpoint (what our NCSN++ trainer writes: the resolved config)."""
    beside = path.parent / "config.json"
    if not beside.is_file():
        return None
    try:
        return load_ncsnpp_config(beside)
    except ConfigError:  # another tool's config.json (a diffusers UNet's): not this checkpoint's
        return None


def config_inferred(state, image_size=None, sigma_begin=None, sigma_end=None) -> tuple[ScoreSdeConfig, str, str]:
    """The config inferred from the weights (image_size, where given, in place of the attention-at-16x16 rule)."""
    from .ncsnpp_infer import infer_config
    cfg, source, note = infer_config(state, published_ncsnpp_configs(), image_size)
    return ScoreSdeConfig(cfg), source, note


def with_image_size(cfg: ScoreSdeConfig, image_size: int | None) -> ScoreSdeConfig:
    return cfg  # an NCSN++'s image size is part of its architecture: a given config or the inference decides it


def build(cfg: ScoreSdeConfig, contents: Contents, use_ema: bool, source: str) -> tuple[torch.nn.Module, bool]:
    """(NCSN++ with the checkpoint's weights, the EMA ones if asked and present; whether EMA was applied)."""
    state, shadow = contents.state, contents.ema
    try:
        with torch.device("meta"):
            model = NCSNpp(cfg)
    except (ValueError, KeyError, TypeError) as e:
        raise CheckpointError(f"the config ({source}) does not describe an NCSN++ we can build: {e}") from None
    expected = {k: tuple(v.shape) for k, v in model.state_dict().items()}
    got = {k: tuple(v.shape) for k, v in state.items()}
    wrong = [f"{k}: checkpoint {got.get(k)} vs config {v}" for k, v in expected.items() if got.get(k) != v]
    extra = [k for k in got if k not in expected]
    if wrong or extra:
        raise CheckpointError(f"the checkpoint does not match the config ({source}): {len(wrong)} key(s) missing or "
                              f"of another shape (e.g. {'; '.join(wrong[:3])}), {len(extra)} unexpected (e.g. "
                              f"{', '.join(extra[:3])})")
    model.load_state_dict(state, strict=True, assign=True)
    if not (use_ema and shadow is not None):
        return model, False
    params = [p for p in model.parameters() if p.requires_grad]
    if isinstance(shadow, Mapping):  # ours: the shadow by parameter name
        trained = [n for n, p in model.named_parameters() if p.requires_grad]
        unknown = sorted(set(shadow) - set(trained)) + [f"{n} (missing)" for n in trained if n not in shadow]
        if unknown:
            raise CheckpointError(f"the EMA does not match the model's trainable parameters: {', '.join(unknown[:3])}")
        shadow = [shadow[n] for n in trained]
    if len(shadow) != len(params):
        raise CheckpointError(f"the EMA holds {len(shadow)} tensors, the model {len(params)} trainable parameters")
    with torch.no_grad():
        for i, (p, s) in enumerate(zip(params, shadow)):
            if tuple(s.shape) != tuple(p.shape):
                raise CheckpointError(f"EMA tensor {i} has shape {tuple(s.shape)}, parameter {tuple(p.shape)}")
            p.copy_(s)
    return model, True
