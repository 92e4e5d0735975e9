"""ncsn_fast.accelerate: the fast path for a score network already in memory, built from the original classes
(ermongroup/ncsn CondRefineNetDilated, ermongroup/ncsnv2 NCSNv2 / NCSNv2Deeper / NCSNv2Deepest), local
changes included.

The network is copied and changed in place of its parts, never rebuilt, so its own forward (with whatever
was changed in it) still runs:
- instance norm++ modules (InstanceNorm2dPlus, ConditionalInstanceNorm2dPlus) become ours, holding the same
  Parameter objects, and run the fused op;
- its nn.Conv2d modules become ours (the same objects: only their class changes), whose 3x3 stride-1 convolutions
  run the conv3x3 op (Winograd on the CPU), the residual blocks' and RCUs' adds in the same pass;
- the RefineNets' 5x5 stride-1 pooling (nn.MaxPool2d / nn.AvgPool2d in the CRP blocks) becomes the fused
  pool5x5 op;
- residual blocks and conditional RCU blocks whose forward is the original's (norm -> act -> conv pairs)
  run the pair as one fused norm + ELU; the MSF blocks keep their sum in the inputs' dtype and memory format
  (the original's float32 NCHW zeros would undo a bfloat16 or channels_last forward).
An NCSN++ of the score-SDE code (its NCSNpp class, VE) is instead rebuilt as ours from its own config and
state_dict (the same names in the same order: the fixtures check this layout for every published config), so
its group norms, SiLUs, attention and resampling run fused too.
Modules it does not know are kept as they are and listed (`report=True`, or a warning), never dropped. The
result wraps the network as one of ours: model(x, y) is its output, model(x, y, raw=True) NCSNv2's output
before the division by sigma, and `config` our Config (from the network's own config), so that
ncsn_fast.sample, every sampler, CUDA graphs and bfloat16 take it. Fused ops run without autograd only.
"""

from __future__ import annotations

import copy
import types
import warnings
from dataclasses import dataclass, field

import torch
from torch import nn

from .config import Config, config_from_dict
from .models.conv import adopt_convs, conv_add
from .models.layers import _Fusable
from .models.norms import ConditionalInstanceNorm2dPlus, InstanceNorm2dPlus, set_backend
from .ops.pool import pool5x5, pool5x5_ref

TOP = {"CondRefineNetDilated": "ncsn", "NCSNv2": "ncsnv2", "NCSNv2Deeper": "ncsnv2", "NCSNv2Deepest": "ncsnv2"}
# Modules of the original networks that need nothing (plain layers, containers, the blocks whose parts are
# swapped or patched); anything else is reported as kept.
PASSIVE = {"Conv2d", "ELU", "ReLU", "ModuleList", "Sequential", "ZeroPad2d", "InstanceNorm2d", "Embedding",
           "ConvMeanPool", "MeanPoolConv", "UpsampleConv", "PixelShuffle", "RCUBlock", "CRPBlock", "MSFBlock",
           "RefineBlock", "CondCRPBlock", "CondMSFBlock", "CondRefineBlock", *TOP}


@dataclass
class Report:
    """What accelerate() did to each part of the network."""
    norms: list[str] = field(default_factory=list)  # instance norm++ modules now fused
    pools: list[str] = field(default_factory=list)  # 5x5 pooling now the pool5x5 op
    pairs: list[str] = field(default_factory=list)  # blocks run with a fused forward (norm -> ELU pairs, MSF sums)
    convs: int = 0  # nn.Conv2d modules now ours (models/conv.py)
    kept: list[tuple[str, str]] = field(default_factory=list)  # (name, class) of modules left as they were

    def __str__(self) -> str:
        lines = [f"fused instance norm++: {len(self.norms)}; fused 5x5 pooling: {len(self.pools)}; blocks run "
                 f"with a fused forward: {len(self.pairs)}; convolutions: {self.convs}"]
        lines += [f"kept as it is: {name} ({cls})" for name, cls in self.kept]
        return "\n".join(lines)


class Pool5x5(_Fusable):
    """The CRP blocks' 5x5 stride-1 pad-2 pooling as the fused op ('max', or 'avg' counting the padding)."""

    def __init__(self, mode: str):
        super().__init__()
        self.mode = mode

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self._fused() and not (x.device.type == "cpu" and not x.is_contiguous() and self.mode == "avg"):
            return pool5x5(x, self.mode, backend=self.backend)
        return pool5x5_ref(x, self.mode)


class Accelerated(nn.Module):
    """An original network with fused parts (see the module docstring), called as one of ours."""

    def __init__(self, net: nn.Module, config: Config, family: str):
        super().__init__()
        self.net, self.config, self.family = net, config, family
        self.conditional = family == "ncsn"
        if not self.conditional and not hasattr(net, "sigmas"):
            raise ValueError("an NCSNv2 network needs its `sigmas` buffer")

    def forward(self, x: torch.Tensor, y: torch.Tensor, raw: bool = False) -> torch.Tensor:
        out = self.net(x, y)
        if raw and not self.conditional:  # undo the division by sigma_y (one rounding of float32)
            return out * self.net.sigmas[y].to(out.dtype).view(-1, *([1] * (out.dim() - 1)))
        return out

    def score_scales(self) -> torch.Tensor:
        if self.conditional:
            return torch.ones(self.config.model.num_classes)
        return 1.0 / self.net.sigmas.detach().float().cpu()


def _as_dict(obj):
    """The original configs are nested namespaces: as plain dicts."""
    if isinstance(obj, dict):
        return {k: _as_dict(v) for k, v in obj.items()}
    if hasattr(obj, "__dict__") and not isinstance(obj, type):
        return {k: _as_dict(v) for k, v in vars(obj).items()}
    return obj


def _norm_of(module: nn.Module) -> nn.Module | None:
    """Our fused norm holding `module`'s parameters, if it is an instance norm++ of the original code."""
    name = type(module).__name__
    if name == "InstanceNorm2dPlus" and all(hasattr(module, a) for a in ("alpha", "gamma", "beta")):
        if getattr(module, "bias", True) is False:
            return None
        ours = InstanceNorm2dPlus.__new__(InstanceNorm2dPlus)
        nn.Module.__init__(ours)
        ours.num_features = module.alpha.shape[0]
        ours.alpha, ours.gamma, ours.beta = module.alpha, module.gamma, module.beta
        return ours
    if name == "ConditionalInstanceNorm2dPlus" and hasattr(module, "embed") and getattr(module, "bias", True):
        ours = ConditionalInstanceNorm2dPlus.__new__(ConditionalInstanceNorm2dPlus)
        nn.Module.__init__(ours)
        ours.num_features = module.embed.weight.shape[1] // 3
        ours.embed = module.embed
        return ours
    return None


def _pool_of(module: nn.Module) -> nn.Module | None:
    def is5(v):
        return v in (5, (5, 5))

    def is1(v):
        return v in (1, (1, 1))

    def is2(v):
        return v in (2, (2, 2))
    if isinstance(module, nn.MaxPool2d) and is5(module.kernel_size) and is1(module.stride) and is2(module.padding) \
            and module.dilation in (1, (1, 1)) and not module.ceil_mode and not module.return_indices:
        return Pool5x5("max")
    if isinstance(module, nn.AvgPool2d) and is5(module.kernel_size) and is1(module.stride) and is2(module.padding) \
            and module.count_include_pad and not module.ceil_mode and module.divisor_override is None:
        return Pool5x5("avg")
    return None


def _residual_forward(self, x, y=None):
    """The original residual block's forward with its norm -> act pairs fused (both families)."""
    out = self.conv1(self.normalize1.forward_act(x, y, self.non_linearity))
    shortcut = x if (self.output_dim == self.input_dim and self.resample is None) else self.shortcut(x)
    return conv_add(self.conv2, self.normalize2.forward_act(out, y, self.non_linearity), shortcut)


def _cond_rcu_forward(self, x, y):
    """The original conditional RCU block's forward with its norm -> act pairs fused."""
    for i in range(self.n_blocks):
        residual = x
        for j in range(self.n_stages):
            x = getattr(self, f"{i + 1}_{j + 1}_norm").forward_act(x, y, self.act)
            conv = getattr(self, f"{i + 1}_{j + 1}_conv")
            x = conv(x) if j + 1 < self.n_stages else conv_add(conv, x, residual)
    return x


def _msf_forward(self, xs, *args):
    """The original MSF block's forward (y, shape for NCSN v1; shape for NCSNv2), with its running sum made in
    the inputs' dtype and memory format: the original's float32 NCHW zeros would turn a bfloat16 or
    channels_last forward back into float32 NCHW (same values in float32)."""
    y, shape = (args[0], args[1]) if len(args) == 2 else (None, args[0])
    fmt = (torch.channels_last if xs[0].dim() == 4 and not xs[0].is_contiguous()
           and xs[0].is_contiguous(memory_format=torch.channels_last) else torch.contiguous_format)
    sums = torch.empty(xs[0].shape[0], self.features, *shape, device=xs[0].device, dtype=xs[0].dtype,
                       memory_format=fmt).zero_()
    for i in range(len(self.convs)):
        h = self.norms[i](xs[i], y) if y is not None else xs[i]
        sums = sums + torch.nn.functional.interpolate(self.convs[i](h), size=shape, mode="bilinear",
                                                      align_corners=True)
    return sums


def _patch_pairs(module: nn.Module) -> bool:
    """Give a residual or conditional RCU block of the original code a forward with fused pairs, when its parts
    are all there and its norms are ours now."""
    name = type(module).__name__
    if name in ("ResidualBlock", "ConditionalResidualBlock"):
        needed = ("conv1", "conv2", "normalize1", "normalize2", "non_linearity", "input_dim", "output_dim", "resample")
        if all(hasattr(module, a) for a in needed) and all(
                isinstance(getattr(module, n), (InstanceNorm2dPlus, ConditionalInstanceNorm2dPlus))
                for n in ("normalize1", "normalize2")):
            module.forward = types.MethodType(_residual_forward, module)
            return True
    if (name == "MSFBlock" and all(hasattr(module, a) for a in ("convs", "features"))) or \
            (name == "CondMSFBlock" and all(hasattr(module, a) for a in ("convs", "norms", "features"))):
        module.forward = types.MethodType(_msf_forward, module)
        return True
    if name == "CondRCUBlock" and all(hasattr(module, a) for a in ("n_blocks", "n_stages", "act")):
        norms = [getattr(module, f"{i + 1}_{j + 1}_norm", None) for i in range(module.n_blocks)
                 for j in range(module.n_stages)]
        if all(isinstance(n, ConditionalInstanceNorm2dPlus) for n in norms):
            module.forward = types.MethodType(_cond_rcu_forward, module)
            return True
    return False


def _config_of(net: nn.Module, family: str) -> Config:
    raw = _as_dict(getattr(net, "config", None))
    if not isinstance(raw, dict) or "model" not in raw or "data" not in raw:
        raise ValueError(f"{type(net).__name__} has no `config` with data and model sections (the original "
                         f"classes keep the config they were built from)")
    raw = {**raw, "family": family, "arch": type(net).__name__}
    return config_from_dict(raw)


def accelerate(module: nn.Module, *, report: bool = False, backend: str = "auto", inplace: bool = False,
               scheduler=None):
    """A copy of `module` (an original NCSN / NCSNv2 network) with fused parts, wrapped as one of ours, or an
    NCSN++ of the score-SDE code or a diffusers NCSN++ `UNet2DModel` rebuilt as ours (for the latter, `scheduler`:
    its ScoreSdeVeScheduler or that scheduler's config, for the noise scales; default diffusers' defaults); with
    report=True also the Report of what was fused and what was kept. ValueError if it is not such a network."""
    if not isinstance(module, nn.Module):
        raise TypeError(f"accelerate takes an nn.Module, got {type(module).__name__}")
    if type(module).__name__ == "NCSNpp" and hasattr(module, "all_modules"):
        return _ncsnpp_of(module, report, backend)
    if type(module).__name__ == "UNet2DModel":
        return _ncsnpp_of(module, report, backend, scheduler)
    family = TOP.get(type(module).__name__)
    if family is None:
        family = next((TOP[type(m).__name__] for m in module.modules() if type(m).__name__ in TOP), None)
        raise ValueError(f"{type(module).__name__} is not a score network of the original NCSN / NCSNv2 code "
                         f"(expected one of {', '.join(TOP)})" + (" (it holds one: pass that)" if family else ""))
    config = _config_of(module, family)
    net = module if inplace else copy.deepcopy(module)
    rep = Report()
    for name, child in list(net.named_modules()):
        for attr, sub in list(child.named_children()):
            full = f"{name}.{attr}" if name else attr
            norm = _norm_of(sub)
            pool = None if norm is not None else _pool_of(sub)
            if norm is not None:
                setattr(child, attr, norm)
                rep.norms.append(full)
            elif pool is not None:
                setattr(child, attr, pool)
                rep.pools.append(full)
    for name, child in net.named_modules():
        if _patch_pairs(child):
            rep.pairs.append(name)
        elif not isinstance(child, (InstanceNorm2dPlus, ConditionalInstanceNorm2dPlus, Pool5x5)) and \
                type(child).__name__ not in PASSIVE | {"ResidualBlock", "ConditionalResidualBlock", "CondRCUBlock"}:
            rep.kept.append((name, type(child).__name__))
    rep.convs = adopt_convs(net)
    out = Accelerated(net, config, family)
    set_backend(out, backend)
    if rep.kept and not report:
        warnings.warn("accelerate kept these modules as they are (not recognised): " +
                      ", ".join(f"{n} ({c})" for n, c in rep.kept), stacklevel=2)
    return (out, rep) if report else out


def _ncsnpp_of(module: nn.Module, report: bool, backend: str, scheduler=None):
    """Our NCSNpp from a score-SDE NCSNpp (its config, an ml_collections ConfigDict or nested dicts / namespaces)
    or a diffusers UNet2DModel (its config, mapped as a diffusers folder's), and its state_dict, loaded strictly;
    on the module's device, in eval mode."""
    from .models.ncsnpp import NCSNpp
    if type(module).__name__ == "UNet2DModel":
        from .checkpoints.diffusers import SCHEDULER_DEFAULTS, map_state, score_sde_config
        from .errors import CheckpointError
        from .models.ncsnpp import ve_sigmas
        sched = getattr(scheduler, "config", scheduler) or {}
        try:
            raw = score_sde_config(dict(module.config), {**SCHEDULER_DEFAULTS, **dict(sched)})
            state = map_state(module.state_dict(), dict(module.config))
        except CheckpointError as e:
            raise ValueError(str(e)) from None
        state["sigmas"] = ve_sigmas(raw)
    else:
        raw = getattr(module, "config", None)
        raw = raw.to_dict() if hasattr(raw, "to_dict") else _as_dict(raw)
        if not isinstance(raw, dict) or "model" not in raw or "data" not in raw:
            raise ValueError("an NCSN++ needs its `config` with data and model sections (the score-SDE class keeps "
                             "the config it was built from)")
        state = module.state_dict()
    with torch.device("meta"):
        ours = NCSNpp(raw)
    try:
        ours.load_state_dict(state, strict=True, assign=True)
    except RuntimeError as e:
        raise ValueError(f"this NCSN++ does not match the layout its config gives: {str(e).splitlines()[0]}") from None
    ours = copy.deepcopy(ours).eval()  # its own tensors: the module's stay the module's
    set_backend(ours, backend)
    rep = Report(pairs=[f"{type(m).__name__} {n}" for n, m in ours.named_modules() if hasattr(m, "norm_act")])
    return (ours, rep) if report else ours
