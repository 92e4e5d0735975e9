"""Turn a digits training run into a built-in model: raw and EMA weights, config embedded, our format.

    ncsn-fast train --config ncsn_fast/assets/digits.yml --data digits --out runs/digits --steps 6000
    python scripts/make_digits_model.py runs/digits/checkpoint_6000.pth            # -> assets/digits_ncsnv2.pth
    ncsn-fast train --config ncsn_fast/assets/digits_ncsnpp.json --data digits --out runs/digits_ncsnpp
    python scripts/make_digits_model.py runs/digits_ncsnpp/checkpoint_4000.pth --model digits-ncsnpp
"""

import argparse
from dataclasses import replace
from pathlib import Path

from ncsn_fast import load_checkpoint, save_checkpoint
from ncsn_fast.config import load_config
from ncsn_fast.digits import BUILTIN_MODELS, builtin_checkpoint


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("checkpoint")
    ap.add_argument("--model", choices=list(BUILTIN_MODELS), default="digits")
    ap.add_argument("--step-lr", type=float, help="NCSNv2: sampling step size to ship (default: digits.yml's)")
    ap.add_argument("--n-steps-each", type=int, help="NCSNv2: Langevin steps per level (default: digits.yml's)")
    ap.add_argument("--out", help="default: the built-in model's file")
    args = ap.parse_args()
    out = args.out or str(builtin_checkpoint(args.model))
    model, cfg, info = load_checkpoint(args.checkpoint, ema=False, return_info=True)
    ema = load_checkpoint(args.checkpoint, ema=True)[0]
    assert info.has_ema, "the run has no EMA weights"
    shadow = {n: p.detach() for n, p in ema.named_parameters() if p.requires_grad}
    if cfg.family != "ncsnpp":
        shipped = load_config(Path(out).parent / "digits.yml")
        s = replace(cfg.sampling, step_lr=args.step_lr or shipped.sampling.step_lr,
                    n_steps_each=args.n_steps_each or shipped.sampling.n_steps_each)
        cfg = cfg.replace(sampling=s)
    save_checkpoint(out, model, cfg, ema_state=shadow, step=info.step)
    print(f"{out}: {cfg.family}, step {info.step}, {Path(out).stat().st_size / 1e6:.2f} MB")


if __name__ == "__main__":
    main()
