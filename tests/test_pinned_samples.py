"""Digests of fast-path sample sets, taken before annealed Langevin moved onto the table of fused updates: the
engine may change shape, the samples may not change by a bit.

Each case is a public `ncsn_fast.sample` call on the CPU in float32, computed by the code as it was before
(annealed Langevin on its own op and loop, a score function's ald on the reference loop) and again now. The
network's convolutions round differently on another instruction set (oneDNN picks its kernels by ISA), so the
digests are kept per `torch.backends.cpu.get_cpu_capability()` (so far an AVX2-only AMD EPYC's); on a CPU kind
not recorded the test says so and skips. `python tests/test_pinned_samples.py` prints this machine's digests.
Re-recorded once, on purpose, when the fast path's CPU convolutions became Winograd's (ops/conv3x3.py: another
algorithm, other roundings); the cases that run no network on that path (PyTorch's ops, score functions) kept
theirs.
"""

import hashlib
import sys

import pytest
import torch

sys.path.insert(0, __file__.rsplit("/", 1)[0])
from conftest import fixture_path  # noqa: E402

from ncsn_fast import load_checkpoint, sample  # noqa: E402


def _fixture(variant):
    return load_checkpoint(fixture_path(f"{variant}_checkpoint.pth"), config=fixture_path(f"{variant}_config.yml"))


def _builtin():
    from ncsn_fast.digits import builtin_checkpoint
    return load_checkpoint(builtin_checkpoint())


def _ncsnpp():
    path = fixture_path("ncsnpp/ncsnpp_cifar10_cont_nf8_checkpoint.pth")
    model, _ = load_checkpoint(path, fixture_path("ncsnpp/ncsnpp_cifar10_cont_nf8_config.json"))
    return model, None


def _mixture_score(x, sigma):
    """A two-point mixture at +-0.5 per coordinate, blurred by sigma (elementwise, exact)."""
    s2 = sigma.view(-1, *([1] * (x.dim() - 1))) ** 2 + 0.01
    w = torch.sigmoid(x / s2)  # responsibility of +0.5
    return ((w - 0.5) - x) / s2


CASES = {
    "ncsn_v1_ald": (lambda: _fixture("ncsn_cifar10_ngf8"), dict(n=3, batch_size=2, n_steps_each=1, seed=4)),
    "ncsnv2_ald": (lambda: _fixture("ncsnv2_cifar10_ngf8"), dict(n=2, n_steps_each=1, seed=4)),
    "ncsnv2_ald_torch_update": (lambda: _fixture("ncsnv2_cifar10_ngf8"),
                                dict(n=2, n_steps_each=1, seed=5, backend="torch", denoise=False)),
    "ncsnv2_heun": (lambda: _fixture("ncsnv2_cifar10_ngf8"), dict(n=3, sampler="heun", steps=4, seed=1)),
    "ncsnv2_pc": (lambda: _fixture("ncsnv2_cifar10_ngf8"), dict(n=3, sampler="pc", steps=4, seed=1)),
    "digits_ald": (_builtin, dict(n=2, seed=0, dtype=torch.float32)),
    "ncsnpp_pc": (_ncsnpp, dict(n=2, seed=3)),
    "function_ald": (lambda: (_mixture_score, None),
                     dict(n=3, sampler="ald", n_steps_each=3, step_lr=0.05, sigmas=[1.0, 0.5, 0.2, 0.1],
                          shape=(2, 3), seed=7)),
    "function_heun": (lambda: (_mixture_score, None),
                      dict(n=3, sampler="heun", steps=5, sigmas=[1.0, 0.1], shape=(2, 3), seed=7)),
}

# sha256 of the float32 samples' bytes (little-endian, C order), per CPU capability.
DIGESTS = {
    "AVX2": {
        "ncsn_v1_ald": "a8c113077e6e93635c22537945cdac7a5379eca44e875eded4f08a14afca1f39",
        "ncsnv2_ald": "068a3690f58b8a7feb2a90ce97800fb7f5a1197b8a6fad56d6311881af31267b",
        "ncsnv2_ald_torch_update": "e1fd8fa5cdd5423fb1c656f4a57f974400c0634f13e9789aece68fbe5449f9de",
        "ncsnv2_heun": "e101190f35d8da4f88a1ebd00be9eba343ea790283f992f0b62f93cc5f3d09d4",
        "ncsnv2_pc": "0e2cf099b5c867ba4b5fd5df95a6e0de09fc0e29c06c81c20bc81fbddafb6e89",
        "digits_ald": "7cfb71b14abe2c8447110b8eb48e99ed4cfd5c5c3d27167a0f0742095bf6170d",
        "ncsnpp_pc": "500403d17c0da80293d9d624d46ef66a0de6b7f56841631eb397ed5cc7da3bad",
        "function_ald": "ff030724bb7e9128bc6e65408cb577afe7fe8f14103a042b9e928e50c5fd5155",
        "function_heun": "36e96d0a1a680fa3ab55b51de3b48fb919d8f08a8fccb46ae1e4e5f66620dcad",
    },
}


def digest(case: str) -> str:
    make, kw = CASES[case]
    model, config = make()
    x = sample(model, config, progress=False, **kw)
    assert x.dtype == torch.float32 and torch.isfinite(x).all()
    return hashlib.sha256(x.contiguous().numpy().tobytes()).hexdigest()


@pytest.mark.parametrize("case", list(CASES))
def test_fast_path_samples_are_pinned(case):
    isa = torch.backends.cpu.get_cpu_capability()
    if isa not in DIGESTS:
        pytest.skip(f"no digests recorded for a {isa} CPU (recorded: {', '.join(DIGESTS)})")
    assert digest(case) == DIGESTS[isa][case]


if __name__ == "__main__":
    import os
    os.environ.setdefault("NCSN_FAST_AUTO_DTYPE", "float32")
    print(torch.backends.cpu.get_cpu_capability())
    for name in CASES:
        print(f'        "{name}": "{digest(name)}",')
