"""NCSN++ (Song et al. 2021, "Score-Based Generative Modeling through SDEs"), the score-SDE code's models/ncsnpp.py,
with its parameter names (`all_modules.<i>...` in construction order, the `sigmas` buffer first) so that its
checkpoints load as they are.

model(x, labels): labels are the noise scales sigma (continuous models, Gaussian Fourier embedding of log sigma)
or level indices into `sigmas` (discrete models, positional embedding); with `scale_by_sigma` (every published
VE config) the output is the score. The config is the resolved score-SDE config as a nested dict.

`model.group_norm: "diffusers"` builds the network diffusers builds from a `UNet2DModel` config instead (its
conversions of NCSN++): the same modules, with GroupNorm group counts by diffusers' rules, which differ from
score-SDE's min(C / 4, 32) in two places: the attention blocks of the attention levels take 32 groups, and the
resnets of the attention up-levels min(r + s // 4, 32) for an input of r + s channels (r from below, s the skip).
"""

from __future__ import annotations

import functools

import numpy as np
import torch
from torch import nn

from .ncsnpp_layers import (
    NIN,
    AttnBlockpp,
    Combine,
    Downsample,
    FIRConv2d,
    GaussianFourierProjection,
    NormAct,
    ResnetBlockBigGANpp,
    ResnetBlockDDPMpp,
    Upsample,
    conv3x3,
    group_norm,
    timestep_embedding,
)


def ve_sigmas(config: dict) -> torch.Tensor:
    """The discrete noise scales, largest first: exp(linspace(log sigma_max, log sigma_min, num_scales)), float64."""
    m = config["model"]
    return torch.from_numpy(np.exp(np.linspace(np.log(m["sigma_max"]), np.log(m["sigma_min"]), m["num_scales"])))


def _variance_scaling_(w: torch.Tensor, scale: float, fans) -> None:
    """w ~ U(-b, b) with b^2 = 3 scale / fan_avg (the score-SDE code's default_init)."""
    bound = float(np.sqrt(3.0 * scale / ((fans[0] + fans[1]) / 2)))
    w.uniform_(-bound, bound)


def _set_groups(norm: nn.GroupNorm, groups: int) -> None:
    if norm.num_channels % groups:
        raise ValueError(f"a GroupNorm of {norm.num_channels} channels cannot take the {groups} groups of diffusers' "
                         f"rule (its attention levels need a multiple of 32 channels)")
    norm.num_groups = groups


def _act(name: str) -> nn.Module:
    acts = {"swish": nn.SiLU(), "elu": nn.ELU(), "relu": nn.ReLU(), "lrelu": nn.LeakyReLU(negative_slope=0.2)}
    if name.lower() not in acts:
        raise ValueError(f"activation {name!r} unknown; expected one of {sorted(acts)}")
    return acts[name.lower()]


class NCSNpp(NormAct):
    """NCSN++ for the options the published VE configs use: Fourier or positional embedding, BigGAN or DDPM
    residual blocks, FIR resampling, skip_rescale, attention at the configured resolutions, progressive output
    none | output_skip | residual and progressive input none | input_skip | residual."""

    def __init__(self, config: dict):
        super().__init__()
        self.config = config
        m, d = config["model"], config["data"]
        self.act = act = _act(m["nonlinearity"])
        self.register_buffer("sigmas", ve_sigmas(config))
        self.nf = nf = m["nf"]
        ch_mult = m["ch_mult"]
        self.num_res_blocks = num_res_blocks = m["num_res_blocks"]
        self.attn_resolutions = attn_resolutions = tuple(m["attn_resolutions"])
        self.num_resolutions = num_resolutions = len(ch_mult)
        all_resolutions = [d["image_size"] // (2 ** i) for i in range(num_resolutions)]
        self.conditional = m["conditional"]
        fir, fir_kernel = m["fir"], tuple(m["fir_kernel"])
        self.skip_rescale = skip_rescale = m["skip_rescale"]
        self.resblock_type = resblock_type = m["resblock_type"].lower()
        self.progressive = progressive = m["progressive"].lower()
        self.progressive_input = progressive_input = m["progressive_input"].lower()
        self.embedding_type = m["embedding_type"].lower()
        self.scale_by_sigma, self.centered = m["scale_by_sigma"], d["centered"]
        combine_method = m["progressive_combine"].lower()
        if progressive not in ("none", "output_skip", "residual") or progressive_input not in (
                "none", "input_skip", "residual") or self.embedding_type not in ("fourier", "positional") or \
                resblock_type not in ("ddpm", "biggan") or combine_method not in ("cat", "sum"):
            raise ValueError(f"unsupported NCSN++ options: progressive {progressive}, progressive_input "
                             f"{progressive_input}, embedding {self.embedding_type}, resblock {resblock_type}, "
                             f"combine {combine_method}")
        channels = d["num_channels"]

        modules: list[nn.Module] = []
        if self.embedding_type == "fourier":
            modules.append(GaussianFourierProjection(embedding_size=nf, scale=m["fourier_scale"]))
            embed_dim = 2 * nf
        else:
            embed_dim = nf
        if self.conditional:
            modules += [nn.Linear(embed_dim, nf * 4), nn.Linear(nf * 4, nf * 4)]

        attn = functools.partial(AttnBlockpp, skip_rescale=skip_rescale)
        upsample = functools.partial(Upsample, with_conv=m["resamp_with_conv"], fir=fir, fir_kernel=fir_kernel)
        downsample = functools.partial(Downsample, with_conv=m["resamp_with_conv"], fir=fir, fir_kernel=fir_kernel)
        # The pyramids' resampling: with a convolution (listed) for 'residual', plain FIR (not listed) for the skips.
        pyramid_upsample = functools.partial(Upsample, fir=fir, fir_kernel=fir_kernel, with_conv=True)
        pyramid_downsample = functools.partial(Downsample, fir=fir, fir_kernel=fir_kernel, with_conv=True)
        self._pyramid_up = Upsample(channels, fir=fir, fir_kernel=fir_kernel, with_conv=False)
        self._pyramid_down = Downsample(channels, fir=fir, fir_kernel=fir_kernel, with_conv=False)
        if resblock_type == "ddpm":
            resnet = functools.partial(ResnetBlockDDPMpp, act=act, dropout=m["dropout"], skip_rescale=skip_rescale,
                                       temb_dim=nf * 4)
        else:
            resnet = functools.partial(ResnetBlockBigGANpp, act=act, dropout=m["dropout"], fir=fir,
                                       fir_kernel=fir_kernel, skip_rescale=skip_rescale, temb_dim=nf * 4)

        attn_at_levels, up_resnets = [], []  # where diffusers' group counts may differ (see the module docstring)

        # Downsampling path
        input_pyramid_ch = channels
        modules.append(conv3x3(channels, nf))
        hs_c, in_ch = [nf], nf
        for i_level in range(num_resolutions):
            for _ in range(num_res_blocks):
                out_ch = nf * ch_mult[i_level]
                modules.append(resnet(in_ch=in_ch, out_ch=out_ch))
                in_ch = out_ch
                if all_resolutions[i_level] in attn_resolutions:
                    modules.append(attn(channels=in_ch))
                    attn_at_levels.append(modules[-1])
                hs_c.append(in_ch)
            if i_level != num_resolutions - 1:
                modules.append(downsample(in_ch=in_ch) if resblock_type == "ddpm" else resnet(down=True, in_ch=in_ch))
                if progressive_input == "input_skip":  # the pyramid's resampling has no parameters: not listed
                    modules.append(Combine(dim1=input_pyramid_ch, dim2=in_ch, method=combine_method))
                    if combine_method == "cat":
                        in_ch *= 2
                elif progressive_input == "residual":
                    modules.append(pyramid_downsample(in_ch=input_pyramid_ch, out_ch=in_ch))
                    input_pyramid_ch = in_ch
                hs_c.append(in_ch)

        in_ch = hs_c[-1]
        modules += [resnet(in_ch=in_ch), attn(channels=in_ch), resnet(in_ch=in_ch)]

        # Upsampling path
        pyramid_ch = 0
        for i_level in reversed(range(num_resolutions)):
            for _ in range(num_res_blocks + 1):
                out_ch, skip_ch = nf * ch_mult[i_level], hs_c.pop()
                modules.append(resnet(in_ch=in_ch + skip_ch, out_ch=out_ch))
                if all_resolutions[i_level] in attn_resolutions:
                    up_resnets.append((modules[-1], in_ch, skip_ch))
                in_ch = out_ch
            if all_resolutions[i_level] in attn_resolutions:
                modules.append(attn(channels=in_ch))
                attn_at_levels.append(modules[-1])
            if progressive != "none":
                if i_level == num_resolutions - 1:
                    modules.append(group_norm(in_ch))
                    if progressive == "output_skip":
                        modules.append(conv3x3(in_ch, channels))
                        pyramid_ch = channels
                    else:
                        modules.append(conv3x3(in_ch, in_ch))
                        pyramid_ch = in_ch
                elif progressive == "output_skip":  # the pyramid's resampling has no parameters: not listed
                    modules += [group_norm(in_ch), conv3x3(in_ch, channels)]
                    pyramid_ch = channels
                else:
                    modules.append(pyramid_upsample(in_ch=pyramid_ch, out_ch=in_ch))
                    pyramid_ch = in_ch
            if i_level != 0:
                modules.append(upsample(in_ch=in_ch) if resblock_type == "ddpm" else resnet(in_ch=in_ch, up=True))
        assert not hs_c
        if progressive != "output_skip":
            modules += [group_norm(in_ch), conv3x3(in_ch, channels)]
        self.all_modules = nn.ModuleList(modules)
        rule = m.get("group_norm", "score_sde")
        if rule == "diffusers":
            for block in attn_at_levels:
                _set_groups(block.GroupNorm_0, 32)
            for block, r, skip in up_resnets:
                _set_groups(block.GroupNorm_0, min(r + skip // 4, 32))
        elif rule != "score_sde":
            raise ValueError(f"model.group_norm must be 'score_sde' or 'diffusers', got {rule!r}")

    @torch.no_grad()
    def init_as_score_sde(self) -> None:
        """The score-SDE code's initialisation, to train from scratch: every convolution, dense and NIN weight
        drawn from its default_init (variance scaling, fan_avg, uniform; scale 1, NIN 0.1), biases zero; the last
        convolution of each residual block, the attention output (NIN_3) and the output convolutions at scale
        model.init_scale (0 -> 1e-10), so that each block starts near the identity and the output near 0."""
        zero = self.config["model"].get("init_scale", 0.0) or 1e-10
        channels = self.config["data"]["num_channels"]
        for name, mod in self.named_modules():
            last, direct = name.rsplit(".", 1)[-1], name.count(".") == 1
            if isinstance(mod, NIN):
                _variance_scaling_(mod.W, zero if last == "NIN_3" else 0.1, fans=mod.W.shape)
                mod.b.zero_()
            elif isinstance(mod, (nn.Conv2d, nn.Linear, FIRConv2d)):
                out = mod.weight.shape[0]
                scale = zero if last == "Conv_1" or (direct and out == channels and isinstance(mod, nn.Conv2d)) \
                    else 1.0
                receptive = mod.weight[0, 0].numel() if mod.weight.dim() == 4 else 1
                _variance_scaling_(mod.weight, scale, fans=(mod.weight.shape[1] * receptive, out * receptive))
                if getattr(mod, "bias", None) is not None:
                    mod.bias.zero_()

    def group_counts_differ(self) -> int:
        """How many GroupNorms have other group counts than score-SDE's rule (0: the score-SDE network exactly)."""
        return sum(1 for mod in self.modules() if isinstance(mod, nn.GroupNorm)
                   and mod.num_groups != min(mod.num_channels // 4, 32))

    def keep_dtype(self) -> tuple[str, ...]:
        """Tensors that keep their dtype when the fast path casts the network to 16 bits: the float64 noise
        scales (exact ladder) and the Fourier features' W (|W log sigma 2 pi| reaches hundreds of radians, which
        bfloat16's 8-bit mantissa would scramble)."""
        return ("sigmas", "all_modules.0.W") if self.embedding_type == "fourier" else ("sigmas",)

    def forward(self, x: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
        mods = iter(self.all_modules)  # taken in construction order (never two next() in one expression)
        if self.embedding_type == "fourier":
            used_sigmas = labels
            temb = next(mods)(torch.log(used_sigmas))
        else:
            used_sigmas = self.sigmas[labels.int()]
            temb = timestep_embedding(labels, self.nf)
        if self.conditional:
            temb = next(mods)(temb.to(x.dtype))  # computed in float32 (or 64), then in the network's dtype
            temb = next(mods)(self.act(temb))
        else:
            temb = None
        if not self.centered:
            x = 2 * x - 1.0
        input_pyramid = x if self.progressive_input != "none" else None

        hs = [next(mods)(x)]
        for i_level in range(self.num_resolutions):
            for _ in range(self.num_res_blocks):
                h = next(mods)(hs[-1], temb)
                if h.shape[-1] in self.attn_resolutions:
                    h = next(mods)(h)
                hs.append(h)
            if i_level != self.num_resolutions - 1:
                h = next(mods)(hs[-1]) if self.resblock_type == "ddpm" else next(mods)(hs[-1], temb)
                if self.progressive_input == "input_skip":
                    input_pyramid = self._pyramid_down(input_pyramid)
                    h = next(mods)(input_pyramid, h)
                elif self.progressive_input == "residual":
                    input_pyramid = next(mods)(input_pyramid)
                    input_pyramid = (input_pyramid + h) / np.sqrt(2.0) if self.skip_rescale else input_pyramid + h
                    h = input_pyramid
                hs.append(h)

        h = hs[-1]
        h = next(mods)(h, temb)
        h = next(mods)(h)
        h = next(mods)(h, temb)

        pyramid = None
        for i_level in reversed(range(self.num_resolutions)):
            for _ in range(self.num_res_blocks + 1):
                h = next(mods)(torch.cat([h, hs.pop()], dim=1), temb)
            if h.shape[-1] in self.attn_resolutions:
                h = next(mods)(h)
            if self.progressive != "none":
                if i_level == self.num_resolutions - 1:
                    norm, conv = next(mods), next(mods)
                    pyramid = conv(self.norm_act(norm, h))
                elif self.progressive == "output_skip":
                    pyramid = self._pyramid_up(pyramid)
                    norm, conv = next(mods), next(mods)
                    pyramid = pyramid + conv(self.norm_act(norm, h))
                else:
                    pyramid = next(mods)(pyramid)
                    pyramid = (pyramid + h) / np.sqrt(2.0) if self.skip_rescale else pyramid + h
                    h = pyramid
            if i_level != 0:
                h = next(mods)(h) if self.resblock_type == "ddpm" else next(mods)(h, temb)
        assert not hs

        if self.progressive == "output_skip":
            h = pyramid
        else:
            norm, conv = next(mods), next(mods)
            h = conv(self.norm_act(norm, h))
        if next(mods, None) is not None:
            raise RuntimeError("NCSN++ forward left modules unused (a construction / forward mismatch)")
        if self.scale_by_sigma:  # in the output's dtype: the float64 buffer made the original's discrete output float64
            h = h / used_sigmas.to(h.dtype).reshape((x.shape[0], *([1] * len(x.shape[1:]))))
        return h
