"""Configs: frozen dataclasses, one translator from the original NCSN / NCSNv2 config.yml files.

The original repositories (ermongroup/ncsn, ermongroup/ncsnv2) describe a run with a nested YAML
file (`data`, `model`, `training`, `sampling`, `optim`). The file saved beside a checkpoint is
written by `yaml.dump(argparse.Namespace)` and so carries `!!python/object` tags; it is read here
with a safe loader that turns those tags into plain mappings and never constructs an object.
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch
import yaml

from .errors import ConfigError

FAMILIES = ("ncsn", "ncsnv2")
# What a config's numbers may be: anything outside is a broken or crafted file, refused before it allocates.
TINY = 1e-12
LIMITS = {
    "data.image_size": (1, 4096), "data.channels": (1, 4), "model.ngf": (1, 4096), "model.num_classes": (1, 100_000),
    "model.sigma_begin": (TINY, 1e6), "model.sigma_end": (TINY, 1e6), "model.ema_rate": (0.0, 1.0),
    "sampling.n_steps_each": (1, 1_000_000), "sampling.step_lr": (TINY, 1e6), "sampling.batch_size": (1, 1 << 20),
    "training.batch_size": (1, 1 << 20), "training.n_iters": (0, 1 << 40), "training.snapshot_freq": (1, 1 << 40),
    "optim.lr": (0.0, 1e3),
}
ARCHITECTURES = ("CondRefineNetDilated", "NCSNv2", "NCSNv2Deeper", "NCSNv2Deepest")


@dataclass(frozen=True)
class DataConfig:
    dataset: str = "CIFAR10"  # only used to pick the NCSNv2 class, as the original does
    image_size: int = 32  # height = width of the images, in pixels
    channels: int = 3  # 1 for MNIST, 3 for RGB
    logit_transform: bool = False  # model input is logit(x) instead of 2x - 1
    rescaled: bool = False  # data already in [-1, 1] (NCSNv2 only): no 2x - 1 inside the model
    uniform_dequantization: bool = False  # training: x = x/256*255 + U/256 (always on in NCSN v1)
    gaussian_dequantization: bool = False  # training: x += 0.01 N (NCSNv2 only)
    random_flip: bool = True  # training: horizontal flips


@dataclass(frozen=True)
class ModelConfig:
    ngf: int = 128  # base number of feature maps F
    num_classes: int = 10  # number of noise levels L
    sigma_begin: float = 1.0  # largest sigma, sigma_1
    sigma_end: float = 0.01  # smallest sigma, sigma_L
    sigma_dist: str = "geometric"  # 'geometric' or 'uniform' spacing of the ladder
    ema: bool = False  # the checkpoint carries EMA weights (NCSNv2)
    ema_rate: float = 0.999  # EMA decay used while training
    normalization: str = "InstanceNorm++"  # the only normalisation the published configs use
    nonlinearity: str = "elu"  # the only activation the published configs use


@dataclass(frozen=True)
class SamplingConfig:
    n_steps_each: int = 100  # Langevin steps T per noise level
    step_lr: float = 2e-5  # epsilon: alpha_i = step_lr * (sigma_i / sigma_L)^2
    denoise: bool = False  # final x <- x + sigma_L^2 s(x, sigma_L) (NCSNv2)
    batch_size: int = 100  # batch size the original sampler used
    data_init: bool = False  # start from data + sigma_1 z instead of U(0, 1)


@dataclass(frozen=True)
class TrainingConfig:
    batch_size: int = 128
    n_iters: int = 300001
    anneal_power: float = 2.0  # loss weight sigma^anneal_power
    snapshot_freq: int = 5000


@dataclass(frozen=True)
class OptimConfig:
    optimizer: str = "Adam"
    lr: float = 1e-4
    beta1: float = 0.9
    eps: float = 1e-8
    amsgrad: bool = False
    weight_decay: float = 0.0


@dataclass(frozen=True)
class Config:
    family: str  # 'ncsn' (v1, NeurIPS 2019) or 'ncsnv2' (NeurIPS 2020)
    arch: str  # network class, one of ARCHITECTURES
    data: DataConfig = DataConfig()
    model: ModelConfig = ModelConfig()
    sampling: SamplingConfig = SamplingConfig()
    training: TrainingConfig = TrainingConfig()
    optim: OptimConfig = OptimConfig()
    # The YAML as it was read (nested dict), so that it can be written back beside our outputs.
    source: Mapping[str, Any] | None = field(default=None, compare=False, repr=False)

    def __post_init__(self):
        if self.family not in FAMILIES:
            raise ConfigError(f"family must be one of {FAMILIES}, got {self.family!r}")
        if self.arch not in ARCHITECTURES:
            raise ConfigError(f"arch must be one of {ARCHITECTURES}, got {self.arch!r}")
        if (self.family == "ncsn") != (self.arch == "CondRefineNetDilated"):
            raise ConfigError(f"arch {self.arch} does not belong to family {self.family}")
        m = self.model
        for name, (lo, hi) in LIMITS.items():
            section, key = name.split(".")
            value = getattr(getattr(self, section), key)
            if isinstance(value, float):
                if not (math.isfinite(value) and lo <= value <= hi):
                    raise ConfigError(f"{name} must be a finite number in [{lo:g}, {hi:g}], got {value!r}")
            elif not lo <= value <= hi:
                raise ConfigError(f"{name} must be an integer in [{lo}, {hi}], got {value!r}")
        if m.sigma_dist not in ("geometric", "uniform"):
            raise ConfigError(f"model.sigma_dist must be 'geometric' or 'uniform', got {m.sigma_dist!r}")

    @property
    def image_shape(self) -> tuple[int, int, int]:
        return (self.data.channels, self.data.image_size, self.data.image_size)

    def sigmas(self, dtype: torch.dtype = torch.float64) -> torch.Tensor:
        """The noise ladder sigma_1 > ... > sigma_L, computed in float64 as the originals do."""
        return sigma_ladder(self.model.sigma_begin, self.model.sigma_end, self.model.num_classes,
                            self.model.sigma_dist, dtype)

    def sampling_sigmas(self) -> torch.Tensor:
        """The ladder the original sampler iterates over: float64 in NCSN v1, float32 in NCSNv2."""
        return self.sigmas(torch.float64 if self.family == "ncsn" else torch.float32)

    def replace(self, **sections) -> Config:
        return dataclasses.replace(self, **sections)

    def to_dict(self) -> dict:
        """A nested dict in the original YAML layout (plus `family`/`arch`), safe to yaml.dump."""
        out = {"family": self.family, "arch": self.arch}
        for name in ("data", "model", "sampling", "training", "optim"):
            out[name] = dataclasses.asdict(getattr(self, name))
        return out


def sigma_ladder(sigma_begin: float, sigma_end: float, num_classes: int, dist: str = "geometric",
                 dtype: torch.dtype = torch.float64) -> torch.Tensor:
    """sigma_i = exp(linspace(log sigma_begin, log sigma_end, L)) (or linspace for 'uniform')."""
    if dist == "geometric":
        s = np.exp(np.linspace(np.log(sigma_begin), np.log(sigma_end), num_classes))
    elif dist == "uniform":
        s = np.linspace(sigma_begin, sigma_end, num_classes)
    else:
        raise ConfigError(f"unknown sigma distribution {dist!r}")
    return torch.tensor(s, dtype=torch.float64).to(dtype)


# ---------------------------------------------------------------------------------------------
# Reading the original YAML safely.


class _SafeTaggedLoader(yaml.SafeLoader):
    """SafeLoader that reads `!!python/...` tags as plain data instead of refusing or running them."""


def _construct_python_tag(loader: yaml.SafeLoader, tag_suffix: str, node: yaml.Node):
    if isinstance(node, yaml.MappingNode):
        return loader.construct_mapping(node, deep=True)
    if isinstance(node, yaml.SequenceNode):
        values = loader.construct_sequence(node, deep=True)
        # `torch.device('cuda')` is dumped as !!python/object/apply:torch.device [cuda]
        return values[0] if tag_suffix.endswith("torch.device") and len(values) == 1 else values
    return loader.construct_scalar(node)


_SafeTaggedLoader.add_multi_constructor("tag:yaml.org,2002:python/", _construct_python_tag)


def read_yaml(path: str | Path) -> dict:
    path = Path(path)
    if not path.is_file():
        raise ConfigError(f"config file not found: {path}")
    try:
        data = yaml.load(path.read_text(), Loader=_SafeTaggedLoader)
    except yaml.YAMLError as e:
        raise ConfigError(f"{path} is not valid YAML: {e}".splitlines()[0]) from None
    if not isinstance(data, dict):
        raise ConfigError(f"{path} does not hold a YAML mapping")
    # An argparse.Namespace dumped with its state wraps the fields in a `state` key on some versions.
    if set(data) == {"state"} and isinstance(data["state"], dict):
        data = data["state"]
    return data


def _section(cls, raw: Mapping[str, Any] | None, defaults: dict | None = None):
    """Build dataclass `cls` from a mapping, ignoring keys it does not know, casting known ones."""
    values = dict(defaults or {})
    for f in dataclasses.fields(cls):
        if raw is not None and f.name in raw and raw[f.name] is not None:
            values[f.name] = raw[f.name]
    for f in dataclasses.fields(cls):
        if f.name in values:
            typ = type(getattr(cls(), f.name))
            try:
                values[f.name] = typ(values[f.name]) if typ is not bool else _as_bool(values[f.name])
            except (TypeError, ValueError, OverflowError):
                raise ConfigError(f"{cls.__name__[:-6].lower()}.{f.name}: cannot read "
                                  f"{values[f.name]!r} as {typ.__name__}") from None
    return cls(**values)


def _as_bool(v) -> bool:
    if isinstance(v, str):
        if v.lower() in ("true", "yes", "1"):
            return True
        if v.lower() in ("false", "no", "0"):
            return False
        raise ValueError(v)
    return bool(v)


def detect_family(raw: Mapping[str, Any]) -> str:
    """NCSNv2 configs name their normalisation and sigma spacing; NCSN v1 configs name neither."""
    if "family" in raw:
        return raw["family"]
    model = raw.get("model") or {}
    if "sigma_dist" in model or "normalization" in model or "sampling" in raw:
        return "ncsnv2"
    return "ncsn"


def ncsnv2_arch_for(dataset: str) -> str:
    """The class the NCSNv2 runner picks from data.dataset (runners/ncsn_runner.py:get_model)."""
    if dataset == "FFHQ":
        return "NCSNv2Deepest"
    if dataset == "LSUN":
        return "NCSNv2Deeper"
    return "NCSNv2"


# NCSN v1 configs carry no sampling section: its test() hard-codes 100 steps per level, step_lr 2e-5.
NCSN_V1_SAMPLING = dict(n_steps_each=100, step_lr=2e-5, denoise=False, batch_size=100)


def config_from_dict(raw: Mapping[str, Any]) -> Config:
    """Translate an original (or our own) config mapping into a Config."""
    if not isinstance(raw, Mapping):
        raise ConfigError("config must be a mapping")
    for section in ("data", "model"):
        if not isinstance(raw.get(section), Mapping):
            raise ConfigError(f"config has no '{section}' section: is this an NCSN/NCSNv2 config.yml?")
    family = detect_family(raw)
    if family not in FAMILIES:
        raise ConfigError(f"unknown family {family!r}")
    data = _section(DataConfig, raw["data"])
    if family == "ncsn":
        # v1 always dequantises uniformly while training and has neither `rescaled` nor EMA.
        data = dataclasses.replace(data, uniform_dequantization=True, rescaled=False)
    model_raw = dict(raw["model"])
    for key in ("ngf", "num_classes", "sigma_begin", "sigma_end"):
        if key not in model_raw:
            raise ConfigError(f"config is missing model.{key}")
    model = _section(ModelConfig, model_raw)
    if family == "ncsn":
        model = dataclasses.replace(model, ema=False)
    sampling_defaults = NCSN_V1_SAMPLING if family == "ncsn" else {"denoise": True}
    sampling = _section(SamplingConfig, raw.get("sampling"), sampling_defaults)
    training = _section(TrainingConfig, raw.get("training"))
    optim = _section(OptimConfig, raw.get("optim"))
    arch = raw.get("arch") or ("CondRefineNetDilated" if family == "ncsn" else ncsnv2_arch_for(data.dataset))
    return Config(family=family, arch=arch, data=data, model=model, sampling=sampling,
                  training=training, optim=optim, source=dict(raw))


def load_config(path: str | Path) -> Config:
    """Read an original NCSN / NCSNv2 config.yml (or one we wrote) into a Config."""
    try:
        return config_from_dict(read_yaml(path))
    except ConfigError as e:
        raise ConfigError(f"{path}: {e}") from None


# ---------------------------------------------------------------------------------------------
# NCSN++ of the score-SDE code: its resolved config (configs/ve/<name>.py evaluated, as JSON).


class ScoreSdeConfig(dict):
    """The resolved config of a score-SDE NCSN++ (that code's nested dict), seen also through the few attributes the
    commands read from ours: the image shape, the data range (centered: [-1, 1], else [0, 1]), the sampling
    settings with defaults, and to_dict(). The score-SDE configs are Python files, never executed here: a
    published one is given by name (shipped as JSON), any other as a JSON file of the resolved config."""

    family, arch = "ncsnpp", "NCSNpp"

    def __init__(self, raw: Mapping[str, Any]):
        super().__init__(raw.get("config", raw))  # the fixtures wrap it with the source's name and the changes
        if not isinstance(self.get("model"), Mapping) or not isinstance(self.get("data"), Mapping):
            raise ConfigError("an NCSN++ config needs its model and data sections")
        _check_ncsnpp_numbers(self)
        d = self["data"]
        self.image_shape = (d["num_channels"], d["image_size"], d["image_size"])
        self.data = _namespace(logit_transform=False, rescaled=bool(d.get("centered", False)),
                               channels=d["num_channels"], image_size=d["image_size"],
                               random_flip=bool(d.get("random_flip", False)))
        training = self.get("training", {})
        self.training = _namespace(batch_size=training.get("batch_size", 128), n_iters=training.get("n_iters", 1),
                                   snapshot_freq=training.get("snapshot_freq", 10_000))
        sampling = self.get("sampling", {})
        self.sampling = _namespace(**{"batch_size": 64, "n_steps_each": 1, "step_lr": None,
                                      "denoise": sampling.get("noise_removal", True),
                                      **{k: v for k, v in sampling.items() if k != "batch_size"}})

    @property
    def raw(self) -> dict:
        return self.to_dict()

    def to_dict(self) -> dict:
        """A plain nested dict (as JSON holds it)."""
        import json
        return json.loads(json.dumps(self))


NCSNPP_LIMITS = {  # as LIMITS, for the numbers of a score-SDE config
    ("data", "image_size"): (1, 4096), ("data", "num_channels"): (1, 4), ("model", "nf"): (1, 4096),
    ("model", "num_scales"): (1, 100_000), ("model", "num_res_blocks"): (0, 64),
    ("model", "sigma_max"): (TINY, 1e6), ("model", "sigma_min"): (TINY, 1e6),
}


NCSNPP_OPTIONAL_LIMITS = {  # checked where present (a config for sampling need not say how it was trained)
    ("training", "batch_size"): (1, 1 << 20), ("training", "n_iters"): (0, 1 << 40),
    ("training", "snapshot_freq"): (1, 1 << 40), ("optim", "lr"): (0.0, 1e3), ("optim", "warmup"): (0, 1 << 40),
}


def _check_ncsnpp_numbers(cfg: Mapping) -> None:
    optional = {k: v for k, v in NCSNPP_OPTIONAL_LIMITS.items()
                if isinstance(cfg.get(k[0]), Mapping) and k[1] in cfg[k[0]]}
    for (section, key), (lo, hi) in {**NCSNPP_LIMITS, **optional}.items():
        value = cfg[section].get(key)
        kind = float if isinstance(lo, float) else int
        ok = isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value) and \
            lo <= value <= hi and (kind is float or value == int(value))
        if not ok:
            raise ConfigError(f"{section}.{key} must be {'a finite number' if kind is float else 'an integer'} in "
                              f"[{lo:g}, {hi:g}], got {value!r}")
    ch_mult = cfg["model"].get("ch_mult", ())
    if not (isinstance(ch_mult, (list, tuple)) and 1 <= len(ch_mult) <= 12 and
            all(isinstance(c, int) and 1 <= c <= 64 for c in ch_mult)):
        raise ConfigError(f"model.ch_mult must be 1 to 12 integers in [1, 64], got {ch_mult!r}")


def _namespace(**kw):
    from types import SimpleNamespace
    return SimpleNamespace(**kw)


def published_ncsnpp_configs() -> dict[str, dict]:
    """The ten published VE NCSN++ configs of the score-SDE code, resolved, by name (configs/ve/<name>.py)."""
    import json
    from importlib import resources
    with (resources.files("ncsn_fast") / "assets" / "ncsnpp_configs.json").open("rb") as f:
        return json.load(f)


def load_ncsnpp_config(config) -> tuple[ScoreSdeConfig, str]:
    """(the config, where it came from) from a dict, a JSON file or a published config's name."""
    import json
    if isinstance(config, Mapping):
        raw, source = config, "given"
    elif isinstance(config, (str, Path)) and Path(config).suffix == ".json":
        try:
            raw, source = json.loads(Path(config).read_text()), str(config)
        except (OSError, ValueError, RecursionError) as e:
            raise ConfigError(f"cannot read the config {config}: {e}") from None
    elif isinstance(config, str) and config in published_ncsnpp_configs():
        raw, source = published_ncsnpp_configs()[config], f"published config {config}"
    else:
        names = ", ".join(published_ncsnpp_configs())
        raise ConfigError(f"an NCSN++ checkpoint needs its config: a published name ({names}) or a JSON file of "
                          f"the resolved config; got {config!r}")
    try:
        return ScoreSdeConfig(raw), source
    except (ConfigError, KeyError, TypeError, ValueError) as e:
        raise ConfigError(f"the config from {source} is not an NCSN++ config ({e})") from None
