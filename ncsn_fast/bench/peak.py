"""What share of the device's arithmetic a forward uses: its FLOPs counted once (torch.utils.flop_counter, the
convolutions and matrix products: 2 per multiply-add), against the dense tensor-core peak of known GPUs.

Peaks are the vendors' dense (no sparsity) figures for the SXM parts; a GPU not in the table gets no share.
"""

from __future__ import annotations

import torch

# dense TFLOP/s by (name fragment, dtype); the first fragment found in the device's name wins
DENSE_PEAK_TFLOPS = [
    ("H200", {torch.bfloat16: 989.0, torch.float16: 989.0, torch.float32: 67.0}),
    ("H100 PCIe", {torch.bfloat16: 756.0, torch.float16: 756.0, torch.float32: 51.0}),
    ("H100", {torch.bfloat16: 989.0, torch.float16: 989.0, torch.float32: 67.0}),
    ("A100", {torch.bfloat16: 312.0, torch.float16: 312.0, torch.float32: 19.5}),
]


def dense_peak_tflops(gpu_name: str | None, dtype: torch.dtype) -> float | None:
    """The table's dense peak for this GPU and dtype (float32: without TF32), or None."""
    for fragment, peaks in DENSE_PEAK_TFLOPS:
        if gpu_name and fragment in gpu_name:
            return peaks.get(dtype)
    return None


@torch.no_grad()
def forward_flops(model: torch.nn.Module, *inputs) -> int:
    """FLOPs of one call model(*inputs), as torch's flop counter counts them."""
    from torch.utils.flop_counter import FlopCounterMode

    counter = FlopCounterMode(display=False)
    with counter:
        model(*inputs)
    return int(counter.get_total_flops())


def add_throughput(row: dict, flops: int, gpu_name: str | None, dtype: torch.dtype) -> dict:
    """row['tflops'] (achieved, from row['ms']) and, on a GPU of the table, row['pct_peak']."""
    row["tflops"] = flops / (row["ms"] * 1e-3) / 1e12
    peak = dense_peak_tflops(gpu_name, dtype)
    if peak:
        row["pct_peak"] = 100 * row["tflops"] / peak
    return row


def forward_rows(model: str, batch: int, times: dict[str, dict], first: dict[str, float],
                 dtypes: dict[str, torch.dtype], flops: int, gpu_name: str | None) -> list[dict]:
    """One row per timed variant (time_interleaved's figures): ms, images/s, speed-up over the first variant,
    its first call where recorded, TFLOP/s and share of peak."""
    base = next(iter(times.values()))["ms"]
    rows = []
    for name, t in times.items():
        row = {"model": model, "batch": batch, "variant": name, "ms": t["ms"],
               "images_per_s": batch / (t["ms"] * 1e-3), "speedup": base / t["ms"]}
        if name in first:
            row["first_call_s"] = first[name]
        rows.append(add_throughput(row, flops, gpu_name, dtypes[name]))
    return rows
