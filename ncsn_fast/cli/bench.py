"""`ncsn-fast bench`: time the fused ops, the forward and the sampler against eager PyTorch and torch.compile."""

from __future__ import annotations

import shlex

from ..errors import NcsnError
from .args import csv, device_arg, positive_int, positive_int_or


def add_parser(sub) -> None:
    p = sub.add_parser("bench", help="time the fused ops, the network forward and the sampler against eager PyTorch "
                                      "and torch.compile; or measure every sampler's quality against its "
                                      "evaluations (quality); writes JSON + markdown")
    p.add_argument("suite", nargs="?", choices=["ops", "forward", "sampler", "all", "ncsnpp", "quality"],
                   default="all", help="all = ops, forward, sampler (NCSNv2); ncsnpp = NCSN++ forward and "
                   "predictor-corrector sampler at cifar10_ncsnpp_continuous size; quality (not in all: ~2 h on "
                   "2 CPU cores) = every sampler on the exact-score bed and both built-in digits networks, with a plot")
    p.add_argument("--device", default="cpu")
    p.add_argument("--out", default="benchmarks/results", help="results folder (default benchmarks/results)")
    p.add_argument("--quick", action="store_true", help="tiny sizes and few repeats (a smoke test)")
    p.add_argument("--compile", nargs="*", default=[], metavar="MODE",
                   help="also time torch.compile of the network in these modes (default, max-autotune, ...)")
    p.add_argument("--models", type=csv(str), default=None, metavar="M[,M]",
                   help="sampler suite: only these configs (cifar10, celeba); the results file is named after them")
    p.add_argument("--batches", type=csv(positive_int_or("max")), default=None, metavar="B[,B]",
                   help="sampler suite: these batch sizes instead of the built-in ones; 'max': the largest "
                        "power of two that fits in GPU memory")
    p.add_argument("--samplers", type=csv(str), default=None, metavar="S[,S]",
                   help="sampler suite: other samplers to time over a whole run on our fast path (default heun, "
                   "dpmpp-2m; none with --quick)")
    p.add_argument("--variants", type=csv(str), default=None, metavar="V[,V]",
                   help="sampler suite: rows to time, of reference, compile, ours, samplers (default all)")
    p.add_argument("-n", type=positive_int, default=1000, help="quality suite: samples per point (default 1000)")
    p.add_argument("--beds", type=csv(str), default=None, metavar="B[,B]",
                   help="quality suite: these beds only, of exact, digits (NCSNv2), digits-ncsnpp (default all)")
    p.add_argument("--resume", action="store_true",
                   help="quality suite: keep the points the results file holds for the same n and checkpoints")
    p.set_defaults(handler=run)


def run(args) -> int:
    from .. import bench

    device = device_arg(args.device)
    command = "ncsn-fast " + shlex.join(args.argv)
    if args.suite == "quality":
        from ..bench.quality import BEDS, run_and_write
        beds = args.beds or list(BEDS)
        unknown = [b for b in beds if b not in BEDS]
        if unknown:
            raise NcsnError(f"--beds: no bed {', '.join(unknown)}; there are {', '.join(BEDS)}")
        paths = run_and_write(device, args.out, args.n, args.quick, command, beds, args.resume)
        print(paths[1].read_text())
        print("results: " + ", ".join(map(str, paths)))
        return 0
    try:
        json_path, md_path = bench.run(args.suite, args.device, args.out, args.quick, tuple(args.compile), command,
                                       args.models, args.batches, args.samplers, args.variants)
    except ValueError as e:
        raise NcsnError(str(e)) from None
    print(md_path.read_text())
    print(f"results: {json_path}, {md_path}")
    return 0
