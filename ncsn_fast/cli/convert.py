"""`ncsn-fast convert`: a checkpoint of any format we read (NCSN, NCSNv2, NCSN++) as .safetensors, config included,
or an NCSN++ as a diffusers pipeline folder (`--to diffusers`); what it writes reads back as the same network."""

from __future__ import annotations

import shutil
from pathlib import Path

from ..errors import NcsnError
from .args import CHECKPOINT_HELP, add_checkpoint_args, load_model


def add_parser(sub) -> None:
    p = sub.add_parser("convert", help="write a checkpoint's weights to sample with (EMA by default) and its "
                       "resolved config as one .safetensors file, accepted wherever a checkpoint is; or an NCSN++ "
                       "as a diffusers pipeline folder")
    p.add_argument("checkpoint", help=CHECKPOINT_HELP)
    p.add_argument("out", help="the .safetensors file to write, or with --to diffusers the folder")
    p.add_argument("--to", choices=["safetensors", "diffusers"], default="safetensors",
                   help="ours (.safetensors, any family; default) or a diffusers folder (NCSN++ that diffusers' "
                   "UNet2DModel expresses exactly; anything else is refused with the reason)")
    add_checkpoint_args(p, builtin=False)
    p.add_argument("--overwrite", action="store_true", help="replace an existing output")
    p.set_defaults(handler=run)


def run(args) -> int:
    out = Path(args.out)
    if args.to == "safetensors" and out.suffix != ".safetensors":
        raise NcsnError(f"{out}: the output must end in .safetensors (or pass --to diffusers for a folder)")
    if out.exists() and not args.overwrite:
        raise NcsnError(f"{out} exists; pass --overwrite to replace it")
    if not out.parent.is_dir():
        raise NcsnError(f"{out}: the folder {out.parent} does not exist")
    model, cfg, info = load_model(args)
    n_params = sum(p.numel() for p in model.parameters())
    weights = "EMA" if info.ema_applied else "raw" if info.layout != "diffusers" else "the folder's"
    if args.to == "diffusers":
        from ..checkpoints.diffusers import write_folder
        if cfg.family != "ncsnpp":
            raise NcsnError(f"diffusers has no {cfg.arch}: only NCSN++ converts to its format")
        if out.exists():
            staged = out.with_name(f".{out.name}.replaced")
            write_folder(staged, model, cfg.to_dict())
            shutil.rmtree(out) if out.is_dir() else out.unlink()
            staged.rename(out)
        else:
            write_folder(out, model, cfg.to_dict())
        print(f"{out}/: a diffusers ScoreSdeVePipeline folder (UNet2DModel + ScoreSdeVeScheduler) of {cfg.arch}, "
              f"{n_params:,} parameters, {weights} weights; config: {info.config_source}")
        return 0
    from ..checkpoints import write_safetensors
    state = model.state_dict()
    write_safetensors(out, state, cfg.to_dict(), ema=info.ema_applied, source=Path(args.checkpoint).name)
    print(f"{out}: {cfg.arch}, {n_params:,} parameters ({len(state)} tensors), {weights} weights; config: "
          f"{info.config_source}")
    return 0
