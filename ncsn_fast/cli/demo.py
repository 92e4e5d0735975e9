"""`ncsn-fast demo`: the NCSN paper's 2-D Gaussian mixture with its exact score."""

from __future__ import annotations

import time
from pathlib import Path

from .args import check_out_dir, positive_int, seed_arg


def add_parser(sub) -> None:
    p = sub.add_parser("demo", help="the NCSN paper's 2-D Gaussian mixture with its exact score")
    p.add_argument("--out", default="demo", help="output folder (default ./demo)")
    p.add_argument("-n", type=positive_int, default=6000)
    p.add_argument("--seed", type=seed_arg, default=0, help="in [0, 2^63)")
    p.set_defaults(handler=run)


def run(args) -> int:
    import torch

    from ..images import save_png, scatter_plot
    from ..toy import GaussianMixture2D, run_toy

    out = Path(args.out)
    check_out_dir(out)
    mix = GaussianMixture2D()
    t0 = time.perf_counter()
    data = mix.sample(args.n, torch.Generator().manual_seed(args.seed))
    annealed = run_toy(args.n, args.seed, annealed=True, mixture=mix)
    plain = run_toy(args.n, args.seed, annealed=False, mixture=mix)
    seconds = time.perf_counter() - t0
    fa, fp, fd = mix.mode_fraction(annealed), mix.mode_fraction(plain), mix.mode_fraction(data)
    img = scatter_plot([(f"data: {fd:.3f} in (-5,-5)", data.numpy()),
                        (f"annealed Langevin: {fa:.3f}", annealed.numpy()),
                        (f"plain Langevin: {fp:.3f}", plain.numpy())])
    save_png(out / "gmm_langevin.png", img)
    print(f"2-D Gaussian mixture, weights 0.2 / 0.8, {args.n} samples, {seconds:.1f} s\n"
          f"share in the (-5,-5) mode: data {fd:.3f}, annealed Langevin {fa:.3f}, plain Langevin {fp:.3f}\n"
          f"plot: {out / 'gmm_langevin.png'}")
    return 0
