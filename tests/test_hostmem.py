"""tune_cpu_allocator: freed tensor memory is reused instead of faulted in afresh (counted in page faults, not
timed), it can be turned off, and ncsn-fast applies it. Each case runs in a fresh process: the setting is
process-wide and cannot be undone."""

import subprocess
import sys

import pytest

pytestmark = pytest.mark.skipif(not sys.platform.startswith("linux"), reason="glibc malloc tuning is Linux-only")

PROBE = """
import resource, sys, torch
from ncsn_fast.hostmem import applied, tune_cpu_allocator
on = tune_cpu_allocator() if sys.argv[1] == "1" else False
from ncsn_fast.bench import published_ncsnv2
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
print(on, applied(), (f1 - f0) / 3)
"""


def _run(flag, env=None):
    import os
    out = subprocess.run([sys.executable, "-c", PROBE, flag], capture_output=True, text=True, check=True,
                         env={**os.environ, **(env or {})}).stdout.split()
    return out[0] == "True", out[1] == "True", float(out[2])


def test_freed_activations_are_reused():
    on, applied, faults_tuned = _run("1")
    assert on and applied
    _, applied_off, faults_default = _run("0")
    assert not applied_off
    # default glibc: the forward's big activations are mmap'd (or trimmed) and faulted in again at every call
    assert faults_default > 2000 and faults_tuned < 0.2 * faults_default


def test_can_be_turned_off():
    on, applied, _ = _run("1", {"NCSN_FAST_MALLOC_TUNING": "0"})
    assert not on and not applied


def test_the_command_applies_it():
    from ncsn_fast.cli import main
    from ncsn_fast.hostmem import applied
    assert main(["info"]) == 0
    assert applied()
