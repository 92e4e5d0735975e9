"""Interleaved A/B of one NCSNv2 forward (CIFAR-10 config, random weights): each round runs every variant once,
so the machine's drift hits all alike; medians over the rounds. On a noisy shared CPU this is steadier than
timing one variant after another.

    python benchmarks/forward_ab.py --ngf 32 --batch 64 --rounds 12 [--compile]
"""

from __future__ import annotations

import argparse
import copy
import statistics
import time

import torch

from ncsn_fast.bench.forward import published_ncsnv2
from ncsn_fast.hostmem import applied, tune_cpu_allocator
from ncsn_fast.models import build_model, set_backend


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--ngf", type=int, default=32)
    ap.add_argument("--batch", type=int, default=64)
    ap.add_argument("--rounds", type=int, default=12)
    ap.add_argument("--compile", action="store_true",
                    help="add torch.compile (default mode) of the eager network and of ours (compiled first)")
    args = ap.parse_args()
    tune_cpu_allocator()  # as ncsn-fast does (NCSN_FAST_MALLOC_TUNING=0: off)
    cfg = published_ncsnv2("CIFAR10", args.ngf)
    torch.manual_seed(0)
    eager = build_model(cfg).eval()
    x = torch.rand(args.batch, 3, 32, 32)
    y = torch.randint(0, cfg.model.num_classes, (args.batch,))
    xc = x.to(memory_format=torch.channels_last)

    def fast(**kw):
        return set_backend(copy.deepcopy(eager), "auto", **kw).to(memory_format=torch.channels_last)

    fused, fused_elu, bf16 = fast(fuse_elu=False), fast(), fast().to(torch.bfloat16)
    runs = {"eager (PyTorch ops, as the original)": lambda: eager(x, y),
            "fused ops + channels_last (PyTorch's ELU)": lambda: fused(xc, y),
            "fused ops + channels_last + elu op (CPU default)": lambda: fused_elu(xc, y),
            "fused ops + channels_last, bf16": lambda: bf16(xc.bfloat16(), y)}
    if args.compile:
        compiled_eager, compiled_ours = torch.compile(eager), torch.compile(fast())
        runs["torch.compile (eager network)"] = lambda: compiled_eager(x, y)
        runs["fused ops + channels_last + torch.compile"] = lambda: compiled_ours(xc, y)
    times: dict[str, list[float]] = {k: [] for k in runs}
    with torch.no_grad():
        for f in runs.values():
            f()
        for _ in range(args.rounds):
            for name, f in runs.items():
                t0 = time.perf_counter()
                f()
                times[name].append(time.perf_counter() - t0)
    base = statistics.median(times["eager (PyTorch ops, as the original)"])
    print(f"NCSNv2 ngf {args.ngf}, batch {args.batch}, {torch.get_num_threads()} threads, {args.rounds} rounds, "
          f"malloc tuning {'on' if applied() else 'off'}")
    for name, v in times.items():
        m = statistics.median(v)
        print(f"{name:44s} median {m * 1e3:7.1f} ms (min {min(v) * 1e3:.1f}, max {max(v) * 1e3:.1f})  "
              f"{base / m:.2f}x")


if __name__ == "__main__":
    main()
