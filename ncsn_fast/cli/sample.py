"""`ncsn-fast sample`: draw samples from a checkpoint (default: the built-in digits model), write a grid and an .npz."""

from __future__ import annotations

import time
import warnings
from pathlib import Path

import yaml

from ..errors import NcsnError
from .args import (
    CHECKPOINT_HELP,
    add_checkpoint_args,
    add_compile_arg,
    add_sampler_args,
    builtin_model,
    check_out_dir,
    device_arg,
    dtype_arg,
    evaluations_line,
    load_model,
    positive_int,
    sampler_settings,
    seed_arg,
)


def add_parser(sub) -> None:
    p = sub.add_parser("sample", help="draw samples from a checkpoint (default: the built-in digits model): "
                       "a PNG grid and an .npz")
    p.add_argument("--checkpoint", help=CHECKPOINT_HELP + " (whose samples are then scored by a digit classifier)")
    add_checkpoint_args(p)
    p.add_argument("-n", type=positive_int, default=64, help="number of samples (default 64)")
    p.add_argument("--seed", type=seed_arg, default=0, help="in [0, 2^63)")
    p.add_argument("--out", default="samples", help="output folder (samples.png, samples.npz, config.yml; "
                   "default ./samples)")
    p.add_argument("--batch-size", type=positive_int, help="default: the config's sampling batch size")
    add_sampler_args(p)
    p.add_argument("--device", default="cpu")
    p.add_argument("--reference", action="store_true",
                   help="the algorithm as written, eager, torch RNG (for ald: in the original order, reproducing "
                   "the original code's samples for a seed); default: the fast path (fused ops, CUDA graphs on a "
                   "GPU)")
    p.add_argument("--dtype", choices=["auto", "float32", "bfloat16", "float16"], default="auto",
                   help="network precision on the fast path (the sampler's state stays float32); auto: bfloat16 "
                   "on a CPU that computes it natively (AVX512_BF16 / AMX), float32 elsewhere")
    p.add_argument("--backend", default="auto", choices=["auto", "cuda", "triton", "cpu", "torch"],
                   help="fused-op backend on the fast path")
    add_compile_arg(p)
    p.add_argument("--quiet", action="store_true", help="no progress bar")
    p.set_defaults(handler=run)


def run(args) -> int:
    import torch

    from ..fileio import atomic_write_bytes
    from ..images import (
        inverse_data_transform,
        make_grid,
        save_npz,
        save_png,
        to_uint8_nhwc,
    )
    from ..machine import SlowDtypeWarning
    from ..sampling import draw, make_sampler

    out = Path(args.out)
    check_out_dir(out)
    device = device_arg(args.device)
    builtin = builtin_model(args)
    model, cfg, info = load_model(args)
    dtype, why = dtype_arg(args.dtype, device, cfg)
    settings = sampler_settings(args, cfg)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", SlowDtypeWarning)  # dtype_arg said it, once
        try:
            runner = make_sampler(model.to(device), cfg, sampler=settings, seed=args.seed, device=device,
                                  method="reference" if args.reference else "fast", dtype=dtype, backend=args.backend,
                                  compile_mode=args.compile)
        except ValueError as e:
            raise NcsnError(str(e)) from None
        t0 = time.perf_counter()
        x = draw(runner, args.n, batch_size=args.batch_size, progress=not args.quiet)
    seconds = time.perf_counter() - t0
    images = to_uint8_nhwc(inverse_data_transform(x, cfg))
    save_npz(out / "samples.npz", images)
    save_png(out / "samples.png", make_grid(images))
    atomic_write_bytes(out / "config.yml", yaml.safe_dump(cfg.to_dict(), sort_keys=False).encode())
    path = "reference path" if args.reference else f"fast path, {str(dtype).removeprefix('torch.')}" + \
        (f" ({why})" if args.dtype == "auto" else "") + (f", torch.compile {args.compile}" if args.compile else "")
    what = f"the built-in {builtin} model" if builtin else info.config_source
    print(f"{args.n} samples of {cfg.arch} ({what}, {path}) in {seconds:.1f} s -> "
          f"{out / 'samples.png'}, {out / 'samples.npz'} (uint8 {tuple(images.shape)})\nsampler: {runner.summary}")
    counts = getattr(runner, "sample_evals", None)
    if counts:
        counts = torch.cat(counts)
        print(evaluations_line(int(counts.sum()), len(counts), int(counts.min()), int(counts.max())))
    if builtin:
        from ..quality import describe, score_digits
        print(describe(score_digits(torch.from_numpy(images))))
    return 0
