"""NCSN++ in the diffusers format, read without diffusers: a pipeline folder (`model_index.json`, `unet/`,
`scheduler/`) or a `unet/` folder alone, holding `config.json` (a `UNet2DModel` with Skip / AttnSkip blocks and
a Fourier time embedding) and `diffusion_pytorch_model.safetensors` (or `.bin`, read by the one safe unpickler).

The UNet config becomes the score-SDE config of the same network (`model.group_norm: "diffusers"`: diffusers'
GroupNorm group counts, see models/ncsnpp.py), the scheduler's settings its noise scales and sampling section,
and each diffusers tensor is mapped by name onto the `all_modules.<i>` key of score-SDE's construction order.
A layout this cannot map is refused naming the block type, option or key.
"""

from __future__ import annotations

import json
import math
import os
from pathlib import Path

import torch

from ..config import published_ncsnpp_configs
from ..errors import CheckpointError
from .safe_load import Contents, torch_load

WEIGHTS = ("diffusion_pytorch_model.safetensors", "diffusion_pytorch_model.bin")
DOWN, UP = ("SkipDownBlock2D", "AttnSkipDownBlock2D"), ("SkipUpBlock2D", "AttnSkipUpBlock2D")
# What diffusers' ScoreSdeVeScheduler assumes when a folder has no scheduler config.
SCHEDULER_DEFAULTS = {"num_train_timesteps": 2000, "snr": 0.15, "sigma_min": 0.01, "sigma_max": 1348.0,
                      "sampling_eps": 1e-5, "correct_steps": 1}
RESNET = {"norm1": "GroupNorm_0", "conv1": "Conv_0", "time_emb_proj": "Dense_0", "norm2": "GroupNorm_1",
          "conv2": "Conv_1", "conv_shortcut": "Conv_2"}
ATTENTION = {"to_q": "NIN_0", "to_k": "NIN_1", "to_v": "NIN_2", "to_out.0": "NIN_3",  # older files: the right names
             "query": "NIN_0", "key": "NIN_1", "value": "NIN_2", "proj_attn": "NIN_3"}


def is_folder(path: Path) -> bool:
    return path.is_dir() and ((path / "unet" / "config.json").is_file() or (path / "config.json").is_file())


def read(path: Path) -> Contents:
    unet = path / "unet" if (path / "unet" / "config.json").is_file() else path
    unet_config = _json(unet / "config.json")
    scheduler_file = path / "scheduler" / "scheduler_config.json"
    scheduler = {**SCHEDULER_DEFAULTS, **(_json(scheduler_file) if scheduler_file.is_file() else {})}
    config = score_sde_config(unet_config, scheduler)
    weights = next((unet / w for w in WEIGHTS if (unet / w).is_file()), None)
    if weights is None:
        raise CheckpointError(f"{unet} holds no {' or '.join(WEIGHTS)}")
    tensors = _read_weights(weights)
    state = map_state(tensors, unet_config)
    from ..models.ncsnpp import ve_sigmas
    state["sigmas"] = ve_sigmas(config)  # score-SDE's noise scales buffer, from the scheduler's range
    source = ("the folder's diffusers configs (unet, scheduler)" if scheduler_file.is_file() else
              "the folder's diffusers UNet config (no scheduler config: diffusers' ScoreSdeVeScheduler defaults)")
    return Contents("diffusers", "ncsnpp", state, None, config, None, weights_are_ema=False, config_source=source)


def _json(path: Path) -> dict:
    try:
        data = json.loads(path.read_text())
    except (OSError, ValueError, RecursionError) as e:
        raise CheckpointError(f"cannot read {path}: {e}") from None
    if not isinstance(data, dict):
        raise CheckpointError(f"{path} does not hold a JSON object")
    return data


def _read_weights(path: Path) -> dict[str, torch.Tensor]:
    if path.suffix == ".safetensors":
        from .ours import read_safetensors
        return read_safetensors(path).state
    obj = torch_load(path)
    if not isinstance(obj, dict) or not all(isinstance(v, torch.Tensor) for v in obj.values()):
        raise CheckpointError(f"{path} is not a state_dict")
    return obj


def score_sde_config(unet: dict, scheduler: dict) -> dict:
    """The resolved score-SDE config of the NCSN++ a UNet2DModel config describes; CheckpointError naming what
    does not map."""
    def refuse(what: str) -> CheckpointError:
        return CheckpointError(f"this diffusers UNet is not an NCSN++ ncsn_fast can map: {what}")
    if unet.get("_class_name", "UNet2DModel") != "UNet2DModel":
        raise refuse(f"_class_name {unet.get('_class_name')!r} (UNet2DModel expected)")
    expect = {"time_embedding_type": "fourier", "act_fn": "silu", "in_channels": 3, "out_channels": 3,
              "resnet_time_scale_shift": "default", "class_embed_type": None, "num_class_embeds": None,
              "norm_num_groups": None, "attn_norm_num_groups": None, "add_attention": True,
              "mid_block_type": "UNetMidBlock2D"}
    for key, want in expect.items():
        if key in unet and unet[key] != want:
            raise refuse(f"{key} {unet[key]!r} ({want!r} expected)")
    down, up = list(unet.get("down_block_types", [])), list(unet.get("up_block_types", []))
    for t in down:
        if t not in DOWN:
            raise refuse(f"block type {t} (NCSN++ conversions use {', '.join(DOWN)})")
    for t in up:
        if t not in UP:
            raise refuse(f"block type {t} (NCSN++ conversions use {', '.join(UP)})")
    if [t.startswith("Attn") for t in down] != [t.startswith("Attn") for t in reversed(up)] or not down:
        raise refuse(f"up blocks {up} do not mirror down blocks {down}")
    channels = list(unet["block_out_channels"])
    nf = channels[0]
    if any(c % nf for c in channels) or len(channels) != len(down):
        raise refuse(f"block_out_channels {channels} (each a multiple of the first, one per block)")
    size = unet["sample_size"]
    size = size[0] if isinstance(size, (list, tuple)) else size
    head = unet.get("attention_head_dim")
    if head is not None and any(head != c for c, t in zip(channels, down) if t.startswith("Attn")):
        raise refuse(f"attention_head_dim {head} (one head of the block's width expected)")
    if not math.isclose(unet.get("mid_block_scale_factor", 1.0), math.sqrt(2.0), rel_tol=1e-6):
        raise refuse(f"mid_block_scale_factor {unet.get('mid_block_scale_factor')} (sqrt 2: skip rescaling)")
    cfg = json.loads(json.dumps(published_ncsnpp_configs()["celebahq_256_ncsnpp_continuous"]))  # the family's
    cfg["model"].update(nf=nf, ch_mult=[c // nf for c in channels], num_res_blocks=unet["layers_per_block"],
                        attn_resolutions=[size // 2 ** i for i, t in enumerate(down) if t.startswith("Attn")],
                        dropout=unet.get("dropout", 0.0), sigma_min=scheduler["sigma_min"],
                        sigma_max=scheduler["sigma_max"], num_scales=scheduler["num_train_timesteps"],
                        group_norm="diffusers")
    cfg["data"].update(image_size=size, num_channels=3, centered=not unet.get("center_input_sample", False),
                       dataset="diffusers")
    cfg["sampling"].update(snr=scheduler["snr"], n_steps_each=scheduler["correct_steps"])
    cfg["diffusers_scheduler"] = scheduler
    return cfg


def key_map(unet: dict) -> dict[str, str]:
    """{diffusers module prefix: all_modules.<i>} in score-SDE's construction order, with each module's kind."""
    levels, per_level = len(unet["block_out_channels"]), unet["layers_per_block"]
    attn = [t.startswith("Attn") for t in unet["down_block_types"]]
    order: list[tuple[str, str]] = [("time_proj", "fourier"), ("time_embedding.linear_1", "plain"),
                                    ("time_embedding.linear_2", "plain"), ("conv_in", "plain")]
    for i in range(levels):
        for j in range(per_level):
            order.append((f"down_blocks.{i}.resnets.{j}", "resnet"))
            if attn[i]:
                order.append((f"down_blocks.{i}.attentions.{j}", "attention"))
        if i != levels - 1:
            order += [(f"down_blocks.{i}.resnet_down", "resnet"), (f"down_blocks.{i}.skip_conv", "combine")]
    order += [("mid_block.resnets.0", "resnet"), ("mid_block.attentions.0", "attention"),
              ("mid_block.resnets.1", "resnet")]
    for k in range(levels):
        for j in range(per_level + 1):
            order.append((f"up_blocks.{k}.resnets.{j}", "resnet"))
        if attn[levels - 1 - k]:
            order.append((f"up_blocks.{k}.attentions.0", "attention"))
        if k != levels - 1:
            order += [(f"up_blocks.{k}.skip_norm", "plain"), (f"up_blocks.{k}.skip_conv", "plain"),
                      (f"up_blocks.{k}.resnet_up", "resnet")]
        else:
            order += [("conv_norm_out", "plain"), ("conv_out", "plain")]
    return {prefix: (f"all_modules.{i}", kind) for i, (prefix, kind) in enumerate(order)}


def map_state(tensors: dict[str, torch.Tensor], unet: dict) -> dict[str, torch.Tensor]:
    """The diffusers tensors under score-SDE's names (NIN weights transposed); CheckpointError naming a key that
    has no place, or a module the file lacks."""
    modules = key_map(unet)
    prefixes = sorted(modules, key=len, reverse=True)
    state, seen = {}, set()
    for key, tensor in tensors.items():
        prefix = next((p for p in prefixes if key.startswith(p + ".")), None)
        if prefix is None:
            raise CheckpointError(f"diffusers tensor {key} has no place in the NCSN++ its config describes")
        target, kind = modules[prefix]
        rest = key[len(prefix) + 1:]
        seen.add(prefix)
        if kind == "fourier" and rest == "weight":
            state[f"{target}.W"] = tensor
        elif kind == "resnet" and rest.rsplit(".", 1)[0] in RESNET:
            name, param = rest.rsplit(".", 1)
            state[f"{target}.{RESNET[name]}.{param}"] = tensor
        elif kind == "attention" and rest.rsplit(".", 1)[0] in ("group_norm", *ATTENTION):
            name, param = rest.rsplit(".", 1)
            if name == "group_norm":
                state[f"{target}.GroupNorm_0.{param}"] = tensor
            else:
                state[f"{target}.{ATTENTION[name]}.{'W' if param == 'weight' else 'b'}"] = \
                    tensor.t().contiguous() if param == "weight" else tensor
        elif kind == "combine":
            state[f"{target}.Conv_0.{rest}"] = tensor
        elif kind == "plain" and rest in ("weight", "bias"):
            state[f"{target}.{rest}"] = tensor
        else:
            raise CheckpointError(f"diffusers tensor {key} ({kind} block) is not one NCSN++ has")
    missing = [p for p in modules if p not in seen]
    if missing:
        raise CheckpointError(f"the diffusers weights lack {len(missing)} module(s) their config describes, e.g. "
                              f"{missing[0]}")
    return state


# --- ours out: an NCSN++ written as a diffusers pipeline folder ------------------------------------------------

UNET_DEFAULTS = {  # what diffusers 0.42 writes into an NCSN++ UNet2DModel config besides the architecture
    "_class_name": "UNet2DModel", "_diffusers_version": "0.42.1", "act_fn": "silu", "add_attention": True,
    "attention_head_dim": None, "attn_norm_num_groups": None, "class_embed_type": None, "downsample_padding": 1,
    "downsample_type": "conv", "flip_sin_to_cos": True, "freq_shift": 0, "in_channels": 3,
    "mid_block_scale_factor": 1.41421356237, "mid_block_type": "UNetMidBlock2D", "norm_eps": 1e-06,
    "norm_num_groups": None, "num_class_embeds": None, "num_train_timesteps": None, "out_channels": 3,
    "resnet_time_scale_shift": "default", "time_embedding_dim": None, "time_embedding_type": "fourier",
    "upsample_type": "conv",
}
# The one NCSN++ family diffusers' port expresses (its Skip blocks hard-code these).
EXPRESSIBLE = {"progressive": "output_skip", "progressive_input": "input_skip", "progressive_combine": "sum",
               "resblock_type": "biggan", "fir": True, "fir_kernel": [1, 3, 3, 1], "embedding_type": "fourier",
               "fourier_scale": 16, "skip_rescale": True, "scale_by_sigma": True, "conditional": True,
               "nonlinearity": "swish"}


def unet_config(cfg: dict) -> dict:
    """The UNet2DModel config of an NCSN++ config; CheckpointError naming what diffusers cannot express."""
    m, d = cfg["model"], cfg["data"]
    for key, want in EXPRESSIBLE.items():
        got = m.get(key)
        if (list(got) if isinstance(got, (list, tuple)) else got) != want:
            raise CheckpointError(f"diffusers cannot express this NCSN++: model.{key} is {got!r}, its port knows "
                                  f"{want!r} only")
    if d["num_channels"] != 3:
        raise CheckpointError(f"diffusers cannot express this NCSN++: {d['num_channels']} image channels (its skip "
                              f"convolutions hard-code 3)")
    levels, size, nf = len(m["ch_mult"]), d["image_size"], m["nf"]
    attn = [size // 2 ** i in m["attn_resolutions"] for i in range(levels)]
    return {**UNET_DEFAULTS, "block_out_channels": [nf * c for c in m["ch_mult"]],
            "center_input_sample": not d.get("centered", False), "dropout": m.get("dropout", 0.0),
            "layers_per_block": m["num_res_blocks"], "sample_size": size,
            "down_block_types": ["AttnSkipDownBlock2D" if a else "SkipDownBlock2D" for a in attn],
            "up_block_types": ["AttnSkipUpBlock2D" if a else "SkipUpBlock2D" for a in reversed(attn)]}


def scheduler_config(cfg: dict) -> dict:
    m, s = cfg["model"], cfg.get("sampling", {})
    known = cfg.get("diffusers_scheduler", {})
    return {"_class_name": "ScoreSdeVeScheduler", "_diffusers_version": "0.42.1",
            "correct_steps": known.get("correct_steps", s.get("n_steps_each", 1)),
            "num_train_timesteps": known.get("num_train_timesteps", m["num_scales"]),
            "sampling_eps": known.get("sampling_eps", 1e-5), "sigma_max": m["sigma_max"], "sigma_min": m["sigma_min"],
            "snr": known.get("snr", s.get("snr", 0.15))}


def unmap_state(state: dict[str, torch.Tensor], unet: dict) -> dict[str, torch.Tensor]:
    """Our NCSN++ state_dict under diffusers' names (map_state's inverse; the sigmas buffer has no counterpart)."""
    inverse = {target: (prefix, kind) for prefix, (target, kind) in key_map(unet).items()}
    names = {"resnet": {v: k for k, v in RESNET.items()},
             "attention": {"GroupNorm_0": "group_norm", **{f"NIN_{i}": n for i, n in
                                                           enumerate(("to_q", "to_k", "to_v", "to_out.0"))}}}
    out = {}
    for key, tensor in state.items():
        if key == "sigmas":
            continue
        target, rest = ".".join(key.split(".")[:2]), ".".join(key.split(".")[2:])
        prefix, kind = inverse[target]
        if kind == "fourier":
            out[f"{prefix}.weight"] = tensor
        elif kind == "combine":
            out[f"{prefix}.{rest.removeprefix('Conv_0.')}"] = tensor
        elif kind in ("resnet", "attention"):
            module, param = rest.rsplit(".", 1)
            if kind == "attention" and module.startswith("NIN_"):
                param, tensor = ("weight", tensor.t()) if param == "W" else ("bias", tensor)
            out[f"{prefix}.{names[kind][module]}.{param}"] = tensor
        else:
            out[f"{prefix}.{rest}"] = tensor
    return {k: v.detach().cpu().contiguous() for k, v in out.items()}


def write_folder(out: Path, model: torch.nn.Module, cfg: dict) -> None:
    """A diffusers pipeline folder (model_index.json, unet/, scheduler/) that diffusers loads as this network, or
    CheckpointError saying why diffusers' network would not be this one; written beside and renamed into place."""
    import shutil
    import tempfile

    from safetensors.torch import save_file

    from ..models.ncsnpp import NCSNpp
    unet = unet_config(cfg)
    built = json.loads(json.dumps(cfg))
    built["model"]["group_norm"] = "diffusers"
    try:
        with torch.device("meta"):
            theirs = NCSNpp(built)
    except ValueError as e:
        raise CheckpointError(f"diffusers cannot build this NCSN++: {e}") from None
    ours = {n: m.num_groups for n, m in model.named_modules() if isinstance(m, torch.nn.GroupNorm)}
    differ = [n for n, m in theirs.named_modules() if isinstance(m, torch.nn.GroupNorm) and m.num_groups != ours[n]]
    if differ:
        raise CheckpointError(f"diffusers would build {len(differ)} GroupNorm(s) with other group counts than this "
                              f"network's (e.g. {differ[0]}: its attention levels have < 128 channels), so its "
                              f"network would not be this one; nothing written")
    tmp = Path(tempfile.mkdtemp(prefix=f".{out.name}.", dir=out.parent))
    try:
        (tmp / "unet").mkdir()
        (tmp / "scheduler").mkdir()
        (tmp / "unet" / "config.json").write_text(json.dumps(unet, indent=2, sort_keys=True) + "\n")
        save_file(unmap_state(model.state_dict(), unet), str(tmp / "unet" / "diffusion_pytorch_model.safetensors"))
        (tmp / "scheduler" / "scheduler_config.json").write_text(
            json.dumps(scheduler_config(cfg), indent=2, sort_keys=True) + "\n")
        (tmp / "model_index.json").write_text(json.dumps(
            {"_class_name": "ScoreSdeVePipeline", "_diffusers_version": "0.42.1",
             "scheduler": ["diffusers", "ScoreSdeVeScheduler"], "unet": ["diffusers", "UNet2DModel"]},
            indent=2, sort_keys=True) + "\n")
        os.replace(tmp, out)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
