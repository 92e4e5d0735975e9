"""The fused ops against the eager PyTorch code they replace: the Langevin row of the sampler update, instance
norm++ with its ELU, the 5x5 pooling, the ELU (NCSN / NCSNv2) and GroupNorm + SiLU (NCSN++); GB/s against the
device's measured copy bandwidth, and inside CUDA graphs on a GPU (device time alone)."""

from __future__ import annotations

from collections.abc import Callable
from functools import partial

import torch
import torch.nn.functional as F

from ..ops._backends import why_not
from ..ops.instance_norm_plus import instance_norm_plus_ref
from .timing import copy_bandwidth, time_fn, time_graphed


def _eager_langevin_step(x, h, alpha, c, b):
    """What the original sampler runs per step (its score is already scaled: one more op here)."""
    z = torch.randn_like(x)
    return x + alpha * (h * c) + z * b


def _eager_norm_elu(x, gamma, alpha, beta):
    return F.elu(instance_norm_plus_ref(x, gamma, alpha, beta))


def _input(shape: tuple[int, ...], layout: str, device: torch.device, offset: float = 0.0) -> torch.Tensor:
    """A normal input of `shape` (+ offset) in layout 'nchw' or 'nhwc' (channels_last)."""
    x = torch.randn(shape, device=device) + offset
    return x.to(memory_format=torch.channels_last) if layout == "nhwc" else x


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
    """The Langevin row of sampler_update_ (annealed Langevin's fused update), instance_norm_plus, pool5x5 and elu
    against the eager PyTorch code they replace."""
    from ..ops import elu, instance_norm_plus, langevin_coefs, pool5x5, sampler_update_

    gpu = device.type == "cuda"
    repeat = 5 if quick else (50 if gpu else 15)
    rows = []
    copy_gbs = copy_bandwidth(device, (256 if gpu else 64) << 20 if not quick else 8 << 20)
    rows.append({"op": "copy (x.copy_)", "shape": "-", "backend": "torch", "gbs": copy_gbs})

    lshapes = [(4, 3, 32, 32)] if quick else ([(128, 3, 32, 32), (1024, 3, 32, 32), (128, 3, 64, 64)] if gpu
                                                else [(64, 3, 32, 32), (256, 3, 32, 32)])
    for shape in lshapes:
        n = shape[0]
        x, h = torch.randn(shape, device=device), torch.randn(shape, device=device)
        p = torch.zeros_like(x)
        ids = torch.arange(n, device=device)
        coefs, mult = langevin_coefs(0.01, 2.0, device=device), torch.ones(n, 2, device=device)
        seed_t, step_t = (torch.tensor([v], device=device) for v in (0, 1))
        rows += op_rows("langevin row (sampler_update_)", str(shape), x.numel() * (4 + 4 + 4),  # read x, h; write x
                        partial(_eager_langevin_step, x, h, 0.01, 2.0, 0.2 ** 0.5),
                        partial(sampler_update_, x, p, h, coefs, mult, seed=seed_t, step=step_t, sample_ids=ids),
                        device, repeat, graphed=gpu and not quick)

    nshapes = [(2, 8, 8, 8)] if quick else ([(128, 128, 32, 32), (128, 256, 16, 16), (16, 128, 64, 64)] if gpu
                                             else [(64, 32, 32, 32), (8, 128, 32, 32), (64, 64, 16, 16)])
    for shape in nshapes:
        for layout in ("nchw", "nhwc"):
            x = _input(shape, layout, device, 0.5)
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
                x = _input(shape, layout, device)
                rows += op_rows(op, f"{shape} {layout}", 2 * x.numel() * 4, partial(eager_ops[op], x),
                                partial(ours[op], x), device, repeat)
    for r in rows:
        if "gbs" in r:
            r["pct_copy_bw"] = 100 * r["gbs"] / copy_gbs
    return rows


def _eager_gn_silu(x, w, b, e, groups):
    return torch.nn.functional.silu(torch.nn.functional.group_norm(x + e[:, :, None, None], groups, w, b, 1e-6))


def bench_group_norm_act(device: torch.device, quick: bool = False) -> list[dict]:
    """group_norm_act (embedding add + GroupNorm + SiLU, NCSN++'s second norm of a block) against the three
    eager PyTorch ops it replaces; on a GPU also inside CUDA graphs (device time alone)."""
    from ..ops import group_norm_act

    gpu = device.type == "cuda"
    repeat = 5 if quick else (50 if gpu else 15)
    copy_gbs = copy_bandwidth(device, (256 if gpu else 64) << 20 if not quick else 8 << 20)
    rows = [{"op": "copy (x.copy_)", "shape": "-", "backend": "torch", "gbs": copy_gbs}]
    shapes = [(2, 16, 8, 8)] if quick else ([(128, 128, 32, 32), (128, 256, 16, 16), (16, 256, 64, 64)] if gpu
                                            else [(8, 128, 32, 32), (8, 256, 16, 16)])
    for shape in shapes:
        for layout in ("nchw", "nhwc"):
            x = _input(shape, layout, device, 0.5)
            c = shape[1]
            w, b, e = torch.rand(c, device=device) + 0.5, torch.randn(c, device=device), torch.randn(shape[:2],
                                                                                                   device=device)
            groups = min(c // 4, 32)
            rows += op_rows("add+group_norm+silu", f"{shape} {layout}", 2 * x.numel() * 4,
                            partial(_eager_gn_silu, x, w, b, e, groups),
                            partial(group_norm_act, x, w, b, groups, 1e-6, e, True),
                            device, repeat, graphed=gpu and not quick)
    for r in rows:
        r["pct_copy_bw"] = 100 * r["gbs"] / copy_gbs
    return rows
