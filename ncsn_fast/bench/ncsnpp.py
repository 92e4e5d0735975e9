"""NCSN++ rows of `ncsn-fast bench ncsnpp`: the network forward and the predictor-corrector sampler at the size of
the published cifar10_ncsnpp_continuous (62.7M parameters; random weights are enough for timing), eager PyTorch
as the score-SDE code runs it against torch.compile and our fast path.

Forward: eager (NCHW, float32), eager channels_last, ours (fused group_norm_act with the embedding add and SiLU,
attention through scaled_dot_product_attention, channels_last), ours in bfloat16, and with --compile
torch.compile of the eager network and of ours. Sampler: milliseconds per network evaluation of the score-SDE
code's own predictor-corrector loop (score_sde.pc_sampler: eager, batch-mean corrector steps) against ours (the
pc table on the fast network, per-sample steps, CUDA graphs on a GPU); a run of the published sampler costs
2,000 evaluations per image (N = 1000 levels, one corrector step each).
"""

from __future__ import annotations

from collections.abc import Callable
from functools import partial

import torch

from .timing import first_call_s, no_grad_call, time_interleaved


def ncsnpp_model(quick: bool, device: torch.device, name: str = "cifar10_ncsnpp_continuous"):
    """(random-weight NCSN++ of a published config, its config, a label); quick: nf 16, one block per level."""
    import copy

    from ..config import published_ncsnpp_configs
    from ..models.ncsnpp import NCSNpp
    cfg = copy.deepcopy(published_ncsnpp_configs()[name])
    if quick:
        cfg["model"].update(nf=16, num_res_blocks=1)
    torch.manual_seed(0)
    model = NCSNpp(cfg)
    with torch.no_grad():
        for p in model.parameters():
            if p.requires_grad:
                p.normal_(0, 0.02)  # the original initialises several layers to zero: timing needs no zeros
    m = cfg["model"]
    label = f"NCSN++ {name}" + (f" (nf {m['nf']}, {m['num_res_blocks']} blocks)" if quick else "")
    return model.to(device).eval(), cfg, label


def bench_ncsnpp(device: torch.device, quick: bool = False, compile_modes: tuple[str, ...] = (),
                 rows: list[dict] | None = None, sampler_rows: list[dict] | None = None,
                 flush: Callable[[], None] = lambda: None) -> tuple[list[dict], list[dict]]:
    from ..models.fast_copy import fast_copy
    from .peak import forward_flops, forward_rows

    gpu = device.type == "cuda"
    rows = [] if rows is None else rows
    sampler_rows = [] if sampler_rows is None else sampler_rows
    model, cfg, label = ncsnpp_model(quick, device)
    size = cfg["data"]["image_size"]
    batches = [2] if quick else ([16, 128] if gpu else [8])
    repeat = 2 if quick else (20 if gpu else 3)
    for batch in batches:
        x = torch.rand(batch, 3, size, size, device=device)
        sigma = torch.full((batch,), 5.0, device=device)
        flops = forward_flops(model, x, sigma)
        gpu_name = torch.cuda.get_device_name(device) if gpu else None
        variants = [("eager (PyTorch ops, as the score-SDE code)", "torch", False, torch.float32),
                    ("eager channels_last", "torch", True, torch.float32),
                    ("ours: fused ops + channels_last", "auto", True, torch.float32),
                    ("ours: fused ops + channels_last, bf16", "auto", True, torch.bfloat16)]
        calls, dtypes, first = {}, {}, {}
        for name, backend, cl, dtype in variants:
            m = fast_copy(model, device, dtype, cl, backend)
            xin = x.to(dtype=dtype, memory_format=torch.channels_last if cl else torch.contiguous_format)
            calls[name], dtypes[name] = no_grad_call(m, xin, sigma), dtype
            first[name] = first_call_s(calls[name], device)
        for mode in compile_modes:
            for name, backend, cl in ((f"torch.compile ({mode})", "torch", False),
                                      (f"ours + torch.compile ({mode})", "auto", True)):
                m = fast_copy(model, device, torch.float32, cl, backend, compile_mode=mode)
                xin = x.to(memory_format=torch.channels_last if cl else torch.contiguous_format)
                calls[name], dtypes[name] = no_grad_call(m, xin, sigma), torch.float32
                first[name] = first_call_s(calls[name], device)
                flush()
        times = time_interleaved(calls, device, warmup=1, repeat=repeat)
        rows += forward_rows(label, batch, times, first, dtypes, flops, gpu_name)
        flush()
        _sampler_rows(model, cfg, label, device, batch, 2 if quick else (10 if gpu else 2), repeat, sampler_rows,
                      compile_modes)
        flush()
    return rows, sampler_rows


def _sampler_rows(model, cfg, label, device, batch, levels, repeat, rows, compile_modes):
    """ms per network evaluation over `levels` predictor-corrector levels (2 evaluations each), and what a run
    of the published sampler (N = num_scales levels) would take per image at that rate."""
    from ..config import ScoreSdeConfig
    from ..models.fast_copy import fast_copy
    from ..sampling import Sampler, SamplerSettings
    from ..sampling.score_sde import VESDE, pc_sampler

    m, size = cfg["model"], cfg["data"]["image_size"]
    snr, published_evals = cfg["sampling"]["snr"], 2 * m["num_scales"]
    shape = (batch, 3, size, size)

    def reference(net):
        sde = VESDE(m["sigma_min"], m["sigma_max"], levels)
        return pc_sampler(net, shape, sde, snr=snr, denoise=False, continuous=True,
                          generator=torch.Generator().manual_seed(0), x=torch.randn(shape, device=device))

    runs = [("eager (score-SDE pc_sampler, as written)", partial(reference, model), 2 * levels)]
    for mode in compile_modes:
        runs.append((f"torch.compile ({mode}) in pc_sampler",
                     partial(reference, fast_copy(model, device, torch.float32, False, "torch", mode)), 2 * levels))
    fs = Sampler(model, ScoreSdeConfig(cfg), SamplerSettings("pc", steps=levels, snr=snr, denoise=False),
                        device=device)
    ids = torch.arange(batch)
    runs.append(("ours: pc table, fused update" + (", CUDA graphs" if fs.graph else ""), partial(fs, ids),
                 fs.evals))
    times = time_interleaved({name: no_grad_call(fn) for name, fn, _ in runs}, device, warmup=1, repeat=repeat)
    base = None
    for name, _, evals in runs:
        per_eval = times[name]["ms"] / evals
        base = base or per_eval
        rows.append({"model": label, "batch": batch, "variant": name, "ms_per_step": per_eval, "evals": evals,
                     "images_per_s": batch / (per_eval * published_evals * 1e-3), "speedup": base / per_eval})
