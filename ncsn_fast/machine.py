"""What CPU a run is on: its model and the instruction-set features that decide which path is fastest
(AVX2, AVX-512, native bfloat16 through AVX512_BF16 or AMX). Recorded with every benchmark result, since the
same code's figures differ between CPUs (a bfloat16 forward ran at 2.40x eager on one 2-core machine and
0.60x on another without AVX512_BF16)."""

from __future__ import annotations

import platform
from functools import cache
from pathlib import Path

import torch


@cache
def cpu_model() -> str:
    """The CPU's model name (/proc/cpuinfo on Linux), else what the platform module says."""
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.lower().startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def _flags() -> set[str]:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("flags"):
                return set(line.split(":", 1)[1].split())
    except OSError:
        pass
    return set()


@cache
def cpu_features() -> dict:
    """{'capability': PyTorch's vector ISA, 'avx2', 'avx512', 'avx512_bf16', 'amx'} (booleans from PyTorch where
    it reports them, else from /proc/cpuinfo)."""
    flags = _flags()
    cap = torch.backends.cpu.get_cpu_capability()
    bf16 = getattr(torch.cpu, "_is_avx512_bf16_supported", lambda: "avx512_bf16" in flags)()
    amx = getattr(torch.cpu, "_is_amx_tile_supported", lambda: "amx_tile" in flags)()
    return {"capability": cap, "avx2": "avx2" in flags or cap in ("AVX2", "AVX512"),
            "avx512": "avx512f" in flags or cap == "AVX512", "avx512_bf16": bool(bf16), "amx": bool(amx)}


def feature_text(features: dict) -> str:
    """'avx2, avx512, avx512_bf16' for the features present (as recorded in a results file)."""
    return ", ".join(k for k in ("avx2", "avx512", "avx512_bf16", "amx") if features.get(k)) or "no AVX2"


def describe_cpu() -> str:
    return f"{cpu_model()} ({feature_text(cpu_features())})"
