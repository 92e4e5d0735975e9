"""What CPU a run is on: its model and the instruction-set features that decide which path is fastest
(AVX2, AVX-512, native bfloat16 through AVX512_BF16 or AMX). Recorded with every benchmark result, since the
same code's figures differ between CPUs (a bfloat16 forward ran at 2.40x eager on one 2-core machine and
0.60x on another without AVX512_BF16)."""

from __future__ import annotations

import os
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


# Instruction-set caps a run may set to emulate an older CPU kind on a newer one (PyTorch's vector loops and
# inductor's generated code, oneDNN's kernels, our per-ISA loops); recorded, and named in a results file's kind.
ISA_CAPS = ("ATEN_CPU_CAPABILITY", "ONEDNN_MAX_CPU_ISA", "NCSN_FAST_CPU_ISA")


def isa_caps() -> dict[str, str]:
    """The ISA caps set in this process's environment, {variable: value}."""
    return {k: os.environ[k] for k in ISA_CAPS if os.environ.get(k)}


def cpu_kind(features: dict, caps: dict[str, str], threads: int) -> str:
    """A results file's name for the CPU kind: 'cpu2t-avx2' (threads, best feature), with '-capped-<values>' when
    ISA caps were set ('cpu2t-avx2-capped-default-sse41-baseline')."""
    kind = f"cpu{threads}t-{feature_text(features).split(', ')[-1]}"
    if caps:
        kind += "-capped-" + "-".join(caps[k] for k in ISA_CAPS if k in caps)
    return "".join(ch if ch.isalnum() else "-" for ch in kind).strip("-").lower()


def caps_text(caps: dict[str, str]) -> str:
    """', capped: ATEN_CPU_CAPABILITY=default, ...' ('' when none), for a results file's header."""
    return ", capped: " + ", ".join(f"{k}={v}" for k, v in caps.items()) if caps else ""


def describe_cpu() -> str:
    return f"{cpu_model()} ({feature_text(cpu_features())})"


def native_bf16() -> bool:
    """Whether this CPU computes bfloat16 natively (AVX512_BF16 or AMX), as PyTorch reports it."""
    f = cpu_features()
    return f["avx512_bf16"] or f["amx"]


class SlowDtypeWarning(UserWarning):
    """A 16-bit network dtype on a CPU that emulates it."""


DTYPES = {"float32": torch.float32, "bfloat16": torch.bfloat16, "float16": torch.float16}
# Pins what `auto` picks (float32 | bfloat16), e.g. to compare runs across machines.
AUTO_ENV = "NCSN_FAST_AUTO_DTYPE"


def resolve_dtype(spec: str | torch.dtype, device) -> tuple[torch.dtype, str, str | None]:
    """(the network's dtype on the fast path, why, a warning or None) for --dtype / sample(dtype=).

    auto: bfloat16 on a CPU that computes it natively, float32 on other CPUs (there a bfloat16 forward ran at
    0.60x eager) and on a GPU (on an H200 the bfloat16 sampler was within 5 % of Triton's float32 one at
    batches 16-128, and it moves the samples). An explicit 16-bit dtype on a CPU without native bfloat16 is
    honoured, with a warning that it will be slower."""
    import os

    device = torch.device(device)
    if isinstance(spec, torch.dtype):
        spec = next((k for k, v in DTYPES.items() if v == spec), str(spec))
    if spec == "auto":
        pinned = os.environ.get(AUTO_ENV)
        if pinned:
            if pinned not in ("float32", "bfloat16"):
                raise ValueError(f"{AUTO_ENV} must be float32 or bfloat16, got {pinned!r}")
            return DTYPES[pinned], f"auto, pinned by {AUTO_ENV}", None
        if device.type == "cpu" and native_bf16():
            return torch.bfloat16, "auto: this CPU computes bfloat16 natively", None
        if device.type == "cpu":
            return torch.float32, "auto: this CPU has no native bfloat16 (AVX512_BF16 / AMX)", None
        return torch.float32, "auto: float32 on a GPU", None
    if spec not in DTYPES:
        raise ValueError(f"dtype must be auto, float32, bfloat16 or float16, got {spec!r}")
    warning = None
    if device.type == "cpu" and spec != "float32" and not native_bf16():
        warning = (f"{spec} on a CPU without native bfloat16 (AVX512_BF16 / AMX) is slower than float32 here "
                   f"(emulated); --dtype auto picks float32 on this CPU")
    return DTYPES[spec], "as asked", warning
