"""Timing for the benchmarks behind `ncsn-fast bench`: one method, the environment recorded with every table.

Warm-up calls first (compilation, caches), then the median of many timed calls; on a GPU with CUDA events around
each call, on the CPU with perf_counter; inside CUDA graphs for device time alone. Rows compared with each other
are timed in turns (time_interleaved), so that their ratios hold on a machine whose speed drifts.
"""

from __future__ import annotations

import datetime
import platform
import statistics
import subprocess
import time
from collections.abc import Callable
from pathlib import Path

import torch

from .. import hostmem
from ..machine import cpu_features, cpu_model, isa_caps


def environment(device: torch.device) -> dict:
    env = {"timestamp": datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds"),
           "device": str(device), "torch": torch.__version__, "python": platform.python_version(),
           "cpu": cpu_model(), "cpu_features": cpu_features(), "cpu_threads": torch.get_num_threads(),
           "cpu_caps": isa_caps(), "malloc_tuning": hostmem.applied()}
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
        root = Path(__file__).resolve().parents[2]
        sha = subprocess.run(["git", "rev-parse", "--short", "HEAD"], cwd=root, capture_output=True, text=True,
                             timeout=10).stdout.strip() or None
        # code changed since that commit (untracked files and earlier results aside): not that commit's figures
        dirty = subprocess.run(["git", "diff", "--quiet", "HEAD", "--", "ncsn_fast", "benchmarks", "csrc",
                                ":(exclude)benchmarks/results"], cwd=root, capture_output=True,
                               timeout=10).returncode == 1
        env["git_sha"] = f"{sha}+changes" if sha and dirty else sha
    except (OSError, subprocess.SubprocessError):
        env["git_sha"] = None
    return env


def _call_ms(fn: Callable[[], object], device: torch.device) -> float:
    """Milliseconds of one call: CUDA events around it on a GPU, perf_counter on the CPU."""
    if device.type == "cuda":
        start, end = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)
        start.record()
        fn()
        end.record()
        end.synchronize()
        return start.elapsed_time(end)
    t0 = time.perf_counter()
    fn()
    return (time.perf_counter() - t0) * 1e3


def _summary(times: list[float]) -> dict:
    times = sorted(times)
    return {"ms": statistics.median(times), "ms_min": times[0], "ms_p90": times[int(0.9 * (len(times) - 1))],
            "repeat": len(times)}


def time_fn(fn: Callable[[], object], device: torch.device, warmup: int = 3, repeat: int = 20) -> dict:
    """Median and spread of `repeat` timed calls after `warmup` untimed ones, in milliseconds."""
    for _ in range(warmup):
        fn()
    if device.type == "cuda":
        torch.cuda.synchronize(device)
    return _summary([_call_ms(fn, device) for _ in range(repeat)])


def time_interleaved(fns: dict[str, Callable[[], object]], device: torch.device, warmup: int = 2,
                     repeat: int = 20) -> dict[str, dict]:
    """time_fn's figures for each of `fns`, timed in turns (one call of each per round, `repeat` rounds), so that
    a machine whose speed drifts over minutes (shared CPUs, clocks) moves every row alike and their ratios hold."""
    for _ in range(warmup):
        for fn in fns.values():
            fn()
    if device.type == "cuda":
        torch.cuda.synchronize(device)
    times: dict[str, list[float]] = {name: [] for name in fns}
    for _ in range(repeat):
        for name, fn in fns.items():
            times[name].append(_call_ms(fn, device))
    return {name: _summary(t) for name, t in times.items()}


def no_grad_call(fn: Callable, *args) -> Callable[[], object]:
    """fn(*args) without autograd, as a call of no arguments."""
    def call():
        with torch.no_grad():
            return fn(*args)
    return call


def first_call_s(fn: Callable[[], object], device: torch.device) -> float:
    """Seconds of the first call of `fn` (compilation included), without autograd."""
    t0 = time.perf_counter()
    with torch.no_grad():
        fn()
    if device.type == "cuda":
        torch.cuda.synchronize(device)
    return time.perf_counter() - t0


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
