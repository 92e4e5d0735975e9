"""NCSN v1 (CondRefineNetDilated) and NCSNv2 (NCSNv2, NCSNv2Deeper, NCSNv2Deepest).

All four are one network shape described by a table: an encoder of residual stages, then a
RefineNet decoder that walks the stages back from the deepest, each refine block fusing a stage
with the previous refine output. What differs (from ermongroup/ncsn and ermongroup/ncsnv2):
- NCSN v1: conditional instance norm++ everywhere (label y picks gamma/alpha/beta), average
  pooling in CRP, norms inside the refine blocks, output is the score.
- NCSNv2: unconditional instance norm++ in the encoder and the head only, max pooling, no norms in
  the refine blocks, output divided by sigma_y (a float32 buffer `sigmas`).
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import nn

from ..config import Config
from .layers import RefineBlock, ResidualBlock
from .norms import ConditionalInstanceNorm2dPlus, InstanceNorm2dPlus


@dataclass(frozen=True)
class Stage:
    name: str  # attribute name of the nn.ModuleList of two residual blocks
    mult: int  # output channels = mult * ngf
    resample: str | None  # 'down' for the first block, or None
    dilation: int | None  # dilation of both blocks; a dilated 'down' block keeps the resolution


@dataclass(frozen=True)
class Refine:
    name: str  # attribute name of the RefineBlock
    mult: int  # output channels = mult * ngf


# Encoder stages in forward order; refine blocks in forward order, the first fusing the deepest
# stage alone. `register` gives the order the original __init__ creates them (key order).
_BASE = (Stage("res1", 1, None, None), Stage("res2", 2, "down", None),
         Stage("res3", 2, "down", 2), Stage("res4", 2, "down", 4))
_DEEPER = (Stage("res1", 1, None, None), Stage("res2", 2, "down", None),
           Stage("res3", 2, "down", None), Stage("res4", 4, "down", 2), Stage("res5", 4, "down", 4))
_DEEPEST = _DEEPER[:3] + (Stage("res31", 2, "down", None),) + _DEEPER[3:]

SPECS = {
    "CondRefineNetDilated": (_BASE, (Refine("refine1", 2), Refine("refine2", 2),
                                     Refine("refine3", 1), Refine("refine4", 1)), None),
    "NCSNv2": (_BASE, (Refine("refine1", 2), Refine("refine2", 2), Refine("refine3", 1),
                       Refine("refine4", 1)), None),
    "NCSNv2Deeper": (_DEEPER, (Refine("refine1", 4), Refine("refine2", 2), Refine("refine3", 2),
                               Refine("refine4", 1), Refine("refine5", 1)), None),
    "NCSNv2Deepest": (_DEEPEST, (Refine("refine1", 4), Refine("refine2", 2), Refine("refine31", 2),
                                 Refine("refine3", 2), Refine("refine4", 1), Refine("refine5", 1)),
                      ("refine1", "refine2", "refine3", "refine31", "refine4", "refine5")),
}


class RefineNetScore(nn.Module):
    """The score network s(x, y) of either family; use the named subclasses below."""

    arch: str = ""

    def __init__(self, config: Config):
        super().__init__()
        stages, refines, register = SPECS[self.arch]
        self.config = config
        self.conditional = config.family == "ncsn"
        ngf, num_classes, channels = config.model.ngf, config.model.num_classes, config.data.channels
        norm = ConditionalInstanceNorm2dPlus if self.conditional else InstanceNorm2dPlus
        self.act = act = nn.ELU()
        self.stage_names = tuple(s.name for s in stages)
        self.refine_names = tuple(r.name for r in refines)
        # The input transform 2x - 1 unless the data are already logits or rescaled to [-1, 1].
        self.scale_input = not (config.data.logit_transform or (config.data.rescaled and not self.conditional))

        if not self.conditional:
            self.register_buffer("sigmas", config.sigmas(torch.float32))
        self.begin_conv = nn.Conv2d(channels, ngf, 3, stride=1, padding=1)
        self.normalizer = norm(ngf, num_classes)
        self.end_conv = nn.Conv2d(ngf, channels, 3, stride=1, padding=1)

        cin, stage_channels = ngf, []
        for s in stages:
            cout = s.mult * ngf
            setattr(self, s.name, nn.ModuleList([
                ResidualBlock(cin, cout, num_classes, norm, act, s.resample, s.dilation),
                ResidualBlock(cout, cout, num_classes, norm, act, None, s.dilation)]))
            stage_channels.append(cout)
            cin = cout

        refine_norm = norm if self.conditional else None
        pool = "avg" if self.conditional else "max"
        blocks, prev = {}, None
        for i, (r, c) in enumerate(zip(refines, reversed(stage_channels))):
            in_planes = [c] if prev is None else [c, prev]
            blocks[r.name] = RefineBlock(in_planes, r.mult * ngf, num_classes, refine_norm, act, pool,
                                         start=i == 0, end=i == len(refines) - 1)
            prev = r.mult * ngf
        for name in register or self.refine_names:
            setattr(self, name, blocks[name])

    def forward(self, x: torch.Tensor, y: torch.Tensor, raw: bool = False) -> torch.Tensor:
        """Score at noise-level labels y (LongTensor of shape (N,), 0 = largest sigma).

        raw=True: NCSNv2's output before the division by sigma_y (score = raw / sigma_y), so that a
        sampler can fold 1/sigma into its update; NCSN v1's output is the score either way.
        """
        h = 2 * x - 1.0 if self.scale_input else x
        y_norm = y if self.conditional else None
        h = self.begin_conv(h)
        layers = []
        for name in self.stage_names:
            for block in getattr(self, name):
                h = block(h, y_norm)
            layers.append(h)
        ref = None
        for name, layer in zip(self.refine_names, reversed(layers)):
            xs = [layer] if ref is None else [layer, ref]
            ref = getattr(self, name)(xs, y_norm, layer.shape[2:])
        out = self.end_conv(self.normalizer.forward_act(ref, y_norm, self.act))
        if self.conditional or raw:
            return out
        used_sigmas = self.sigmas[y].view(x.shape[0], *([1] * len(x.shape[1:])))
        return out / used_sigmas

    def keep_dtype(self) -> tuple[str, ...]:
        """Tensors that keep their dtype when the fast path casts the network to 16 bits: the float32 noise scales
        (NCSNv2), whose reciprocals are the score scales the samplers apply to the raw output."""
        return () if self.conditional else ("sigmas",)

    def score_scales(self) -> torch.Tensor:
        """Per level, the factor c with score = c * raw output: 1/sigma (float32) for NCSNv2, 1 for NCSN."""
        if self.conditional:
            return torch.ones(self.config.model.num_classes)
        return 1.0 / self.sigmas.detach().float().cpu()


class CondRefineNetDilated(RefineNetScore):
    arch = "CondRefineNetDilated"


class NCSNv2(RefineNetScore):
    arch = "NCSNv2"


class NCSNv2Deeper(RefineNetScore):
    arch = "NCSNv2Deeper"


class NCSNv2Deepest(RefineNetScore):
    arch = "NCSNv2Deepest"


MODELS = {cls.arch: cls for cls in (CondRefineNetDilated, NCSNv2, NCSNv2Deeper, NCSNv2Deepest)}


def build_model(config: Config) -> RefineNetScore:
    """The network for a config (on the current default device; use torch.device('meta') for shapes)."""
    return MODELS[config.arch](config)
