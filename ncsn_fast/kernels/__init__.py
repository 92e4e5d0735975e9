"""Triton kernels behind ncsn_fast.ops (imported lazily: triton is optional)."""

import os
from contextlib import contextmanager

# Under TRITON_INTERPRET=1 the kernels run on the CPU through numpy; libdevice does not run there.
INTERPRET = os.environ.get("TRITON_INTERPRET", "0") == "1"
_gpu_blocks = False


def few_programs() -> bool:
    """Whether launchers use few, large programs: in the interpreter, which costs ~10 ms per program instance,
    unless `gpu_block_sizes()` asks for the GPU's."""
    return INTERPRET and not _gpu_blocks


@contextmanager
def gpu_block_sizes():
    """Launch with the GPU's block sizes even in the interpreter (tests: many programs, multi-pass loops)."""
    global _gpu_blocks
    old, _gpu_blocks = _gpu_blocks, True
    try:
        yield
    finally:
        _gpu_blocks = old
