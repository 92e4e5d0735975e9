"""tune_cpu_allocator: freed tensor memory is reused instead of faulted in afresh (counted in page faults, not
timed), it can be turned off, and ncsn-fast applies it. Each case runs in a fresh process: the setting is
process-wide and cannot be undone."""

import subprocess
import sys

import pytest

pytestmark = pytest.mark.skipif(not sys.platform.startswith("linux"), reason="glibc malloc tuning is Linux-only")

PROBE = """
import ctypes, resource, sys, torch
from ncsn_fast.hostmem import applied, tune_cpu_allocator
on = tune_cpu_allocator() if sys.argv[1] == "1" else False


class MallInfo2(ctypes.Structure):  # glibc >= 2.33
    _fields_ = [(name, ctypes.c_size_t) for name in
                ("arena", "ordblks", "smblks", "hblks", "hblkhd", "usmblks", "fsmblks", "uordblks", "fordblks",
                 "keepcost")]


libc = ctypes.CDLL("libc.so.6")
libc.mallinfo2.restype = MallInfo2
before = libc.mallinfo2().hblks
big = torch.empty(16 * 2 ** 20)  # 64 MB: above glibc's largest mmap threshold (32 MB), so mmap'd by default
mmapped = libc.mallinfo2().hblks - before
del big
from ncsn_fast.bench.forward import published_ncsnv2
from ncsn_fast.models import build_model
model = build_model(published_ncsnv2("CIFAR10", 16)).eval()
x, y = torch.rand(32, 3, 32, 32), torch.zeros(32, dtype=torch.long)
def faults():
    return resource.getrusage(resource.RUSAGE_SELF).ru_minflt
with torch.no_grad():
    model(x, y)  # warm up
    f0 = faults()
    for _ in range(3):
        model(x, y)
    f1 = faults()
print(on, applied(), mmapped, (f1 - f0) / 3)
"""


def _run(flag, env=None):
    import os
    out = subprocess.run([sys.executable, "-c", PROBE, flag], capture_output=True, text=True, check=True,
                         env={**os.environ, **(env or {})}).stdout.split()
    return out[0] == "True", out[1] == "True", int(out[2]), float(out[3])


def test_freed_activations_are_reused():
    on, applied, mmapped, faults = _run("1")
    assert on and applied
    assert mmapped == 0  # big tensors come from the heap, whose freed blocks are reused
    # a forward of this network touches ~200 MB of activations (~50,000 pages); reused, few are new
    assert faults < 3000
    _, applied_off, mmapped_default, _ = _run("0")
    assert not applied_off and mmapped_default >= 1  # by default glibc maps such a block and unmaps it on free


def test_can_be_turned_off():
    on, applied, mmapped, _ = _run("1", {"NCSN_FAST_MALLOC_TUNING": "0"})
    assert not on and not applied and mmapped >= 1


def test_the_command_applies_it():
    from ncsn_fast.cli import main
    from ncsn_fast.hostmem import applied
    assert main(["info"]) == 0
    assert applied()
