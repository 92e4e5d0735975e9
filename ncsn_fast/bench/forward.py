"""One NCSNv2 forward (published configs, random weights): eager against our fused ops, channels_last, bf16 and
torch.compile."""

from __future__ import annotations

import copy
from collections.abc import Callable

import torch

from .timing import first_call_s, no_grad_call, time_interleaved

# The published NCSNv2 configs the benchmarks use (ncsnv2 configs/cifar10.yml and configs/celeba.yml).
PUBLISHED = {
    "CIFAR10": dict(image_size=32, num_classes=232, sigma_begin=50, step_lr=6.2e-6),
    "CELEBA": dict(image_size=64, num_classes=500, sigma_begin=90, step_lr=3.3e-6),
}


def published_ncsnv2(dataset: str, ngf: int):
    """A published NCSNv2 config at the given ngf (random weights are enough for timing)."""
    from ..config import config_from_dict
    p = PUBLISHED[dataset]
    return config_from_dict({
        "data": {"dataset": dataset, "image_size": p["image_size"], "channels": 3},
        "model": {"ngf": ngf, "num_classes": p["num_classes"], "sigma_begin": p["sigma_begin"], "sigma_end": 0.01,
                  "sigma_dist": "geometric", "ema": True},
        "sampling": {"n_steps_each": 5, "step_lr": p["step_lr"], "denoise": True}})


def bench_forward(device: torch.device, quick: bool = False, compile_modes: tuple[str, ...] = (),
                  rows: list[dict] | None = None, flush: Callable[[], None] = lambda: None) -> list[dict]:
    """One NCSNv2 forward (CIFAR-10 config, random weights): eager reference vs fused ops, channels_last, bf16,
    and optionally torch.compile; per case, every row's first call (compilation included) and then every row
    timed in turns."""
    from ..models import build_model, set_backend
    from ..models.fast_copy import fast_copy
    from .peak import forward_flops, forward_rows

    gpu = device.type == "cuda"
    if quick:
        cases = [(8, 2)]
    elif gpu:
        cases = [(128, 1), (128, 16), (128, 128)]
    else:
        cases = [(32, 64), (128, 8)]
    repeat = 3 if quick else (20 if gpu else 7)
    rows = [] if rows is None else rows
    for ngf, batch in cases:
        torch.manual_seed(0)
        model = build_model(published_ncsnv2("CIFAR10", ngf)).to(device).eval()
        x = torch.rand(batch, 3, 32, 32, device=device)
        y = torch.randint(0, 232, (batch,), device=device)
        flops = forward_flops(model, x, y)  # a fresh network runs PyTorch's ops
        gpu_name = torch.cuda.get_device_name(device) if gpu else None
        variants = [("eager (PyTorch ops, as the original)", "torch", False, torch.float32, False),
                    ("eager channels_last", "torch", True, torch.float32, False),
                    ("fused ops", "auto", False, torch.float32, False),
                    ("fused ops + channels_last", "auto", True, torch.float32, False),
                    ("fused ops + channels_last + elu op", "auto", True, torch.float32, True),
                    ("fused ops + channels_last, bf16", "auto", True, torch.bfloat16, None)]
        calls, dtypes, first = {}, {}, {}
        for name, backend, cl, dtype, fuse_elu in variants:
            fmt = torch.channels_last if cl else torch.contiguous_format
            m = set_backend(copy.deepcopy(model), backend, fuse_elu=fuse_elu).to(memory_format=fmt).to(dtype)
            calls[name], dtypes[name] = no_grad_call(m, x.to(memory_format=fmt).to(dtype), y), dtype
            first[name] = first_call_s(calls[name], device)
        # torch.compile of the eager network, and of ours (our ops compose with it: both together)
        for mode in compile_modes:
            for name, backend, fmt in ((f"torch.compile ({mode})", "torch", torch.contiguous_format),
                                       (f"fused ops + channels_last + torch.compile ({mode})", "auto",
                                        torch.channels_last)):
                compiled = fast_copy(model, device, torch.float32, fmt == torch.channels_last, backend, mode)
                calls[name], dtypes[name] = no_grad_call(compiled, x.to(memory_format=fmt), y), torch.float32
                first[name] = first_call_s(calls[name], device)
        times = time_interleaved(calls, device, warmup=2, repeat=repeat)
        rows += forward_rows(f"NCSNv2 ngf {ngf}", batch, times, first, dtypes, flops, gpu_name)
        flush()  # the results so far, in case a time limit stops the run
    return rows
