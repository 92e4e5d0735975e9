"""Benchmarks behind `ncsn-fast bench`: one timing method, the environment recorded with every table.

Timing: warm-up calls first (compilation, caches), then the median of many timed calls; on a GPU with
CUDA events around each call, on the CPU with perf_counter. Results go to benchmarks/results/ as JSON
(every row, with device, versions and git SHA) and a markdown table.
"""

from __future__ import annotations

import datetime
import json
import platform
import statistics
import subprocess
import time
from collections.abc import Callable
from functools import partial
from pathlib import Path

import torch
import torch.nn.functional as F

from . import hostmem
from .fileio import atomic_write_bytes
from .machine import cpu_features, cpu_model, feature_text
from .ops._backends import why_not
from .ops.instance_norm_plus import instance_norm_plus_ref


def environment(device: torch.device) -> dict:
    env = {"timestamp": datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds"),
           "device": str(device), "torch": torch.__version__, "python": platform.python_version(),
           "cpu": cpu_model(), "cpu_features": cpu_features(), "cpu_threads": torch.get_num_threads(),
           "malloc_tuning": hostmem.applied()}
    try:
        import triton
        env["triton"] = triton.__version__
    except ImportError:
        env["triton"] = None
    if device.type == "cuda":
        props = torch.cuda.get_device_properties(device)
        env.update(gpu=props.name, sm_count=props.multi_processor_count, cuda=torch.version.cuda,
                   cudnn_tf32=torch.backends.cudnn.allow_tf32)
        try:
            env["driver"] = subprocess.run(["nvidia-smi", "--query-gpu=driver_version", "--format=csv,noheader"],
                                           capture_output=True, text=True, timeout=20).stdout.strip()
        except (OSError, subprocess.SubprocessError):
            env["driver"] = None
    try:
        root = Path(__file__).resolve().parent.parent
        env["git_sha"] = subprocess.run(["git", "rev-parse", "--short", "HEAD"], cwd=root, capture_output=True,
                                        text=True, timeout=10).stdout.strip() or None
    except (OSError, subprocess.SubprocessError):
        env["git_sha"] = None
    return env


def time_fn(fn: Callable[[], object], device: torch.device, warmup: int = 3, repeat: int = 20) -> dict:
    """Median and spread of `repeat` timed calls after `warmup` untimed ones, in milliseconds."""
    for _ in range(warmup):
        fn()
    times = []
    if device.type == "cuda":
        torch.cuda.synchronize(device)
        for _ in range(repeat):
            start, end = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)
            start.record()
            fn()
            end.record()
            end.synchronize()
            times.append(start.elapsed_time(end))
    else:
        for _ in range(repeat):
            t0 = time.perf_counter()
            fn()
            times.append((time.perf_counter() - t0) * 1e3)
    times.sort()
    return {"ms": statistics.median(times), "ms_min": times[0], "ms_p90": times[int(0.9 * (len(times) - 1))],
            "repeat": repeat}


def time_first_call(fn: Callable[[], object], device: torch.device, warmup: int = 2, repeat: int = 20) -> dict:
    """time_fn's figures after one first call (compilation included), with that call's seconds as first_call_s.
    Runs without autograd."""
    t0 = time.perf_counter()
    with torch.no_grad():
        fn()
    if device.type == "cuda":
        torch.cuda.synchronize(device)
    first = time.perf_counter() - t0
    with torch.no_grad():
        return {**time_fn(fn, device, warmup=warmup, repeat=repeat), "first_call_s": first}


def time_graphed(fn: Callable[[], object], device: torch.device, calls: int = 20, repeat: int = 20) -> dict:
    """Device time per call of `fn`: `calls` calls captured in one CUDA graph, its replays timed (no Python or
    launch overhead between the kernels, as inside the graphed sampler). fn must be capturable."""
    side = torch.cuda.Stream(device)
    side.wait_stream(torch.cuda.current_stream(device))
    with torch.cuda.stream(side):  # warm-up outside the capture (Triton compiles, allocator settles)
        for _ in range(2):
            fn()
    torch.cuda.current_stream(device).wait_stream(side)
    graph = torch.cuda.CUDAGraph()
    with torch.cuda.graph(graph):
        for _ in range(calls):
            fn()
    t = time_fn(graph.replay, device, warmup=2, repeat=repeat)
    return {k: (v / calls if k.startswith("ms") else v) for k, v in t.items()}


def copy_bandwidth(device: torch.device, nbytes: int) -> float:
    """Measured device copy bandwidth in GB/s, counting bytes read plus bytes written."""
    x = torch.randn(nbytes // 4, device=device)
    y = torch.empty_like(x)
    t = time_fn(lambda: y.copy_(x), device, warmup=3, repeat=20)
    return 2 * x.numel() * 4 / (t["ms"] * 1e-3) / 1e9


def _eager_langevin_step(x, h, alpha, c, b):
    """What the original sampler runs per step (its score is already scaled: one more op here)."""
    z = torch.randn_like(x)
    return x + alpha * (h * c) + z * b


def _eager_norm_elu(x, gamma, alpha, beta):
    return F.elu(instance_norm_plus_ref(x, gamma, alpha, beta))


def _backends_here(device: torch.device) -> list[str]:
    return [b for b in ("cuda", "triton", "cpu") if why_not(b, device) is None]


def op_rows(op: str, tag: str, nbytes: int, eager: Callable[[], object], ours: Callable[..., object],
            device: torch.device, repeat: int, graphed: bool = False) -> list[dict]:
    """One op at one shape: the eager PyTorch code it replaces, then ours(backend=b) for each backend b here;
    with graphed, both again inside CUDA graphs (device time alone). nbytes: the minimum traffic."""
    timers = [("", partial(time_fn, device=device, repeat=repeat))]
    if graphed:
        timers.append((", in a CUDA graph", partial(time_graphed, device=device)))
    rows = []
    for suffix, timer in timers:
        t_ref = timer(eager)
        rows.append({"op": op, "shape": tag, "backend": "eager torch" + suffix, "ms": t_ref["ms"],
                     "gbs": nbytes / (t_ref["ms"] * 1e-3) / 1e9, "speedup": 1.0})
        for be in _backends_here(device):
            t = timer(partial(ours, backend=be))
            rows.append({"op": op, "shape": tag, "backend": be + suffix, "ms": t["ms"],
                         "gbs": nbytes / (t["ms"] * 1e-3) / 1e9, "speedup": t_ref["ms"] / t["ms"]})
    return rows


def bench_ops(device: torch.device, quick: bool = False) -> list[dict]:
    """langevin_step_, instance_norm_plus, pool5x5 and elu against the eager PyTorch code they replace."""
    from .ops import elu, instance_norm_plus, langevin_coefs, langevin_step_, pool5x5

    gpu = device.type == "cuda"
    repeat = 5 if quick else (50 if gpu else 15)
    rows = []
    copy_gbs = copy_bandwidth(device, (256 if gpu else 64) << 20 if not quick else 8 << 20)
    rows.append({"op": "copy (x.copy_)", "shape": "-", "backend": "torch", "gbs": copy_gbs})

    lshapes = [(4, 3, 32, 32)] if quick else ([(128, 3, 32, 32), (1024, 3, 32, 32), (128, 3, 64, 64)] if gpu
                                                else [(64, 3, 32, 32), (256, 3, 32, 32)])
    for shape in lshapes:
        n = shape[0]
        x = torch.randn(shape, device=device)
        h = torch.randn(shape, device=device)
        ids = torch.arange(n, device=device)
        coefs = langevin_coefs(0.01, 2.0, device=device)
        nbytes = x.numel() * (4 + 4 + 4)  # read x, read h, write x
        t_ref = time_fn(partial(_eager_langevin_step, x, h, 0.01, 2.0, 0.2 ** 0.5), device, repeat=repeat)
        rows.append({"op": "langevin_step", "shape": str(shape), "backend": "eager torch (randn + 4 ops)",
                     "ms": t_ref["ms"], "gbs": nbytes / (t_ref["ms"] * 1e-3) / 1e9, "speedup": 1.0})
        for be in _backends_here(device):
            t = time_fn(partial(langevin_step_, x, h, coefs, seed=0, step=1, sample_ids=ids, backend=be),
                        device, repeat=repeat)
            rows.append({"op": "langevin_step", "shape": str(shape), "backend": be, "ms": t["ms"],
                         "gbs": nbytes / (t["ms"] * 1e-3) / 1e9, "speedup": t_ref["ms"] / t["ms"]})
        if gpu and not quick:  # device time alone, as inside the graphed sampler (seed and step on the device)
            seed_t, step_t = (torch.tensor([v], device=device) for v in (0, 1))
            g_ref = time_graphed(partial(_eager_langevin_step, x, h, 0.01, 2.0, 0.2 ** 0.5), device)
            rows.append({"op": "langevin_step", "shape": str(shape), "backend": "eager torch, in a CUDA graph",
                         "ms": g_ref["ms"], "gbs": nbytes / (g_ref["ms"] * 1e-3) / 1e9, "speedup": 1.0})
            for be in _backends_here(device):
                t = time_graphed(partial(langevin_step_, x, h, coefs, seed=seed_t, step=step_t, sample_ids=ids,
                                         backend=be), device)
                rows.append({"op": "langevin_step", "shape": str(shape), "backend": f"{be}, in a CUDA graph",
                             "ms": t["ms"], "gbs": nbytes / (t["ms"] * 1e-3) / 1e9, "speedup": g_ref["ms"] / t["ms"]})

    nshapes = [(2, 8, 8, 8)] if quick else ([(128, 128, 32, 32), (128, 256, 16, 16), (16, 128, 64, 64)] if gpu
                                             else [(64, 32, 32, 32), (8, 128, 32, 32), (64, 64, 16, 16)])
    for shape in nshapes:
        for layout in ("nchw", "nhwc"):
            x = torch.randn(shape, device=device) + 0.5
            if layout == "nhwc":
                x = x.to(memory_format=torch.channels_last)
            cdim = shape[1]
            gamma, alpha_, beta = (torch.rand(cdim, device=device) + 0.5 for _ in range(3))
            rows += op_rows("instance_norm_plus+elu", f"{shape} {layout}", 2 * x.numel() * 4,
                            partial(_eager_norm_elu, x, gamma, alpha_, beta),
                            partial(instance_norm_plus, x, gamma, alpha_, beta, elu=True),
                            device, repeat, graphed=gpu and not quick)
    # The same shapes for the CRP pooling (max: NCSNv2, avg: NCSN v1) and the ELU: one read, one write.
    eager_ops = {"pool5x5 max": partial(F.max_pool2d, kernel_size=5, stride=1, padding=2),
                 "pool5x5 avg": partial(F.avg_pool2d, kernel_size=5, stride=1, padding=2), "elu": F.elu}
    ours = {"pool5x5 max": partial(pool5x5, mode="max"), "pool5x5 avg": partial(pool5x5, mode="avg"), "elu": elu}
    for op in eager_ops:
        for shape in nshapes:
            for layout in ("nchw", "nhwc"):
                x = torch.randn(shape, device=device)
                if layout == "nhwc":
                    x = x.to(memory_format=torch.channels_last)
                rows += op_rows(op, f"{shape} {layout}", 2 * x.numel() * 4, partial(eager_ops[op], x),
                                partial(ours[op], x), device, repeat)
    for r in rows:
        if "gbs" in r:
            r["pct_copy_bw"] = 100 * r["gbs"] / copy_gbs
    return rows


# The published NCSNv2 configs the benchmarks use (ncsnv2 configs/cifar10.yml and configs/celeba.yml).
PUBLISHED = {
    "CIFAR10": dict(image_size=32, num_classes=232, sigma_begin=50, step_lr=6.2e-6),
    "CELEBA": dict(image_size=64, num_classes=500, sigma_begin=90, step_lr=3.3e-6),
}


def published_ncsnv2(dataset: str, ngf: int):
    """A published NCSNv2 config at the given ngf (random weights are enough for timing)."""
    from .config import config_from_dict
    p = PUBLISHED[dataset]
    return config_from_dict({
        "data": {"dataset": dataset, "image_size": p["image_size"], "channels": 3},
        "model": {"ngf": ngf, "num_classes": p["num_classes"], "sigma_begin": p["sigma_begin"], "sigma_end": 0.01,
                  "sigma_dist": "geometric", "ema": True},
        "sampling": {"n_steps_each": 5, "step_lr": p["step_lr"], "denoise": True}})


def bench_forward(device: torch.device, quick: bool = False, compile_modes: tuple[str, ...] = (),
                  rows: list[dict] | None = None, flush: Callable[[], None] = lambda: None) -> list[dict]:
    """One NCSNv2 forward (CIFAR-10 config, random weights): eager reference vs fused ops, channels_last, bf16,
    and optionally torch.compile (time to first call recorded)."""
    from .models import build_model, set_backend

    gpu = device.type == "cuda"
    if quick:
        cases = [(8, 2)]
    elif gpu:
        cases = [(128, 1), (128, 16), (128, 128)]
    else:
        cases = [(32, 64), (128, 8)]
    repeat = 3 if quick else (20 if gpu else 5)
    rows = [] if rows is None else rows
    for ngf, batch in cases:
        torch.manual_seed(0)
        model = build_model(published_ncsnv2("CIFAR10", ngf)).to(device).eval()
        x = torch.rand(batch, 3, 32, 32, device=device)
        y = torch.randint(0, 232, (batch,), device=device)
        variants = [("eager (PyTorch ops, as the original)", "torch", False, torch.float32, False),
                    ("eager channels_last", "torch", True, torch.float32, False),
                    ("fused ops", "auto", False, torch.float32, False),
                    ("fused ops + channels_last", "auto", True, torch.float32, False),
                    ("fused ops + channels_last + elu op", "auto", True, torch.float32, True),
                    ("fused ops + channels_last, bf16", "auto", True, torch.bfloat16, None)]
        base = None
        for name, backend, cl, dtype, fuse_elu in variants:
            set_backend(model, backend, fuse_elu=fuse_elu)
            m = model.to(memory_format=torch.channels_last) if cl else model.to(memory_format=torch.contiguous_format)
            m = m.to(dtype)
            xin = (x.to(memory_format=torch.channels_last) if cl else x).to(dtype)
            with torch.no_grad():
                t = time_fn(partial(m, xin, y), device, warmup=2, repeat=repeat)
            model = model.float()
            base = base or t["ms"]
            rows.append({"model": f"NCSNv2 ngf {ngf}", "batch": batch, "variant": name, "ms": t["ms"],
                         "images_per_s": batch / (t["ms"] * 1e-3), "speedup": base / t["ms"]})
        # torch.compile of the eager network, and of ours (our ops compose with it: both together)
        xc = x.to(memory_format=torch.channels_last)
        for mode in compile_modes:
            for name, backend, fmt, xin in ((f"torch.compile ({mode})", "torch", torch.contiguous_format, x),
                                            (f"fused ops + channels_last + torch.compile ({mode})", "auto",
                                             torch.channels_last, xc)):
                torch._dynamo.reset()
                set_backend(model, backend)
                compiled = torch.compile(model.to(memory_format=fmt), mode=None if mode == "default" else mode)
                t = time_first_call(partial(compiled, xin, y), device, repeat=repeat)
                rows.append({"model": f"NCSNv2 ngf {ngf}", "batch": batch, "variant": name, "ms": t["ms"],
                             "images_per_s": batch / (t["ms"] * 1e-3), "speedup": base / t["ms"],
                             "first_call_s": t["first_call_s"]})
        set_backend(model, "torch")
        flush()  # the results so far, in case a time limit stops the run
    return rows


def markdown_table(rows: list[dict], columns: list[tuple[str, str, str]]) -> str:
    """columns: (key, header, format)."""
    lines = ["| " + " | ".join(h for _, h, _ in columns) + " |", "|" + "---|" * len(columns)]
    for r in rows:
        cells = []
        for key, _, fmt in columns:
            v = r.get(key)
            cells.append("" if v is None else (format(v, fmt) if fmt else str(v)))
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines)


OPS_COLUMNS = [("op", "op", ""), ("shape", "shape", ""), ("backend", "backend", ""), ("ms", "ms (median)", ".4f"),
               ("gbs", "GB/s", ".1f"), ("pct_copy_bw", "% of copy", ".0f"), ("speedup", "vs eager", ".2f")]
SAMPLER_COLUMNS = [("model", "model", ""), ("batch", "batch", ""), ("variant", "variant", ""),
                   ("ms_per_step", "ms / step", ".2f"), ("evals", "evals / image", ""),
                   ("images_per_s", "images/s (full run)", ".3g"),
                   ("speedup", "vs eager", ".2f"), ("first_call_s", "first call s", ".1f"),
                   ("peak_mem_gb", "peak GB", ".2f")]
NCSNPP_SAMPLER_COLUMNS = [("model", "model", ""), ("batch", "batch", ""), ("variant", "variant", ""),
                          ("ms_per_step", "ms / evaluation", ".2f"), ("evals", "evaluations timed", ""),
                          ("images_per_s", "images/s (2,000-evaluation run)", ".3g"), ("speedup", "vs eager", ".2f")]
FORWARD_COLUMNS = [("model", "model", ""), ("batch", "batch", ""), ("variant", "variant", ""),
                   ("ms", "ms / forward", ".2f"), ("images_per_s", "images/s", ".1f"),
                   ("speedup", "vs eager", ".2f"), ("first_call_s", "first call s", ".1f")]


def write_results(name: str, env: dict, sections: dict[str, list[dict]], out_dir: str | Path,
                  command: str) -> tuple[Path, Path]:
    out_dir = Path(out_dir)
    slug = env.get("gpu") or f"cpu{env['cpu_threads']}t"
    slug = "".join(ch if ch.isalnum() else "-" for ch in slug).strip("-").lower()
    stem = out_dir / f"{name}_{slug}"
    payload = {"command": command, "environment": env, **sections}
    atomic_write_bytes(stem.with_suffix(".json"), json.dumps(payload, indent=1).encode())
    md = [f"# {name} benchmark: {env.get('gpu') or env['cpu']} ({env['device']})", "",
          f"`{command}` — {env['timestamp']}, git {env.get('git_sha')}, torch {env['torch']}, "
          f"triton {env.get('triton')}, python {env['python']}, {env['cpu_threads']} CPU threads of {env['cpu']} "
          f"({feature_text(env['cpu_features'])})"
          f"{', malloc tuned' if env.get('malloc_tuning') else ''}"
          + (f", CUDA {env.get('cuda')}, driver {env.get('driver')}, cuDNN TF32 "
             f"{'on' if env.get('cudnn_tf32') else 'off'}" if env.get("gpu") else ""), ""]
    if sections.get("ops"):
        md += ["## Fused ops", "", markdown_table(sections["ops"], OPS_COLUMNS), ""]
    if sections.get("forward"):
        md += ["## Network forward", "", markdown_table(sections["forward"], FORWARD_COLUMNS), ""]
    if sections.get("sampler"):
        md += ["## Annealed Langevin sampler", "", markdown_table(sections["sampler"], SAMPLER_COLUMNS), ""]
    if sections.get("ncsnpp_ops"):
        md += ["## NCSN++ fused ops", "", markdown_table(sections["ncsnpp_ops"], OPS_COLUMNS), ""]
    if sections.get("ncsnpp_forward"):
        md += ["## NCSN++ forward", "", markdown_table(sections["ncsnpp_forward"], FORWARD_COLUMNS), ""]
    if sections.get("ncsnpp_sampler"):
        md += ["## NCSN++ predictor-corrector sampler", "",
               markdown_table(sections["ncsnpp_sampler"], NCSNPP_SAMPLER_COLUMNS), ""]
    atomic_write_bytes(stem.with_suffix(".md"), "\n".join(md).encode())
    return stem.with_suffix(".json"), stem.with_suffix(".md")


def run(suite: str = "all", device: str = "cpu", out_dir: str | Path = "benchmarks/results", quick: bool = False,
        compile_modes: tuple[str, ...] = (), command: str = "", models: tuple[str, ...] | None = None,
        batches: tuple[int | str, ...] | None = None, samplers: tuple[str, ...] | None = None,
        variants: tuple[str, ...] | None = None) -> tuple[Path, Path]:
    dev = torch.device(device)
    name = suite + "".join(f"-{m}" for m in models or ()) + (f"-b{'-'.join(map(str, batches))}" if batches else "")
    name += "-quick" if quick else ""
    env, command = environment(dev), command or f"ncsn-fast bench {suite}"
    sections: dict[str, list[dict]] = {}

    def flush():  # written after every case: a run stopped by a time limit keeps what it measured
        return write_results(name, env, sections, out_dir, command)

    if suite in ("ops", "all"):
        sections["ops"] = bench_ops(dev, quick)
        flush()
    if suite in ("forward", "all"):
        bench_forward(dev, quick, compile_modes, rows=sections.setdefault("forward", []), flush=flush)
    if suite in ("sampler", "all"):
        from .bench_sampler import bench_sampler
        bench_sampler(dev, quick, compile_modes, models, batches, rows=sections.setdefault("sampler", []),
                      flush=flush, samplers=samplers, variants=variants)
    if suite == "ncsnpp":
        from .bench_ncsnpp import bench_group_norm_act, bench_ncsnpp
        sections["ncsnpp_ops"] = bench_group_norm_act(dev, quick)
        flush()
        bench_ncsnpp(dev, quick, compile_modes, rows=sections.setdefault("ncsnpp_forward", []),
                     sampler_rows=sections.setdefault("ncsnpp_sampler", []), flush=flush)
    return flush()
