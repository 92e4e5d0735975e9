"""Checkpoints of the score-SDE code (NCSN++ with the VE SDE), read as its training loop writes them:
{'model': DataParallel state_dict, 'ema': {'decay', 'num_updates', 'shadow_params': [tensor, ...]},
'optimizer': ..., 'step': int}, with torch.load(weights_only=True).

Such files carry a NumPy float64 (the warm-up learning rate in the optimizer state), so their pickle names
NumPy's scalar reconstructor and dtype classes: exactly those are admitted (under their NumPy 1 and NumPy 2
names) and nothing else, so no code runs. The EMA's bare list of shadow parameters is mapped onto the
parameters with requires_grad, in order (the frozen Fourier features `W` are not in it). The config is the
resolved score-SDE config: a dict, a JSON file (as the fixtures hold it), a published config's name, or None:
inferred from the weights (ncsnpp_infer.py).
"""

from __future__ import annotations

import json
import pickle
from dataclasses import dataclass
from importlib import resources
from pathlib import Path
from types import SimpleNamespace

import numpy as np
import torch

from .checkpoints import strip_prefix
from .errors import CheckpointError
from .models.ncsnpp import NCSNpp


@dataclass
class NcsnppInfo:
    path: str
    config_source: str
    step: int | None
    has_ema: bool
    ema_applied: bool
    config_note: str = ""  # what an inferred config assumed


class ScoreSdeConfig:
    """The resolved score-SDE config seen through the few attributes the commands read from ours: the image
    shape, the data range (centered: [-1, 1], else [0, 1]), a sampling batch size, and to_dict() to save it."""

    family, arch = "ncsnpp", "NCSNpp"

    def __init__(self, raw: dict):
        self.raw = raw
        d = raw["data"]
        self.image_shape = (d["num_channels"], d["image_size"], d["image_size"])
        self.data = SimpleNamespace(logit_transform=False, rescaled=bool(d.get("centered", False)),
                                    channels=d["num_channels"], image_size=d["image_size"])
        sampling = raw.get("sampling", {})
        self.sampling = SimpleNamespace(**{"batch_size": 64, "n_steps_each": 1, "step_lr": None,
                                           "denoise": sampling.get("noise_removal", True),
                                           **{k: v for k, v in sampling.items() if k != "batch_size"}})

    def to_dict(self) -> dict:
        return self.raw


def is_score_sde_checkpoint(path: str | Path) -> bool:
    """Whether `path` reads as a checkpoint of the score-SDE code (a dict whose 'model' holds all_modules)."""
    if Path(path).suffix == ".safetensors":
        return False
    try:
        obj = read_file(Path(path))
    except Exception:  # noqa: BLE001 -- any file that does not read as one is not one
        return False
    return any(".all_modules." in k or k.startswith("all_modules.") for k in obj["model"])


def published_configs() -> dict[str, dict]:
    """The ten published VE NCSN++ configs of the score-SDE code, resolved, by name (configs/ve/<name>.py)."""
    with (resources.files("ncsn_fast") / "assets" / "ncsnpp_configs.json").open("rb") as f:
        return json.load(f)


def _numpy_globals() -> list:
    core = getattr(np, "_core", None) or np.core
    scalar = core.multiarray.scalar
    allowed = [(scalar, "numpy.core.multiarray.scalar"), (scalar, "numpy._core.multiarray.scalar"), np.dtype]
    dtypes = getattr(np, "dtypes", None)
    if dtypes is not None:
        allowed += [getattr(dtypes, n) for n in ("Float64DType", "Float32DType", "Int64DType", "Int32DType",
                                                 "BoolDType") if hasattr(dtypes, n)]
    return allowed


def read_file(path: Path) -> dict:
    if not path.is_file():
        raise CheckpointError(f"checkpoint not found: {path}")
    try:
        with torch.serialization.safe_globals(_numpy_globals()):
            obj = torch.load(path, map_location="cpu", weights_only=True)
    except pickle.UnpicklingError as e:
        text = str(e)
        if "Unsupported global" in text or "Can only build" in text:
            why = next((ln.strip() for ln in text.splitlines() if "Unsupported global" in ln or "Can only build" in ln),
                       "")
            raise CheckpointError(f"refused to load {path}: it holds Python objects other than tensors, numbers "
                                  f"and NumPy scalars, which could run code when unpickled ({why[:200]})") from None
        raise CheckpointError(f"cannot read {path} as a PyTorch checkpoint (truncated or not one?)") from None
    except (RuntimeError, EOFError, OSError, ValueError) as e:
        first = str(e).strip().splitlines()[0] if str(e).strip() else type(e).__name__
        raise CheckpointError(f"cannot read {path} as a PyTorch checkpoint: {first}") from None
    if not isinstance(obj, dict) or "model" not in obj:
        raise CheckpointError(f"{path} is not a score-SDE checkpoint (expected a dict with 'model', 'ema', "
                              f"'optimizer', 'step')")
    return obj


def resolve_config(config) -> tuple[dict, str]:
    """(the resolved config, where it came from) from a dict, a JSON file or a published config's name."""
    if isinstance(config, dict):
        cfg, source = config, "given"
    elif isinstance(config, (str, Path)) and Path(config).suffix == ".json":
        try:
            cfg, source = json.loads(Path(config).read_text()), str(config)
        except (OSError, ValueError) as e:
            raise CheckpointError(f"cannot read the config {config}: {e}") from None
    elif isinstance(config, str) and config in published_configs():
        cfg, source = published_configs()[config], f"published config {config}"
    else:
        names = ", ".join(published_configs())
        raise CheckpointError(f"an NCSN++ checkpoint needs its config: a published name ({names}) or a JSON file "
                              f"of the resolved config; got {config!r}")
    cfg = cfg.get("config", cfg)  # the fixtures wrap it with the source's name and the changes
    if "model" not in cfg or "data" not in cfg:
        raise CheckpointError(f"the config from {source} has no model / data sections")
    return cfg, source


def load_ncsnpp(path: str | Path, config=None, ema: bool = True, device: str | torch.device = "cpu",
                image_size: int | None = None):
    """(NCSN++ in eval mode, its config dict, NcsnppInfo), with the EMA weights unless ema=False; config None:
    inferred from the weights (image_size, where given, in place of the attention-at-16x16 rule)."""
    path = Path(path)
    obj = read_file(path)
    state = strip_prefix(obj["model"])
    if config is None:
        from .ncsnpp_infer import infer_config
        cfg, source, note = infer_config(state, published_configs(), image_size)
    else:
        (cfg, source), note = resolve_config(config), ""
    with torch.device("meta"):
        model = NCSNpp(cfg)
    expected = {k: tuple(v.shape) for k, v in model.state_dict().items()}
    got = {k: tuple(v.shape) for k, v in state.items()}
    wrong = [f"{k}: checkpoint {got.get(k)} vs config {v}" for k, v in expected.items() if got.get(k) != v]
    extra = [k for k in got if k not in expected]
    if wrong or extra:
        raise CheckpointError(f"{path} does not match the config ({source}): {len(wrong)} key(s) missing or of "
                              f"another shape (e.g. {'; '.join(wrong[:3])}), {len(extra)} unexpected (e.g. "
                              f"{', '.join(extra[:3])})")
    model.load_state_dict(state, strict=True, assign=True)
    shadow = (obj.get("ema") or {}).get("shadow_params")
    if ema and shadow is not None:
        params = [p for p in model.parameters() if p.requires_grad]
        if len(shadow) != len(params):
            raise CheckpointError(f"the EMA holds {len(shadow)} tensors, the model {len(params)} trainable "
                                  f"parameters")
        with torch.no_grad():
            for i, (p, s) in enumerate(zip(params, shadow)):
                if tuple(s.shape) != tuple(p.shape):
                    raise CheckpointError(f"EMA tensor {i} has shape {tuple(s.shape)}, parameter {tuple(p.shape)}")
                p.copy_(s)
    info = NcsnppInfo(str(path), source, obj.get("step"), shadow is not None, bool(ema and shadow is not None), note)
    return model.to(device).eval(), cfg, info
