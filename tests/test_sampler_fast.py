"""The samplers on networks: the fused table loop equals each sampler's reference on the same stream (every
backend here), the device-state loop equals the fused loop, samples do not depend on the batch, and a
ladder-only model (NCSN v1) gets ladder schedules and clear refusals."""

import pytest
import torch
from conftest import fixture_path, skip_unless_backend

from ncsn_fast import load_checkpoint
from ncsn_fast.models import set_backend
from ncsn_fast.sampling import Denoiser, GraphedProgram, SamplerSettings, plan, run_program, sample
from ncsn_fast.sampling.run import Sampler

FIXED_STEP = {"euler": {"steps": 4}, "heun": {"steps": 3}, "edm": {"steps": 3, "s_tmax": 50.0},
              "edm-ancestral": {"steps": 4, "nu": 0.8},
              "dpmpp-2m": {"steps": 4}, "cas": {"steps": 6, "step_lr": 9e-5}, "pc": {"steps": 3}}


@pytest.fixture(scope="module")
def v2():
    return load_checkpoint(fixture_path("ncsnv2_cifar10_ngf8_checkpoint.pth"),
                           config=fixture_path("ncsnv2_cifar10_ngf8_config.yml"))


@pytest.fixture(scope="module")
def v1():
    return load_checkpoint(fixture_path("ncsn_cifar10_ngf8_checkpoint.pth"),
                           config=fixture_path("ncsn_cifar10_ngf8_config.yml"))


@pytest.mark.parametrize("name", FIXED_STEP)
def test_fast_path_equals_reference(v2, name):
    """Same start, same stream: float rounding apart (the fused network and update round otherwise), equal."""
    model, cfg = v2
    kw = FIXED_STEP[name]
    ref = sample(model, cfg, 3, sampler=name, method="reference", rng="philox", progress=False, **kw)
    fast = sample(model, cfg, 3, sampler=name, progress=False, **kw)
    assert torch.isfinite(ref).all()
    assert (fast - ref).abs().max() <= 1e-4 * ref.abs().max()


@pytest.mark.parametrize("backend", ["torch", "cpu", "triton"])
@pytest.mark.parametrize("name", ["heun", "pc"])
def test_every_backend_runs_the_table_alike(v2, name, backend):
    """The table loop on each backend against the torch backend's (the reference update, in-kernel noise)."""
    skip_unless_backend(backend)
    model, cfg = v2
    settings = SamplerSettings(name, **FIXED_STEP[name])
    den = Denoiser.from_model(model)
    p = plan(settings, den, cfg)
    ids = torch.arange(5, 8)
    x0 = p.program.initial_state(den, 2, ids, cfg.image_shape, "cpu")
    want = run_program(p.program, den, x0, seed=2, sample_ids=ids, backend="torch")
    got = run_program(p.program, den, x0, seed=2, sample_ids=ids, backend=backend)
    assert (got - want).abs().max() <= 1e-5 * want.abs().max()


@pytest.mark.parametrize("name", ["edm", "edm-ancestral", "dpmpp-2m", "pc"])
def test_device_state_loop_equals_fused_loop(v2, name):
    """GraphedProgram uncaptured (exactly the steps a CUDA graph holds) == run_program, bit for bit, also with
    a 2-step chunk and a remainder; a second run starts afresh."""
    model, cfg = v2
    fast_model = load_checkpoint(fixture_path("ncsnv2_cifar10_ngf8_checkpoint.pth"),
                                 config=fixture_path("ncsnv2_cifar10_ngf8_config.yml"))[0].eval()
    set_backend(fast_model, "cpu")
    den = Denoiser.from_model(fast_model)
    p = plan(SamplerSettings(name, **FIXED_STEP[name]), den, cfg)
    ids = torch.tensor([3, 0, 7])
    x0 = p.program.initial_state(den, 1, ids, cfg.image_shape, "cpu")
    want = run_program(p.program, den, x0, seed=1, sample_ids=ids, backend="cpu")
    loop = GraphedProgram(den, 3, cfg.image_shape, "cpu", backend="cpu", steps_per_graph=2, capture=False)
    counted = []
    got = loop(p.program, x0, seed=1, sample_ids=ids, progress=counted.append)
    assert torch.equal(got, want) and sum(counted) == p.program.evals
    assert torch.equal(loop(p.program, x0, seed=1, sample_ids=ids), want)


@pytest.mark.parametrize("name", ["heun", "edm", "edm-ancestral", "pc", "cas"])
def test_samples_do_not_depend_on_the_batch(v2, name):
    model, cfg = v2
    kw = FIXED_STEP[name]
    a = sample(model, cfg, 5, sampler=name, batch_size=5, progress=False, **kw)
    b = sample(model, cfg, 5, sampler=name, batch_size=2, progress=False, **kw)
    assert torch.equal(a, b), (a - b).abs().max()
    ra = sample(model, cfg, 5, sampler=name, batch_size=5, progress=False, method="reference", rng="philox", **kw)
    rb = sample(model, cfg, 5, sampler=name, batch_size=3, progress=False, method="reference", rng="philox", **kw)
    assert torch.equal(ra, rb)


def test_pc_batch_mean_is_the_original_and_batch_dependent(v2):
    model, cfg = v2
    kw = dict(sampler="pc", steps=2, batch_mean=True, progress=False, method="reference", rng="philox")
    a, b = sample(model, cfg, 4, batch_size=4, **kw), sample(model, cfg, 4, batch_size=2, **kw)
    assert not torch.equal(a, b)


def test_x_init_replaces_the_start(v2):
    model, cfg = v2
    den = Denoiser.from_model(model)
    p = plan(SamplerSettings("euler", steps=3), den, cfg)
    start = p.initial_state(den, 11, torch.arange(2), cfg.image_shape, "cpu", reference=True)
    own = sample(model, cfg, 2, sampler="euler", steps=3, seed=11, progress=False)
    given = sample(model, cfg, 2, sampler="euler", steps=3, seed=0, x_init=start, progress=False)
    assert torch.equal(own, given)
    with pytest.raises(ValueError, match="x_init must have shape"):
        sample(model, cfg, 3, sampler="euler", x_init=start, progress=False)


def test_ladder_model_gets_ladder_schedules(v1):
    model, cfg = v1
    den = Denoiser.from_model(model)
    assert not den.continuous
    ladder = set(cfg.sigmas(torch.float64).tolist())
    for name in ("euler", "heun", "dpmpp-2m", "cas", "pc"):
        p = plan(SamplerSettings(name, steps=6, step_lr=9e-5 if name == "cas" else None), den, cfg)
        assert all(float(s) in ladder for s in p.sigmas if s > 0), name
        assert all(row.sigma in ladder for row in p.program.rows), name
    # 10 levels, 30 asked: every level once
    assert len(plan(SamplerSettings("pc", steps=30), den, cfg).sigmas) == 10


def test_ladder_model_fast_equals_reference(v1):
    model, cfg = v1
    ref = sample(model, cfg, 2, sampler="heun", steps=4, method="reference", rng="philox", progress=False)
    fast = sample(model, cfg, 2, sampler="heun", steps=4, progress=False)
    assert (fast - ref).abs().max() <= 1e-4 * ref.abs().max()


@pytest.mark.parametrize("settings,match", [
    (SamplerSettings("edm"), "not on the ladder"),
    (SamplerSettings("ode"), "knows only its ladder"),
    (SamplerSettings("heun", sigma_max=0.77), "not on the ladder"),
    (SamplerSettings("heun", sigma_max=5.0), "beyond the ladder"),
])
def test_ladder_model_refuses_other_sigma(v1, settings, match):
    model, cfg = v1
    with pytest.raises(ValueError, match=match):
        plan(settings, Denoiser.from_model(model), cfg)


def test_continuous_model_refuses_sigma_outside_its_range(v2):
    model, cfg = v2
    with pytest.raises(ValueError, match="outside what"):
        plan(SamplerSettings("heun", sigma_max=500.0), Denoiser.from_model(model), cfg)
    with pytest.raises(ValueError, match="outside what"):
        plan(SamplerSettings("euler", sigma_min=1e-4), Denoiser.from_model(model), cfg)


@pytest.mark.parametrize("kw,match", [
    (dict(name="nope"), "unknown sampler"), (dict(name="heun", steps=0), "steps"),
    (dict(name="edm", churn=-1.0), "churn"), (dict(name="heun", churn=3.0), "edm sampler only"),
    (dict(name="edm-ancestral", nu=1.5), "nu"), (dict(name="edm", split=0.1), "edm-ancestral sampler only"),
    (dict(name="pc", snr=0.0), "snr"), (dict(name="heun", sigma_max=-1.0), "sigma_max"),
])
def test_bad_settings(kw, match):
    with pytest.raises(ValueError, match=match):
        SamplerSettings(**kw)


def test_ald_options_are_refused_for_other_samplers(v2):
    model, cfg = v2
    with pytest.raises(ValueError, match="takes steps="):
        sample(model, cfg, 2, sampler="heun", n_steps_each=3, progress=False)


def test_evaluation_counts(v2):
    model, cfg = v2
    den = Denoiser.from_model(model)
    counts = {name: plan(SamplerSettings(name, steps=10, step_lr=8e-5), den, cfg).evals
              for name in ("euler", "heun", "edm", "dpmpp-2m", "cas", "pc")}
    assert counts == {"euler": 10, "heun": 19, "edm": 19, "dpmpp-2m": 10, "cas": 11, "pc": 20}
    # edm-ancestral: 2 per step to a sigma above split, 1 below (and for the step to 0)
    sig = plan(SamplerSettings("edm-ancestral", steps=10), den, cfg).sigmas
    above = int((sig[1:] > 0.1).sum())
    assert plan(SamplerSettings("edm-ancestral", steps=10), den, cfg).evals == 2 * above + (10 - above) and above > 1
    fs = Sampler(model, cfg, SamplerSettings("heun", steps=3), backend="cpu")
    ticks = []
    fs(torch.arange(2), ticks.append)
    assert sum(ticks) == fs.evals == 5


def test_ode_on_a_network(v2):
    model, cfg = v2
    x, = sample(model, cfg, 1, sampler="ode", rtol=1e-3, atol=1e-3, progress=False).unsqueeze(0)
    assert torch.isfinite(x).all()
