"""Annealed Langevin's fast path (its table of fused updates, inference mode) against the reference loop on the same
Philox stream; its device-state form (what a CUDA graph holds), statistics, inpainting and interpolation."""

import pytest
import torch
from conftest import fixture_path, skip_unless_backend

from ncsn_fast import load_checkpoint
from ncsn_fast.models import set_backend
from ncsn_fast.ops import philox_noise
from ncsn_fast.ops.philox import INIT_STEP, philox_uniform_ref
from ncsn_fast.sampling import (
    Denoiser,
    GraphedProgram,
    LangevinStats,
    ald_program,
    anneal_langevin,
    model_score,
    run_program,
    sample,
)

CPU = torch.device("cpu")


def _load(variant):
    return load_checkpoint(fixture_path(f"{variant}_checkpoint.pth"), config=fixture_path(f"{variant}_config.yml"))


def _fused(model, x0, sig, *, seed, sample_ids, n_steps_each, step_lr, denoise=False, dtype=None,
           channels_last=False, backend="auto", **kw):
    """Annealed Langevin's table run by the fused loop, on the network's levels 0..len(sig)-1 (the labels index the
    network's own sigma buffer, so the score scales come from it too)."""
    den = Denoiser.from_model(model, dtype, channels_last)
    prog = ald_program(sig, n_steps_each=n_steps_each, step_lr=step_lr, denoise=denoise)
    return run_program(prog, den, x0, seed=seed, sample_ids=sample_ids, backend=backend, **kw)


@pytest.mark.parametrize("backend", ["torch", "cpu", "triton"])
@pytest.mark.parametrize("variant", ["ncsn_cifar10_ngf8", "ncsnv2_cifar10_ngf8"])
def test_fused_loop_equals_reference_loop(variant, backend):
    skip_unless_backend(backend)
    model, cfg = _load(variant)
    ids = torch.tensor([3, 0, 7])
    x0 = philox_uniform_ref(11, INIT_STEP, ids, 3072).view(3, 3, 32, 32)
    # A shorter ladder keeps the run short (shortest in the Triton interpreter, ~5 s a forward of NCSN v1's
    # norms: its first and last levels); still a valid decreasing ladder.
    triton = backend == "triton"
    sig = cfg.sampling_sigmas()[:: (116 if triton else 20) if cfg.family == "ncsnv2" else (9 if triton else 3)]
    kw = dict(n_steps_each=1 if triton else 2, step_lr=cfg.sampling.step_lr, denoise=cfg.sampling.denoise)
    ref = anneal_langevin(model_score(model), x0, sig, noise=philox_noise(11, ids, backend="torch"), **kw)
    set_backend(model, backend)
    # channels_last convolutions round differently: keep NCHW for the torch backend's bit-for-bit check
    fast = _fused(model, x0, sig, seed=11, sample_ids=ids, channels_last=backend != "torch", backend=backend, **kw)
    # fp32 throughout; folding 1/sigma into the step and the fused norm round differently, and the
    # normals of different backends agree to 1e-6: the same 1e-5-of-max|x| the original shows across threads.
    assert (fast - ref).abs().max() <= 1e-5 * ref.abs().max()
    if backend == "torch" and cfg.family == "ncsn":
        assert torch.equal(fast, ref)  # same op order, same noise words and math: bit for bit



@pytest.mark.parametrize("steps_per_graph", [1, 4])
@pytest.mark.parametrize("backend", ["torch", "cpu"])
@pytest.mark.parametrize("variant", ["ncsn_cifar10_ngf8", "ncsnv2_cifar10_ngf8"])
def test_device_state_loop_equals_fused_loop(variant, backend, steps_per_graph):
    """What the CUDA graphs hold, run un-captured: the level, labels and coefficients derived on the device
    from the step counter give the fused loop's samples bit for bit (same kernels, same stream); 4 steps per
    graph do not divide the run, so the one-step remainder is exercised too."""
    skip_unless_backend(backend)
    model, cfg = _load(variant)
    ids = torch.tensor([3, 0, 7])
    x0 = philox_uniform_ref(11, INIT_STEP, ids, 3072).view(3, 3, 32, 32)
    sig = cfg.sampling_sigmas()[:: 20 if cfg.family == "ncsnv2" else 3]
    kw = dict(n_steps_each=2, step_lr=cfg.sampling.step_lr, denoise=True)
    assert (len(sig) * 2 + 1) % 4 != 0
    set_backend(model, backend)
    prog = ald_program(sig, **kw)
    den = Denoiser.from_model(model, channels_last=True)
    fused = run_program(prog, den, x0, seed=11, sample_ids=ids, backend=backend)
    loop = GraphedProgram(den, 3, (3, 32, 32), "cpu", backend=backend, steps_per_graph=steps_per_graph,
                          capture=False)
    counted = []
    out = loop(prog, x0, seed=11, sample_ids=ids, progress=counted.append)
    assert torch.equal(out, fused)
    assert sum(counted) == len(sig) * 2 + 1
    assert int(loop.r) == len(sig) * 2 + 1  # the denoising step is a row of the table too
    again = loop(prog, x0, seed=11, sample_ids=ids)  # a second run resets the state
    assert torch.equal(again, fused)
    with pytest.raises(ValueError, match="captured shape"):
        loop(prog, x0[:2], seed=11, sample_ids=ids[:2])
    with pytest.raises(ValueError, match="CUDA device"):
        GraphedProgram(den, 3, (3, 32, 32), "cpu")
    # a bfloat16 network with the float32 state, as the fast path runs it
    model = model.to(torch.bfloat16)
    den16 = Denoiser.from_model(model, torch.bfloat16, channels_last=True)
    fused16 = run_program(prog, den16, x0, seed=11, sample_ids=ids, backend=backend)
    loop16 = GraphedProgram(den16, 3, (3, 32, 32), "cpu", backend=backend, steps_per_graph=steps_per_graph,
                            capture=False)
    out16 = loop16(prog, x0, seed=11, sample_ids=ids)
    assert out16.dtype == torch.float32 and torch.equal(out16, fused16) and not torch.equal(out16, fused)


def test_bf16_network_float32_state():
    # NCSN's 10 levels: a whole run in ~2 s (NCSNv2's 232 levels take ~35 s with bfloat16 emulated on most CPUs)
    model, cfg = _load("ncsn_cifar10_ngf8")
    ref = sample(model, cfg, 4, seed=1, n_steps_each=1, progress=False, method="reference", rng="philox")
    bf16 = sample(model, cfg, 4, seed=1, n_steps_each=1, progress=False, dtype=torch.bfloat16)
    assert not torch.equal(bf16, ref)
    # bf16 keeps 8 significant bits: the network's output moves by ~2 % (2^-5.5, measured on the fixtures),
    # but only the score term of each update sees it; the float32 state and the exact noise keep the
    # samples within 2^-7 of max|x| (measured: 2^-9.3 here, 2^-8.4 over NCSNv2's 232 levels).
    assert (bf16 - ref).abs().max() <= 2 ** -7 * ref.abs().max()


def test_fast_is_default_and_batch_independent():
    model, cfg = _load("ncsn_cifar10_ngf8")
    a = sample(model, cfg, 5, seed=2, batch_size=5, n_steps_each=1, progress=False)
    for batch_size in (2, 3, 1):  # 5 = 2+2+1 = 3+2: a lone last sample too
        b = sample(model, cfg, 5, seed=2, batch_size=batch_size, n_steps_each=1, progress=False)
        assert torch.equal(a, b), batch_size  # per-sample arithmetic does not depend on the batch
    tail = sample(model, cfg, 2, seed=2, batch_size=2, n_steps_each=1, progress=False, first_index=3)
    assert torch.equal(tail, a[3:])
    ref = sample(model, cfg, 5, seed=2, batch_size=5, n_steps_each=1, progress=False, method="reference",
                 rng="philox")
    assert (a - ref).abs().max() <= 1e-5 * ref.abs().max()


def test_stats_stay_on_device_and_match():
    model, cfg = _load("ncsn_cifar10_ngf8")
    ids = torch.arange(2)
    x0 = philox_uniform_ref(0, INIT_STEP, ids, 3072).view(2, 3, 32, 32)
    sig = cfg.sampling_sigmas()
    rec = LangevinStats()
    anneal_langevin(model_score(model), x0, sig, n_steps_each=1, step_lr=2e-5, noise=philox_noise(0, ids), callback=rec)
    rows = []  # per row of the table, the per-sample norms [||score||, ||z||], on the device
    _fused(model, x0, sig, n_steps_each=1, step_lr=2e-5, seed=0, sample_ids=ids, stats=rows)
    stats = torch.stack([r.mean(0) for r in rows])
    assert stats.shape == (10, 2)
    ref = torch.tensor([[r["grad_norm"], r["noise_norm"]] for r in rec.summary()])
    torch.testing.assert_close(stats, ref, rtol=1e-4, atol=1e-5)


def test_sample_rejects_bad_arguments():
    model, cfg = _load("ncsn_cifar10_ngf8")
    with pytest.raises(ValueError, match="method"):
        sample(model, cfg, 1, method="magic", progress=False)
    with pytest.raises(ValueError, match="philox"):
        sample(model, cfg, 1, method="fast", rng="torch", progress=False)


def test_inpainting_keeps_known_pixels_and_fast_equals_reference():
    """NCSNv2 inpainting on both loops: known pixels re-noised before every step, imposed exactly at the end."""
    from ncsn_fast.sampling import impose_known, inpainting_constraint

    model, cfg = _load("ncsnv2_cifar10_ngf8")
    ids = torch.arange(2)
    known = torch.rand(2, 3, 32, 32, generator=torch.Generator().manual_seed(5))
    mask = torch.zeros(1, 1, 1, 32, dtype=torch.bool)
    mask[..., :16] = True  # the left half is known, as in the original's inpainting
    x0 = philox_uniform_ref(4, INIT_STEP, ids, 3072).view(2, 3, 32, 32)
    sig = cfg.sampling_sigmas()[::25]
    kw = dict(n_steps_each=2, step_lr=cfg.sampling.step_lr)
    seen = []

    def watch(info):  # right after the step that followed a constraint: known half = re-noised data + update
        seen.append(info["x"][..., :16].clone())

    constrain = inpainting_constraint(known, mask, sig, philox_noise(4, ids, backend="torch"))
    ref = anneal_langevin(model_score(model), x0, sig, noise=philox_noise(4, ids, backend="torch"),
                          constraint=constrain, callback=watch, **kw)
    fast = _fused(model, x0, sig, seed=4, sample_ids=ids, constraint=constrain, **kw)
    assert (fast - ref).abs().max() <= 1e-5 * ref.abs().max()
    out = impose_known(ref, known, mask)
    assert torch.equal(out[..., :16], known[..., :16])  # known pixels kept exactly
    assert not torch.allclose(out[..., 16:], x0[..., 16:])  # the rest was sampled
    assert len(seen) == len(sig) * 2
    # the constraint really acted: without it the known half would have drifted much further
    free = anneal_langevin(model_score(model), x0, sig, noise=philox_noise(4, ids, backend="torch"), **kw)
    assert (ref[..., :16] - known[..., :16]).abs().mean() < (free[..., :16] - known[..., :16]).abs().mean()


def test_interpolation_noise_and_loops():
    """NCSNv2 interpolation: n samples per row share two draws mixed by cos/sin; both loops agree."""
    from ncsn_fast.sampling import interpolation_noise, interpolation_start

    rows, n = 2, 4
    row_noise = philox_noise(6, torch.arange(rows), backend="torch")
    draw = interpolation_noise(row_noise, n)
    x = torch.zeros(rows * n, 3, 8, 8)
    z = draw(5, x).view(rows, n, -1)
    p = row_noise(5, x[::n]).view(rows, -1)
    q = row_noise((1 << 30) + 5, x[::n]).view(rows, -1)
    t = torch.linspace(0, torch.pi / 2, n)
    for k in range(n):
        torch.testing.assert_close(z[:, k], p * torch.cos(t[k]) + q * torch.sin(t[k]))
    torch.testing.assert_close(z[:, 0], p)  # the path starts on one chain's noise...
    assert (z[:, -1] - q).abs().max() < 1e-6  # ...and ends on the other's

    model, cfg = _load("ncsn_cifar10_ngf8")
    starts = philox_uniform_ref(6, INIT_STEP, torch.arange(rows), 3072).view(rows, 3, 32, 32)
    x0 = interpolation_start(starts, n)
    assert torch.equal(x0[:n], starts[:1].expand(n, -1, -1, -1))
    sig = cfg.sampling_sigmas()[::3]
    kw = dict(n_steps_each=2, step_lr=2e-5)
    ref = anneal_langevin(model_score(model), x0, sig, noise=draw, **kw)
    fast = _fused(model, x0, sig, seed=6, sample_ids=torch.arange(rows * n), noise=draw, **kw)
    assert (fast - ref).abs().max() <= 1e-5 * ref.abs().max()
    assert not torch.allclose(ref[0], ref[n - 1])  # the two ends of a row differ
