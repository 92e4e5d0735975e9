"""The adaptive-step SDE solver (sampling/adaptive.py): one step against a hand-computed case (accepted and
rejected), the distribution it reaches on a Gaussian, its evaluation counts, its refusals, and on a network: the
fast path equals the reference, samples do not depend on the batch, the command line reports the evaluations."""

import math

import pytest
import torch
from conftest import fixture_path

from ncsn_fast import load_checkpoint
from ncsn_fast.sampling import Denoiser, SamplerSettings, plan, sample
from ncsn_fast.sampling.adaptive import VeSde, adaptive_step, sample_adaptive

MU, TAU = 1.0, 0.5  # data N(MU, TAU^2 I): s(x, sigma) = -(x - MU) / (TAU^2 + sigma^2)


def gaussian(sigma_min=0.01, sigma_max=10.0) -> Denoiser:
    def score(x, sigma):
        return -(x - MU) / (TAU ** 2 + sigma.view(-1, *([1] * (x.dim() - 1))) ** 2)
    return Denoiser.from_function(score, sigma_min, sigma_max)


def s(x: float, sigma: float) -> float:
    return -(x - MU) / (TAU ** 2 + sigma ** 2)


def one_step(rtol: float, atol: float):
    """From t = 1 (sigma 2) with h = 1/2 on sigma(t) = 2^t: the step and the hand-computed K1, K2."""
    x0, z, h, eps = 3.0, 0.3, 0.5, 1e-5
    g2 = lambda t: 2 * (2.0 ** t) ** 2 * math.log(2.0)  # noqa: E731
    k1 = h * g2(1) * s(x0, 2.0) + math.sqrt(h * g2(1)) * z
    k2 = h * g2(0.5) * s(x0 + k1, 2 ** 0.5) + math.sqrt(h * g2(0.5)) * z
    delta = max(atol, rtol * max(abs(x0), abs(x0 + k1)))
    e = abs(k2 - k1) / 2 / delta
    x = torch.full((2, 1), x0)
    got = adaptive_step(gaussian(1.0, 2.0), VeSde(2.0, 1.0), x, x.clone(), torch.ones(2, dtype=torch.float64),
                        torch.full((2,), h, dtype=torch.float64), torch.full((2, 1), z), rtol=rtol, atol=atol,
                        eps=eps, safety=0.9, exponent=0.9)
    return got, (x0, k1, k2, e, h, eps)


def test_one_step_accepted():
    (x, x_prev, t, h, e), (x0, k1, k2, e_want, h0, eps) = one_step(rtol=10.0, atol=1e-3)
    assert e_want <= 1
    assert float(e[0]) == pytest.approx(e_want, rel=1e-5)
    assert float(x[0]) == pytest.approx(x0 + (k1 + k2) / 2, rel=1e-6)  # extrapolated: the improved-Euler step
    assert float(x_prev[0]) == pytest.approx(x0 + k1, rel=1e-6)
    assert float(t[0]) == 0.5
    assert float(h[0]) == pytest.approx(min(0.5 - eps, 0.9 * h0 * e_want ** -0.9), rel=1e-5)


def test_one_step_rejected():
    (x, x_prev, t, h, e), (x0, k1, k2, e_want, h0, eps) = one_step(rtol=1e-4, atol=1e-6)
    assert e_want > 1
    assert float(e[0]) == pytest.approx(e_want, rel=1e-5)
    assert float(x[0]) == x0 and float(x_prev[0]) == x0 and float(t[0]) == 1.0  # nothing moves
    assert float(h[0]) == pytest.approx(0.9 * h0 * e_want ** -0.9, rel=1e-5) and float(h[0]) < h0


def _gaussian_run(rtol: float, n: int = 300):
    g = torch.Generator().manual_seed(0)
    x = MU + 20.0 * torch.randn(n, 64, generator=g)
    ticks, counts = [], []
    out = sample_adaptive(gaussian(0.01, 20.0), x, torch.tensor([20.0, 0.01]),
                          noise=lambda step, like: torch.randn(like.shape, generator=g), rtol=rtol,
                          progress=ticks.append, counts=counts.append)
    return out, sum(ticks), counts[0]


def test_reaches_the_data_distribution_and_counts_its_evaluations():
    out, ticks, counts = _gaussian_run(0.05)
    assert abs(float(out.mean()) - MU) < 4 * TAU / math.sqrt(300)
    assert abs(float(out.std()) / TAU - 1) < 0.05
    # Each sample: 2 per step + the denoising step; the batch runs until its slowest sample arrives.
    assert counts.shape == (300,) and bool((counts % 2 == 1).all())
    assert ticks == int(counts.max()) and int(counts.min()) < int(counts.max())
    _, _, loose = _gaussian_run(0.3, n=50)
    assert float(loose.float().mean()) < 0.6 * float(counts[:50].float().mean())  # looser: fewer evaluations


def test_divergence_and_bad_settings_are_named():
    def bad(x, sigma):  # NaN below sigma 1
        return torch.where(sigma.view(-1, 1) < 1.0, torch.nan, -x)
    den = Denoiser.from_function(bad, 0.01, 10.0)
    noise = lambda step, like: torch.zeros_like(like)  # noqa: E731
    with pytest.raises(FloatingPointError, match=r"sample \d+ of the batch became NaN or inf at sigma"):
        sample_adaptive(den, torch.ones(3, 4), torch.tensor([10.0, 0.01]), noise=noise)
    with pytest.raises(ValueError, match="rtol"):
        sample_adaptive(den, torch.ones(3, 4), torch.tensor([10.0, 0.01]), noise=noise, rtol=0.0)


@pytest.fixture(scope="module")
def v2():
    return load_checkpoint(fixture_path("ncsnv2_cifar10_ngf8_checkpoint.pth"),
                           config=fixture_path("ncsnv2_cifar10_ngf8_config.yml"))


def test_on_a_network_fast_equals_reference_and_batch_does_not_matter(v2):
    model, cfg = v2
    kw = dict(sampler="adaptive", rtol=0.5, progress=False)
    a = sample(model, cfg, 5, batch_size=5, **kw)
    b = sample(model, cfg, 5, batch_size=2, **kw)
    assert torch.equal(a, b), (a - b).abs().max()
    ref = sample(model, cfg, 5, batch_size=3, method="reference", rng="philox", **kw)
    assert torch.isfinite(ref).all()
    assert (a - ref).abs().max() <= 1e-3 * ref.abs().max()


def test_plan_defaults_and_refusals(v2):
    model, cfg = v2
    p = plan(SamplerSettings("adaptive"), Denoiser.from_model(model), cfg)
    assert p.evals is None and p.program is None
    assert p.reference.keywords["rtol"] == 0.05
    assert p.reference.keywords["atol"] == pytest.approx(1 / 255)  # NCSNv2's data lie in [0, 1]
    v1, cfg1 = load_checkpoint(fixture_path("ncsn_cifar10_ngf8_checkpoint.pth"),
                               config=fixture_path("ncsn_cifar10_ngf8_config.yml"))
    with pytest.raises(ValueError, match="knows only its ladder"):
        plan(SamplerSettings("adaptive"), Denoiser.from_model(v1), cfg1)


def test_command_line_reports_the_evaluations(tmp_path, capsys):
    """sample and generate (the built-in model) name the solver and what it spent, per sample and in all; generate
    makes the same images as sample (a sample depends on its index only)."""
    import numpy as np

    from ncsn_fast.cli.main import main
    assert main(["sample", "--sampler", "adaptive", "--tol", "0.5", "-n", "3", "--out", str(tmp_path / "s"),
                 "--quiet", "--dtype", "float32"]) == 0
    text = capsys.readouterr().out
    assert "sampler: adaptive (improved Euler SDE steps, 2 evaluations each, rtol 0.5" in text
    line = [ln for ln in text.splitlines() if ln.startswith("network evaluations per sample: mean")]
    assert len(line) == 1 and line[0].endswith("in all for 3 samples")
    assert main(["generate", "--sampler", "adaptive", "--tol", "0.5", "-n", "3", "--batch-size", "2",
                 "--out", str(tmp_path / "g"), "--quiet", "--dtype", "float32"]) == 0
    assert line[0] in capsys.readouterr().out
    assert np.array_equal(np.load(tmp_path / "s" / "samples.npz")["arr_0"],
                          np.load(tmp_path / "g" / "samples.npz")["arr_0"])
