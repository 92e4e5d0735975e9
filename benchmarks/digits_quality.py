"""Sample quality of the built-in digits model, reference sampler against the fast one, judged by the digit
classifier (trained on digits the score model never saw).

    python benchmarks/digits_quality.py -n 256

Writes benchmarks/results/digits_quality.md: share classified with confidence >= 0.9, share rejected as
"not a digit", mean confidence, class histogram and seconds, for real held-in digits, the reference sampler
(eager, original algorithm, torch RNG) and the fast sampler (fused ops, Philox stream) in float32 and bfloat16.
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path

import torch

from ncsn_fast import load_checkpoint
from ncsn_fast.digits import builtin_checkpoint, load_digits
from ncsn_fast.hostmem import tune_cpu_allocator
from ncsn_fast.images import inverse_data_transform
from ncsn_fast.quality import load_classifier, score_digits
from ncsn_fast.sampling import sample


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("-n", type=int, default=256)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--out", default="benchmarks/results/digits_quality.md")
    args = ap.parse_args()
    tune_cpu_allocator()  # as ncsn-fast does (NCSN_FAST_MALLOC_TUNING=0: off)
    model, cfg = load_checkpoint(builtin_checkpoint())
    net = load_classifier()
    real = load_digits("train", 16)[0]
    rows = [("real digits (training split)", score_digits(real[: args.n], net), None)]
    for name, kw in [("reference (eager, torch RNG)", dict(method="reference")),
                     ("fast, float32", dict(method="fast")),
                     ("fast, bfloat16 network", dict(method="fast", dtype=torch.bfloat16))]:
        t0 = time.perf_counter()
        x = sample(model, cfg, args.n, seed=args.seed, batch_size=64, progress=False, **kw)
        seconds = time.perf_counter() - t0
        rows.append((name, score_digits(inverse_data_transform(x, cfg), net), seconds))
    s = cfg.sampling
    lines = [f"Built-in digits model ({cfg.arch}, ngf {cfg.model.ngf}, {cfg.model.num_classes} levels, "
             f"{s.n_steps_each} steps each, step_lr {s.step_lr:g}), {args.n} samples each, seed {args.seed}; "
             f"batch 64, {torch.get_num_threads()} CPU threads", "",
             "| samples | confident (>= 0.9) | not a digit | mean confidence | classes 0-9 | seconds |",
             "|---|---:|---:|---:|---|---:|"]
    for name, sc, sec in rows:
        lines.append(f"| {name} | {100 * sc['confident_share']:.1f} % | {100 * sc['not_a_digit_share']:.1f} % | "
                     f"{sc['mean_confidence']:.3f} | {' '.join(map(str, sc['histogram']))} | "
                     f"{'' if sec is None else f'{sec:.1f}'} |")
    lines += ["", f"`python benchmarks/digits_quality.py -n {args.n}`; torch {torch.__version__}"]
    text = "\n".join(lines) + "\n"
    print(text)
    Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    Path(args.out).write_text(text)


if __name__ == "__main__":
    main()
