"""pytest-benchmark micro-benchmarks of the fused ops, one row per op x backend (not part of the test run).

    pytest benchmarks/test_ops_bench.py --benchmark-only [--benchmark-json out.json]

On a GPU the `cuda` and `triton` rows run too; times include a device synchronisation per call.
"""

import pytest
import torch

from ncsn_fast.ops import instance_norm_plus, langevin_coefs, philox_normal, sampler_update_
from ncsn_fast.ops._backends import choose, why_not

DEVICE = torch.device("cuda" if torch.cuda.is_available() else "cpu")
BACKENDS = [b for b in ("cuda", "triton", "cpu", "torch") if why_not(b, DEVICE) is None
            and not (b == "triton" and DEVICE.type == "cpu")]  # never time the interpreter


def _sync(fn):
    def run():
        out = fn()
        if DEVICE.type == "cuda":
            torch.cuda.synchronize()
        return out
    return run


@pytest.mark.parametrize("backend", BACKENDS)
def test_philox_normal(benchmark, backend):
    ids = torch.arange(128, device=DEVICE)
    benchmark(_sync(lambda: philox_normal(0, 1, ids, 3 * 32 * 32, backend=backend)))


@pytest.mark.parametrize("backend", BACKENDS)
def test_langevin_row(benchmark, backend):
    """Annealed Langevin's update: a row of sampler_update_."""
    x = torch.randn(128, 3, 32, 32, device=DEVICE)
    h, p = torch.randn_like(x), torch.zeros_like(x)
    ids, coefs = torch.arange(128, device=DEVICE), langevin_coefs(1e-3, device=DEVICE)
    mult = torch.ones(128, 2, device=DEVICE)
    benchmark(_sync(lambda: sampler_update_(x, p, h, coefs, mult, seed=0, step=1, sample_ids=ids, backend=backend)))


@pytest.mark.parametrize("backend", BACKENDS)
@pytest.mark.parametrize("layout", ["nchw", "nhwc"])
def test_instance_norm_plus(benchmark, backend, layout):
    x = torch.randn(8, 128, 32, 32, device=DEVICE) + 0.5
    if layout == "nhwc":
        x = x.to(memory_format=torch.channels_last)
    g, a, b = (torch.rand(128, device=DEVICE) + 0.5 for _ in range(3))
    benchmark(_sync(lambda: instance_norm_plus(x, g, a, b, elu=True, backend=backend)))


def test_auto_is_listed():
    assert choose("auto", DEVICE) in BACKENDS
