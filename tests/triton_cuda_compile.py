"""Compile every Triton kernel of ncsn_fast for a CUDA GPU, on a machine without one.

The test suite runs the Triton kernels in the interpreter (TRITON_INTERPRET=1), which takes another code path
(no libdevice, big blocks) and accepts code that the real compiler rejects. This script imports the kernels as a
GPU run does (TRITON_INTERPRET=0) and compiles each, for every dtype and flag the launchers pass, through Triton's
whole pipeline down to a cubin for the given target (ptxas included, no driver needed). The block sizes are the
launchers' GPU ones. Usage: python tests/triton_cuda_compile.py [CC ...] (default 90 = H100/H200).
"""

from __future__ import annotations

import os
import sys
import tempfile

os.environ["TRITON_INTERPRET"] = "0"
os.environ.setdefault("TRITON_CACHE_DIR", tempfile.mkdtemp(prefix="triton-cache-"))

import triton  # noqa: E402
from triton.backends.compiler import GPUTarget  # noqa: E402
from triton.compiler import ASTSource  # noqa: E402

from ncsn_fast.kernels import INTERPRET  # noqa: E402
from ncsn_fast.kernels.elu import _elu_kernel  # noqa: E402
from ncsn_fast.kernels.group_norm_act import _apply_kernel as _gn_apply_kernel  # noqa: E402
from ncsn_fast.kernels.group_norm_act import _stats_kernel as _gn_stats_kernel  # noqa: E402
from ncsn_fast.kernels.instance_norm_plus import _apply_kernel, _coef_kernel, _stats_kernel  # noqa: E402
from ncsn_fast.kernels.philox import _philox_kernel  # noqa: E402
from ncsn_fast.kernels.pool import _pool5x5_kernel  # noqa: E402
from ncsn_fast.kernels.sampler_update import _sampler_update_kernel  # noqa: E402

DTYPES = ("fp32", "bf16", "fp16")


def cases():
    """(name, kernel, signature, constexprs): what the launchers in ncsn_fast/kernels/ pass on a GPU."""
    for dt in DTYPES:
        yield f"elu {dt}", _elu_kernel, {"X": f"*{dt}", "OUT": f"*{dt}", "numel": "i32", "BLOCK": "constexpr"}, \
            {"BLOCK": 1024}
        for cl, (bc, bp) in ((False, (4, 256)), (True, (32, 64))):
            yield f"norm stats {dt} cl={cl}", _stats_kernel, {
                "X": f"*{dt}", "MU": "*fp32", "RSTD": "*fp32", "C": "i32", "HW": "i32", "stride_n": "i32",
                "stride_c": "i32", "stride_p": "i32", "eps": "fp32", "BLOCK_C": "constexpr",
                "BLOCK_P": "constexpr"}, {"BLOCK_C": bc, "BLOCK_P": bp}
            for elu in (False, True):
                yield f"norm apply {dt} cl={cl} elu={elu}", _apply_kernel, {
                    "X": f"*{dt}", "OUT": f"*{dt}", "MU": "*fp32", "RSTD": "*fp32", "AM": "*fp32", "GAMMA": "*fp32",
                    "BETA": "*fp32", "param_stride": "i32", "total": "i32", "C": "i32", "HW": "i32",
                    "CHANNELS_LAST": "constexpr", "ELU": "constexpr", "BLOCK": "constexpr"}, \
                    {"CHANNELS_LAST": cl, "ELU": elu, "BLOCK": 1024}
            for add in (False, True):
                yield f"group norm stats {dt} cl={cl} add={add}", _gn_stats_kernel, {
                    "X": f"*{dt}", "ADD": "*fp32", "MU": "*fp32", "RSTD": "*fp32", "C": "i32", "HW": "i32",
                    "G": "i32", "eps": "fp32", "CHANNELS_LAST": "constexpr", "HAS_ADD": "constexpr",
                    "BLOCK": "constexpr"}, {"CHANNELS_LAST": cl, "HAS_ADD": add, "BLOCK": 1024}
                for silu in (False, True):
                    yield f"group norm apply {dt} cl={cl} add={add} silu={silu}", _gn_apply_kernel, {
                        "X": f"*{dt}", "OUT": f"*{dt}", "MU": "*fp32", "RSTD": "*fp32", "W": "*fp32", "B": "*fp32",
                        "ADD": "*fp32", "total": "i32", "C": "i32", "HW": "i32", "G": "i32",
                        "CHANNELS_LAST": "constexpr", "HAS_ADD": "constexpr", "SILU": "constexpr",
                        "BLOCK": "constexpr"}, {"CHANNELS_LAST": cl, "HAS_ADD": add, "SILU": silu, "BLOCK": 1024}
            for is_max in (False, True):
                yield f"pool5x5 {dt} cl={cl} max={is_max}", _pool5x5_kernel, {
                    "X": f"*{dt}", "OUT": f"*{dt}", "total": "i32", "C": "i32", "H": "i32", "W": "i32",
                    "CHANNELS_LAST": "constexpr", "IS_MAX": "constexpr", "BLOCK": "constexpr"}, \
                    {"CHANNELS_LAST": cl, "IS_MAX": is_max, "BLOCK": 512}
            yield f"sampler_update h={dt} cl={cl}", _sampler_update_kernel, {
                "X": "*fp32", "P": "*fp32", "H": f"*{dt}", "IDS": "*i64", "SEED": "*i64", "STEP": "*i64",
                "COEFS": "*fp32", "MULT": "*fp32", "numel": "i32", "hw": "i32", "C": "i32",
                "CHANNELS_LAST": "constexpr", "BLOCK_Q": "constexpr"}, {"CHANNELS_LAST": cl, "BLOCK_Q": 256}
    yield "norm coef", _coef_kernel, {"MU": "*fp32", "ALPHA": "*fp32", "AM": "*fp32", "C": "i32",
                                      "param_stride": "i32", "eps": "fp32", "BLOCK_C": "constexpr"}, {"BLOCK_C": 256}
    for words in (False, True):
        yield f"philox words={words}", _philox_kernel, {
            "OUT": "*i64" if words else "*fp32", "IDS": "*i64", "SEED": "*i64", "STEP": "*i64", "numel": "i32",
            "WORDS": "constexpr", "BLOCK_Q": "constexpr"}, {"WORDS": words, "BLOCK_Q": 256}


CASES = list(cases())  # listed once per process; the workers index it


def compile_case(cc: int, index: int) -> tuple[bool, str]:
    """(compiled?, report line) for CASES[index], compiled for sm_cc."""
    name, fn, signature, constexprs = CASES[index]
    try:
        k = triton.compile(ASTSource(fn=fn, signature=signature, constexprs=constexprs),
                           target=GPUTarget("cuda", cc, 32))
        assert k.asm.get("cubin"), "no cubin"
        return True, f"ok   sm_{cc} {name}: {k.metadata.num_warps} warps, {len(k.asm['cubin'])} B cubin"
    except Exception as e:  # report every kernel, then fail
        return False, f"FAIL sm_{cc} {name}: {type(e).__name__}: {str(e).splitlines()[0] if str(e) else ''}"


def main(argv: list[str]) -> int:
    """Compile every case for each CC, one process per CPU (each compile is single-threaded)."""
    from concurrent.futures import ProcessPoolExecutor

    assert not INTERPRET, "the kernels were imported for the interpreter"
    ccs = [int(a) for a in argv] or [90]
    jobs = [(cc, i) for cc in ccs for i in range(len(CASES))]
    with ProcessPoolExecutor(max_workers=max(1, min(len(jobs), os.cpu_count() or 1))) as pool:
        results = list(pool.map(compile_case, *zip(*jobs)))
    for _, line in results:
        print(line)
    compiled = sum(ok for ok, _ in results)
    print(f"{compiled} compiled, {len(results) - compiled} failed")
    return 0 if compiled == len(results) else 1


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
