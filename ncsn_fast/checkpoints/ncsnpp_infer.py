"""The config of an NCSN++ checkpoint inferred from its weights, for a file that comes without one.

What the weights tell: the embedding (a Fourier `W` or not), nf, the image channels, the residual blocks' count and
channels (hence ch_mult, num_res_blocks and the block type), which levels attend, and the noise scales (the
`sigmas` buffer: sigma_max, sigma_min, N). The progressive options are then found by building each candidate on
the meta device and comparing its state_dict, key by key and shape by shape, with the file's.

What they cannot tell is taken from the published VE configs, which all agree on it and say so in the notes:
swish, FIR kernel (1, 3, 3, 1), skip_rescale, scale_by_sigma, data in [0, 1], and attention at 16x16 (which gives
the image size). The sampling settings come from the published config of the nearest image size.
"""

from __future__ import annotations

import copy
import itertools
import math
import re

import torch

from ..errors import CheckpointError
from ..models.ncsnpp import NCSNpp

_PROGRESSIVE = [  # (progressive, progressive_input, combine), the published pairs first
    ("none", "residual", "sum"), ("output_skip", "input_skip", "sum"),
    *[(p, q, c) for p, q, c in itertools.product(("none", "output_skip", "residual"),
                                                  ("none", "input_skip", "residual"), ("sum", "cat"))
      if (p, q, c) not in (("none", "residual", "sum"), ("output_skip", "input_skip", "sum"))]]
_ASSUMED = "swish, FIR (1, 3, 3, 1), skip_rescale, scale_by_sigma, data in [0, 1], attention at 16x16"


def _modules(state: dict) -> dict[int, dict[str, tuple]]:
    mods: dict[int, dict[str, tuple]] = {}
    for k, v in state.items():
        m = re.match(r"all_modules\.(\d+)\.(.+)$", k)
        if m:
            mods.setdefault(int(m.group(1)), {})[m.group(2)] = tuple(v.shape)
    return mods


def _pretty(x: float) -> float:
    """x rounded to the fewest significant digits (up to 12) that keep it within 1e-12 relative."""
    for digits in range(1, 13):
        r = float(f"{x:.{digits}g}")
        if abs(r - x) <= 1e-12 * abs(x):
            return r
    return x


def _shapes(cfg: dict) -> list[tuple[str, tuple]]:
    with torch.device("meta"):
        model = NCSNpp(cfg)
    return [(k, tuple(v.shape)) for k, v in model.state_dict().items()]


def _template(published: dict[str, dict], embedding: str, image_size: int) -> tuple[str, dict]:
    same = [n for n, c in published.items() if c["model"]["embedding_type"] == embedding] or list(published)
    name = min(same, key=lambda n: abs(math.log2(published[n]["data"]["image_size"] / image_size)))
    return name, published[name]


def infer_config(state: dict[str, torch.Tensor], published: dict[str, dict],
                 image_size: int | None = None) -> tuple[dict, str, str]:
    """(the resolved config, where it came from, what was assumed: "" for a published config) for an NCSN++
    state_dict without `module.`; image_size, where given, in place of the attention-at-16x16 rule."""
    mods = _modules(state)
    if "sigmas" not in state or not mods:
        raise CheckpointError("cannot infer an NCSN++ config: no `sigmas` buffer or no all_modules.* weights")
    fourier = "W" in mods.get(0, {})
    nf = mods[0]["W"][0] if fourier else mods[0].get("weight", (0, 0))[-1]
    first = 1 if fourier else 0
    conditional = mods.get(first, {}).get("weight") == (4 * nf, 2 * nf if fourier else nf)
    first += 2 if conditional else 0
    conv_in = mods.get(first, {}).get("weight")
    if not nf or conv_in is None or len(conv_in) != 4 or conv_in[0] != nf:
        raise CheckpointError(f"cannot infer an NCSN++ config: module {first} is not the input convolution "
                              f"(nf {nf})")
    channels = conv_in[1]
    res = [i for i in sorted(mods) if {"Conv_0.weight", "Conv_1.weight", "GroupNorm_0.weight"} <= set(mods[i])]
    attn = {i for i in mods if "NIN_3.W" in mods[i]}
    sig = state["sigmas"].double()
    base = {"nf": nf, "conditional": conditional, "embedding_type": "fourier" if fourier else "positional",
            "sigma_max": _pretty(float(sig[0])), "sigma_min": _pretty(float(sig[-1])), "num_scales": len(sig)}
    want = [(k, tuple(v.shape)) for k, v in state.items()]
    for kind, levels, blocks in _block_layouts(len(res), len(attn)):
        per_level = blocks + 1 if kind == "biggan" else blocks
        firsts = [res[i * per_level] for i in range(levels)]
        ch = [mods[i]["Conv_0.weight"][0] for i in firsts]
        if any(c % nf for c in ch):
            continue
        attending = [lv for lv, i in enumerate(firsts) if i + 1 in attn]
        if len(attending) != 1:
            continue
        size = image_size or 16 * 2 ** attending[0]
        attn_res = size // 2 ** attending[0]
        if size % 2 ** (levels - 1):
            continue
        tname, template = _template(published, base["embedding_type"], size)
        for progressive, progressive_input, combine in _PROGRESSIVE:
            cfg = copy.deepcopy(template)
            cfg["model"].update(base, ch_mult=[c // nf for c in ch], num_res_blocks=blocks, attn_resolutions=[attn_res],
                                resblock_type=kind, progressive=progressive, progressive_input=progressive_input,
                                progressive_combine=combine)
            cfg["data"].update(image_size=size, num_channels=channels)
            cfg.setdefault("training", {})["continuous"] = fourier
            try:
                if _shapes(cfg) != want:
                    continue
            except (ValueError, KeyError, IndexError, RuntimeError):
                continue
            assumed = _ASSUMED if image_size is None else _ASSUMED.replace(", attention at 16x16", "")
            return _published_match(cfg, published) or (
                cfg, "inferred from the weights",
                f"assumed as in every published VE config: {assumed}; sampling settings of {tname}")
    raise CheckpointError(f"cannot infer the NCSN++ config from the weights ({len(res)} residual blocks, "
                          f"{len(attn)} attention blocks, nf {nf}); give --config NAME or a JSON file")


def _block_layouts(n_res: int, n_attn: int):
    """(block type, levels L, res blocks per level r) that give n_res residual and n_attn attention blocks with
    one attending level: BigGAN L(2r + 3) blocks (its resampling is a block), DDPM L(2r + 1) + 2; r + 2 attention
    blocks (r down, 1 middle, 1 up)."""
    for kind in ("biggan", "ddpm"):
        for levels in range(1, 13):
            for blocks in range(1, 33):
                count = levels * (2 * blocks + 3) if kind == "biggan" else levels * (2 * blocks + 1) + 2
                if count == n_res and n_attn == blocks + 2:
                    yield kind, levels, blocks


def published_names(cfg: dict, published: dict[str, dict]) -> list[str]:
    """The published configs with this architecture, image size and noise scales (some are the same network under
    two names, e.g. CelebA-HQ and FFHQ at 256)."""
    keys = ("nf", "ch_mult", "num_res_blocks", "attn_resolutions", "resblock_type", "progressive",
            "progressive_input", "progressive_combine", "embedding_type", "num_scales")
    return [name for name, p in published.items()
            if all(p["model"][k] == cfg["model"][k] for k in keys)
            and p["data"]["image_size"] == cfg["data"]["image_size"]
            and math.isclose(p["model"]["sigma_max"], cfg["model"]["sigma_max"], rel_tol=1e-9)
            and math.isclose(p["model"]["sigma_min"], cfg["model"]["sigma_min"], rel_tol=1e-9)]


def _published_match(cfg: dict, published: dict[str, dict]):
    """The first published config with this network, with all its names; None if none."""
    names = published_names(cfg, published)
    if not names:
        return None
    return copy.deepcopy(published[names[0]]), f"inferred from the weights: the published {' = '.join(names)}", ""
