"""`ncsn-fast convert`: a checkpoint of any format we read (NCSN, NCSNv2, NCSN++) as .safetensors, config included;
what it writes reads back as the same network."""

from __future__ import annotations

from pathlib import Path

from ..errors import NcsnError
from .args import add_checkpoint_args, load_model


def add_parser(sub) -> None:
    p = sub.add_parser("convert", help="write a checkpoint's weights to sample with (EMA by default) and its "
                       "resolved config as one .safetensors file, accepted wherever a checkpoint is")
    p.add_argument("checkpoint", help="a checkpoint of the original NCSN / NCSNv2 or score-SDE code, or ours")
    p.add_argument("out", help="the .safetensors file to write")
    add_checkpoint_args(p)
    p.add_argument("--overwrite", action="store_true", help="replace an existing output file")
    p.set_defaults(handler=run)


def run(args) -> int:
    from ..checkpoints import write_safetensors

    out = Path(args.out)
    if out.suffix != ".safetensors":
        raise NcsnError(f"{out}: the output must end in .safetensors")
    if out.exists() and not args.overwrite:
        raise NcsnError(f"{out} exists; pass --overwrite to replace it")
    if not out.parent.is_dir():
        raise NcsnError(f"{out}: the folder {out.parent} does not exist")
    model, cfg, info = load_model(args)
    state = model.state_dict()
    write_safetensors(out, state, cfg.to_dict(), ema=info.ema_applied, source=Path(args.checkpoint).name)
    n_params = sum(p.numel() for p in model.parameters())
    print(f"{out}: {cfg.arch}, {n_params:,} parameters ({len(state)} tensors), "
          f"{'EMA' if info.ema_applied else 'raw'} weights; config: {info.config_source}")
    return 0
