"""Turn a digits training run into the built-in model: raw and EMA weights, config embedded, our format.

    ncsn-fast train --config ncsn_fast/assets/digits.yml --data digits --out runs/digits
    python scripts/make_digits_model.py runs/digits/checkpoint.pth [--step-lr 2e-5]
"""

import argparse
from dataclasses import replace
from pathlib import Path

from ncsn_fast import load_checkpoint, save_checkpoint
from ncsn_fast.config import load_config

ASSET = Path(__file__).resolve().parents[1] / "ncsn_fast" / "assets" / "digits_ncsnv2.pth"


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("checkpoint")
    ap.add_argument("--step-lr", type=float, help="sampling step size to ship (default: the run's config)")
    ap.add_argument("--n-steps-each", type=int)
    ap.add_argument("--out", default=str(ASSET))
    args = ap.parse_args()
    model, cfg, info = load_checkpoint(args.checkpoint, ema=False, return_info=True)
    ema = load_checkpoint(args.checkpoint, ema=True)[0]
    assert info.has_ema, "the run has no EMA weights"
    shadow = {n: p.detach() for n, p in ema.named_parameters()}
    shipped = load_config(ASSET.parent / "digits.yml")
    s = replace(cfg.sampling, step_lr=args.step_lr or shipped.sampling.step_lr,
                n_steps_each=args.n_steps_each or shipped.sampling.n_steps_each)
    cfg = cfg.replace(sampling=s)
    save_checkpoint(args.out, model, cfg, ema_state=shadow, step=info.step)
    print(f"{args.out}: step {info.step}, {Path(args.out).stat().st_size / 1e6:.2f} MB, sampling {s}")


if __name__ == "__main__":
    main()
