"""Reference sampler: reproduces the original NCSN and NCSNv2 Langevin runs for the same seed."""

import dataclasses

import numpy as np
import pytest
import torch
from conftest import fixture_path, load_fixture

from ncsn_fast import load_checkpoint
from ncsn_fast.sampling import (
    LangevinStats,
    Trajectory,
    anneal_langevin,
    anneal_langevin_v1,
    anneal_langevin_v2,
    langevin_schedule,
    model_score,
    sample,
    torch_noise,
)


@pytest.mark.parametrize("variant", ["ncsn_cifar10_ngf8", "ncsnv2_cifar10_ngf8", "ncsnv2_church_ngf4"])
def test_schedule_matches_original(variant):
    d = load_fixture(f"{variant}_langevin.pt")
    alphas, scales = langevin_schedule(d["sigmas"], d["step_lr"])
    assert np.array_equal(alphas.astype(np.float64), d["step_sizes"].numpy())
    assert np.array_equal(scales.astype(np.float64), d["noise_scales"].numpy())
    if "step_sizes_numpy1_legacy" in d:
        legacy, _ = langevin_schedule(d["sigmas"], d["step_lr"], numpy1_legacy=True)
        assert np.array_equal(legacy, d["step_sizes_numpy1_legacy"].numpy())
        # Once torch casts the scalar to float32, NumPy 1 and 2 differ by an ulp on a known count of levels.
        differ = (legacy.astype(np.float32) != alphas).sum()
        assert differ == d["n_levels_where_float32_step_differs_numpy1_vs_2"]


def _setup(variant):
    d = load_fixture(f"{variant}_langevin.pt")
    model, cfg = load_checkpoint(fixture_path(f"{variant}_checkpoint.pth"),
                                 config=fixture_path(f"{variant}_config.yml"))
    g = torch.Generator().manual_seed(d["seed"])
    x0 = torch.rand(d["x0"].shape, generator=g)
    assert torch.equal(x0, d["x0"])
    return d, model, g, x0


def test_ncsn_v1_langevin_reproduces_original():
    d, model, g, x0 = _setup("ncsn_cifar10_ngf8")
    traj = Trajectory(every=10)
    x = anneal_langevin_v1(model_score(model), x0, d["sigmas"], n_steps_each=d["n_steps_each"],
                           step_lr=d["step_lr"], noise=torch_noise(g), callback=traj)
    assert (x - d["final_unclamped"]).abs().max() <= 1e-4
    # The original records clamp(x) *before* each update: pre-update state k*10 = x0 or our post-update k*10-1.
    traj1 = Trajectory(every=1)
    g = torch.Generator().manual_seed(d["seed"])
    torch.rand(d["x0"].shape, generator=g)
    anneal_langevin_v1(model_score(model), x0, d["sigmas"], n_steps_each=d["n_steps_each"],
                       step_lr=d["step_lr"], noise=torch_noise(g), callback=traj1)
    pre = [x0] + traj1.states
    for k, ref in enumerate(d["pre_update_states_every_10"]):
        assert (pre[10 * k] - ref).abs().max() <= 1e-4
    assert (pre[-2].clamp(0, 1) - d["returned_last"]).abs().max() <= 1e-4
    assert traj.steps == list(range(0, 50, 10))  # only every 10th state was kept


@pytest.mark.parametrize("variant", ["ncsnv2_cifar10_ngf8",
                                     pytest.param("ncsnv2_church_ngf4", marks=pytest.mark.slow)])
def test_ncsnv2_langevin_reproduces_original(variant):
    d, model, g, x0 = _setup(variant)
    traj = Trajectory(every=1)
    x = anneal_langevin_v2(model_score(model), x0, d["sigmas"], n_steps_each=d["n_steps_each"],
                           step_lr=d["step_lr"], denoise=d["denoise"], noise=torch_noise(g), callback=traj)
    # The original itself moves by 1.2e-4 (on |x| ~ 500) between 1 and 2 CPU threads, more than the
    # 1e-4 absolute the issue asks: the fixture README's relative tolerance, 1e-5 of max |final|.
    tol = 1e-5 * d["final"].abs().max().item()
    assert (x - d["final"]).abs().max() <= tol
    assert len(traj.states) == d["num_returned"]
    for idx, ref in zip(d["trajectory_index"].tolist(), d["trajectory"]):
        assert (traj.states[idx] - ref).abs().max() <= tol


def _gaussian_score(x, level):
    return -x


def test_noise_order_v1_vs_v2():
    """v1 draws z before the score, v2 after: visible with a score that uses the same generator."""
    sigmas = torch.tensor([1.0, 0.5], dtype=torch.float64)
    results = {}
    for noise_first in (True, False):
        g = torch.Generator().manual_seed(0)
        draws = []

        def score(x, level, g=g, draws=draws):
            draws.append(torch.rand(1, generator=g).item())
            return -x

        results[noise_first] = (anneal_langevin(score, torch.zeros(3, 2), sigmas, n_steps_each=2, step_lr=0.1,
                                                noise_first=noise_first, noise=torch_noise(g)), draws)
    assert results[True][1] != results[False][1]
    assert not torch.equal(results[True][0], results[False][0])


def test_denoise_step_is_tweedie():
    sigmas = torch.tensor([1.0, 0.5], dtype=torch.float32)
    x0 = torch.randn(4, 3)
    seen = []
    xs = {}
    for denoise in (False, True):
        xs[denoise] = anneal_langevin_v2(_gaussian_score, x0, sigmas, n_steps_each=3, step_lr=0.01, denoise=denoise,
                                         noise=torch_noise(torch.Generator().manual_seed(1)),
                                         callback=lambda info: seen.append(info.get("denoise", False)))
    torch.testing.assert_close(xs[True], xs[False] + 0.25 * (-xs[False]))
    assert seen.count(True) == 1


def test_stats_only_when_asked_and_correct():
    sigmas = torch.tensor([2.0, 1.0], dtype=torch.float64)
    stats = LangevinStats()
    grads, zs = [], []
    anneal_langevin(_gaussian_score, torch.ones(5, 4), sigmas, n_steps_each=3, step_lr=0.1,
                    noise=torch_noise(torch.Generator().manual_seed(2)),
                    callback=lambda info: (stats(info), grads.append(info["grad"]), zs.append(info["z"])))
    rows = stats.summary()
    assert [r["level"] for r in rows] == [0, 1] and all(r["n"] == 3 for r in rows)
    g0 = torch.stack([g.norm(dim=-1).mean() for g in grads[:3]]).mean().item()
    z0 = torch.stack([z.norm(dim=-1).mean() for z in zs[:3]]).mean().item()
    assert rows[0]["grad_norm"] == pytest.approx(g0, rel=1e-5)
    assert rows[0]["noise_norm"] == pytest.approx(z0, rel=1e-5)
    assert rows[0]["step_size"] == pytest.approx(0.4)
    snr0 = np.mean([np.sqrt(0.2) * g.norm(dim=-1).mean().item() / z.norm(dim=-1).mean().item()
                    for g, z in zip(grads[:3], zs[:3])])
    assert rows[0]["snr"] == pytest.approx(snr0, rel=1e-5)


def test_langevin_targets_the_right_gaussian():
    """Long single-level Langevin on the score of N(0, 4 I) reaches variance ~4."""
    sigmas = torch.tensor([1.0], dtype=torch.float64)
    x = anneal_langevin(lambda x, level: -x / 4.0, torch.zeros(20000, 1, dtype=torch.float64), sigmas,
                        n_steps_each=400, step_lr=0.05, noise=torch_noise(torch.Generator().manual_seed(3)))
    assert abs(x.var().item() - 4.0) < 0.2  # discretisation bias ~ alpha/4 relative, sampling error ~2 %


def test_sample_api_uses_config_settings_and_is_seeded():
    model, cfg = load_checkpoint(fixture_path("ncsn_cifar10_ngf8_checkpoint.pth"),
                                 config=fixture_path("ncsn_cifar10_ngf8_config.yml"))
    a = sample(model, cfg, 3, seed=1, batch_size=2, n_steps_each=1, progress=False)
    b = sample(model, cfg, 3, seed=1, batch_size=2, n_steps_each=1, progress=False)
    c = sample(model, cfg, 3, seed=2, batch_size=2, n_steps_each=1, progress=False)
    assert a.shape == (3, 3, 32, 32) and torch.equal(a, b) and not torch.equal(a, c)


def test_philox_rng_is_batch_size_independent():
    model, cfg = load_checkpoint(fixture_path("ncsnv2_cifar10_ngf8_checkpoint.pth"),
                                 config=fixture_path("ncsnv2_cifar10_ngf8_config.yml"))
    cfg = cfg.replace(model=dataclasses.replace(cfg.model, num_classes=12))
    model.sigmas = cfg.sigmas(torch.float32)  # a 12-level ladder keeps the test short
    kw = dict(seed=5, n_steps_each=2, progress=False, rng="philox")
    a = sample(model, cfg, 5, batch_size=5, **kw)
    b = sample(model, cfg, 5, batch_size=2, **kw)
    tail = sample(model, cfg, 2, batch_size=2, first_index=3, **kw)
    # Convolutions round differently per batch size (~1e-6 relative), nothing else differs.
    scale = a.abs().max()
    assert (a - b).abs().max() <= 1e-4 * scale and (a[3:] - tail).abs().max() <= 1e-4 * scale
    assert not torch.allclose(a, sample(model, cfg, 5, batch_size=5, **{**kw, "seed": 6}))
