"""`ncsn-fast bench <suite>`: which suites run, and their results written after every case."""

from __future__ import annotations

from pathlib import Path

import torch

from .forward import bench_forward
from .ncsnpp import bench_ncsnpp
from .ops import bench_group_norm_act, bench_ops
from .results import write_results
from .sampler import bench_sampler
from .timing import environment


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
        bench_sampler(dev, quick, compile_modes, models, batches, rows=sections.setdefault("sampler", []),
                      flush=flush, samplers=samplers, variants=variants)
    if suite == "ncsnpp":
        sections["ncsnpp_ops"] = bench_group_norm_act(dev, quick)
        flush()
        bench_ncsnpp(dev, quick, compile_modes, rows=sections.setdefault("ncsnpp_forward", []),
                     sampler_rows=sections.setdefault("ncsnpp_sampler", []), flush=flush)
    return flush()
