"""--dtype auto: bfloat16 only on a CPU that computes it natively; a warning where a forced 16-bit dtype is slow."""

import pytest
import torch

from ncsn_fast import machine
from ncsn_fast.cli import main


@pytest.fixture
def cpu(monkeypatch):
    """Unpin auto (conftest pins it for the suite) and let each test say what the CPU can do."""
    monkeypatch.delenv(machine.AUTO_ENV, raising=False)

    def set_native(native: bool):
        monkeypatch.setattr(machine, "cpu_features", lambda: {"capability": "AVX512", "avx2": True, "avx512": True,
                                                              "avx512_bf16": native, "amx": False})
    return set_native


def test_auto_picks_bf16_only_where_native(cpu):
    cpu(False)
    dtype, why, warning = machine.resolve_dtype("auto", "cpu")
    assert dtype == torch.float32 and "no native bfloat16" in why and warning is None
    cpu(True)
    assert machine.resolve_dtype("auto", "cpu")[0] == torch.bfloat16
    assert machine.resolve_dtype("auto", "cuda")[0] == torch.float32  # no CUDA needed to resolve


def test_forcing_bf16_without_native_support_warns(cpu):
    cpu(False)
    dtype, why, warning = machine.resolve_dtype("bfloat16", "cpu")
    assert dtype == torch.bfloat16 and "slower than float32" in warning
    cpu(True)
    assert machine.resolve_dtype(torch.bfloat16, "cpu")[2] is None
    assert machine.resolve_dtype("float32", "cpu")[2] is None
    with pytest.raises(ValueError, match="dtype must be"):
        machine.resolve_dtype("float8", "cpu")


def test_auto_can_be_pinned(monkeypatch, cpu):
    cpu(True)
    monkeypatch.setenv(machine.AUTO_ENV, "float32")
    assert machine.resolve_dtype("auto", "cpu")[:2] == (torch.float32, f"auto, pinned by {machine.AUTO_ENV}")
    monkeypatch.setenv(machine.AUTO_ENV, "half")
    with pytest.raises(ValueError, match=machine.AUTO_ENV):
        machine.resolve_dtype("auto", "cpu")


@pytest.mark.filterwarnings("error::ncsn_fast.machine.SlowDtypeWarning")  # the CLI's own line, no Python warning
def test_cli_says_which_dtype_ran_and_why(cpu, tmp_path, capsys):
    cpu(False)
    args = ["sample", "-n", "2", "--sampler", "euler", "--steps", "2", "--quiet"]
    assert main([*args, "--out", str(tmp_path / "a")]) == 0
    out = capsys.readouterr()
    assert "fast path, float32 (auto: this CPU has no native bfloat16" in out.out and out.err == ""
    assert main([*args, "--out", str(tmp_path / "b"), "--dtype", "bfloat16"]) == 0
    out = capsys.readouterr()
    assert "fast path, bfloat16)" in out.out
    assert out.err.startswith("ncsn-fast: warning: bfloat16 on a CPU without native bfloat16")
    cpu(True)
    assert main([*args, "--out", str(tmp_path / "c")]) == 0
    assert "fast path, bfloat16 (auto: this CPU computes bfloat16 natively)" in capsys.readouterr().out


def test_library_default_is_auto(cpu):
    from ncsn_fast import load_checkpoint
    from ncsn_fast.digits import builtin_checkpoint
    from ncsn_fast.sampling import sample
    model, cfg = load_checkpoint(builtin_checkpoint())
    cpu(False)
    a = sample(model, cfg, 2, sampler="euler", steps=2, progress=False)
    b = sample(model, cfg, 2, sampler="euler", steps=2, progress=False, dtype=torch.float32)
    assert torch.equal(a, b)
    cpu(True)
    c = sample(model, cfg, 2, sampler="euler", steps=2, progress=False)
    d = sample(model, cfg, 2, sampler="euler", steps=2, progress=False, dtype=torch.bfloat16)
    assert torch.equal(c, d) and not torch.equal(a, c)


def test_library_warns_when_a_forced_dtype_is_slow(cpu):
    from ncsn_fast import load_checkpoint
    from ncsn_fast.digits import builtin_checkpoint
    from ncsn_fast.sampling import sample
    model, cfg = load_checkpoint(builtin_checkpoint())
    cpu(False)
    with pytest.warns(machine.SlowDtypeWarning, match="slower than float32"):
        sample(model, cfg, 2, sampler="euler", steps=2, progress=False, dtype=torch.bfloat16)
