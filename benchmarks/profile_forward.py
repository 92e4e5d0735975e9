"""Where an NCSNv2 forward spends its time, per op type: the eager model (PyTorch's code, as the original)
against ours (fused norm+ELU and pooling ops, channels_last), with torch.profiler.

    python benchmarks/profile_forward.py                      # CPU: ngf 32, batch 64, CIFAR-10 config
    python benchmarks/profile_forward.py --device cuda --ngf 128 --batch 128

Prints a markdown table (self time per op type, share of the forward) and writes it to
benchmarks/results/profile_forward_<device>.md.
"""

from __future__ import annotations

import argparse
import platform
import subprocess
from collections import defaultdict
from pathlib import Path

import torch
from torch.profiler import ProfilerActivity, profile

from ncsn_fast.bench.forward import published_ncsnv2
from ncsn_fast.hostmem import tune_cpu_allocator
from ncsn_fast.models import build_model, set_backend

# Profiler event names -> the op types of the table (anything else is listed under its own name).
GROUPS = {
    **{name: "convolution" for name in ("aten::mkldnn_convolution", "aten::convolution", "aten::_convolution",
                                        "aten::cudnn_convolution", "aten::conv2d", "aten::_slow_conv2d_forward")},
    "aten::max_pool2d_with_indices": "max_pool2d (PyTorch)", "aten::avg_pool2d": "avg_pool2d (PyTorch)",
    "ncsn_fast::pool5x5": "pool5x5 (ours)", "aten::elu": "ELU", "aten::instance_norm": "instance norm (PyTorch)",
    "aten::native_batch_norm": "instance norm (PyTorch)", "aten::_batch_norm_impl_index": "instance norm (PyTorch)",
    "ncsn_fast::instance_norm_plus": "instance norm++ (+ELU) (ours)", "ncsn_fast::elu": "ELU",
    "ncsn_fast::conv3x3": "3x3 convolution (+add, ELU) (ours)", "ncsn_fast::winograd_weights": "Winograd weights",
    "aten::upsample_bilinear2d": "bilinear resize",
    "aten::add": "add", "aten::add_": "add", "aten::div": "div", "aten::mul": "mul", "aten::copy_": "copy",
    "aten::mean": "mean/var", "aten::var": "mean/var", "aten::sub": "sub", "aten::sqrt": "sqrt",
}


def profile_forward(model, x, y, device, repeat: int) -> tuple[dict[str, float], float]:
    """Self time per op type (ms per forward) and the wall time of one forward (ms)."""
    activities = [ProfilerActivity.CPU] + ([ProfilerActivity.CUDA] if device.type == "cuda" else [])
    with torch.no_grad():
        for _ in range(2):
            model(x, y)
        if device.type == "cuda":
            torch.cuda.synchronize()
        with profile(activities=activities) as prof:
            for _ in range(repeat):
                model(x, y)
            if device.type == "cuda":
                torch.cuda.synchronize()
    per_type: dict[str, float] = defaultdict(float)
    for ev in prof.key_averages():
        us = ev.self_device_time_total if device.type == "cuda" else ev.self_cpu_time_total
        if us <= 0:
            continue
        name = GROUPS.get(ev.key, ev.key)
        per_type[name] += us / 1e3 / repeat
    total = sum(per_type.values())
    return dict(per_type), total


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--device", default="cpu")
    ap.add_argument("--ngf", type=int, default=32)
    ap.add_argument("--batch", type=int, default=64)
    ap.add_argument("--repeat", type=int, default=3)
    ap.add_argument("--out", default="benchmarks/results")
    args = ap.parse_args()
    tune_cpu_allocator()  # as ncsn-fast does (NCSN_FAST_MALLOC_TUNING=0: off)
    device = torch.device(args.device)
    torch.manual_seed(0)
    cfg = published_ncsnv2("CIFAR10", args.ngf)
    model = build_model(cfg).to(device).eval()
    x = torch.rand(args.batch, 3, 32, 32, device=device)
    y = torch.randint(0, cfg.model.num_classes, (args.batch,), device=device)

    eager, eager_total = profile_forward(set_backend(model, "torch"), x, y, device, args.repeat)
    fast_model = set_backend(model, "auto").to(memory_format=torch.channels_last)
    ours, ours_total = profile_forward(fast_model, x.to(memory_format=torch.channels_last), y, device, args.repeat)

    rows = sorted(set(eager) | set(ours), key=lambda k: -max(eager.get(k, 0), ours.get(k, 0)))
    shown = [r for r in rows if max(eager.get(r, 0) / eager_total, ours.get(r, 0) / ours_total) >= 0.005]
    lines = [f"NCSNv2 forward, CIFAR-10 config at ngf {args.ngf}, batch {args.batch}, {device}: self time per op type "
             f"(torch.profiler, mean of {args.repeat} forwards)", "",
             "| op type | eager ms | eager % | ours ms | ours % |", "|---|---:|---:|---:|---:|"]
    for r in shown:
        e, o = eager.get(r, 0.0), ours.get(r, 0.0)
        lines.append(f"| {r} | {e:.1f} | {100 * e / eager_total:.1f} | {o:.1f} | {100 * o / ours_total:.1f} |")
    rest_e = eager_total - sum(eager.get(r, 0) for r in shown)
    rest_o = ours_total - sum(ours.get(r, 0) for r in shown)
    lines.append(f"| (other) | {rest_e:.1f} | {100 * rest_e / eager_total:.1f} | {rest_o:.1f} | "
                 f"{100 * rest_o / ours_total:.1f} |")
    lines.append(f"| **total** | **{eager_total:.1f}** | 100 | **{ours_total:.1f}** | 100 |")
    sha = subprocess.run(["git", "rev-parse", "--short", "HEAD"], capture_output=True, text=True).stdout.strip()
    dev = torch.cuda.get_device_name(device) if device.type == "cuda" else f"{platform.processor() or 'CPU'}, " \
        f"{torch.get_num_threads()} threads"
    lines += ["", f"eager: PyTorch ops (reference norms, F.max_pool2d), NCHW; ours: `set_backend(model, 'auto')`, "
              f"channels_last. {dev}; torch {torch.__version__}; git {sha}; "
              f"`python benchmarks/profile_forward.py --device {args.device} --ngf {args.ngf} --batch {args.batch}`"]
    text = "\n".join(lines) + "\n"
    print(text)
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    (out / f"profile_forward_{device.type}.md").write_text(text)


if __name__ == "__main__":
    main()
