"""The reference samplers' mathematics, on scores known in closed form: one step of each against a hand-computed
case, the probability-flow ODE's closed-form solution for a Gaussian (order of convergence), the distribution
the stochastic samplers reach, and the schedules."""

import math

import pytest
import torch

from ncsn_fast.sampling import Denoiser, geometric_sigmas, karras_sigmas
from ncsn_fast.sampling.ancestral import sample_edm_ancestral
from ncsn_fast.sampling.cas import sample_cas
from ncsn_fast.sampling.dpm_solver import sample_dpmpp_2m
from ncsn_fast.sampling.edm import churn_gammas, sample_euler, sample_heun
from ncsn_fast.sampling.ode import sample_ode
from ncsn_fast.sampling.pc import sample_pc

MU, TAU = 1.0, 0.5  # data N(MU, TAU^2 I): s(x, sigma) = -(x - MU) / (TAU^2 + sigma^2)


def gaussian(sigma_min=0.01, sigma_max=10.0, mu=MU, tau=TAU) -> Denoiser:
    def score(x, sigma):
        return -(x - mu) / (tau ** 2 + sigma.view(-1, *([1] * (x.dim() - 1))) ** 2)
    return Denoiser.from_function(score, sigma_min, sigma_max)


def s(x: float, sigma: float) -> float:
    return -(x - MU) / (TAU ** 2 + sigma ** 2)


def D(x: float, sigma: float) -> float:
    return x + sigma ** 2 * s(x, sigma)


def const_noise(values):
    """A noise sampler returning the given normals in order (one float per call, broadcast to x)."""
    it = iter(values)
    return lambda step, x: torch.full_like(x, next(it))


X0 = 3.0
REL = 1e-6  # x is float64 here, but the view hands the score sigma in float32 (as to a network)


def run(fn, sigmas, **kw):
    x = torch.full((1, 1), X0, dtype=torch.float64)
    return float(fn(gaussian(), x, torch.tensor(sigmas, dtype=torch.float64), **kw))


def test_euler_one_step():
    assert run(sample_euler, [2.0, 1.0]) == pytest.approx(X0 + (1 - 2) * (X0 - D(X0, 2)) / 2, rel=REL)


def test_heun_one_step():
    d1 = (X0 - D(X0, 2)) / 2
    x1 = X0 + (1 - 2) * d1
    d2 = (x1 - D(x1, 1)) / 1
    assert run(sample_heun, [2.0, 1.0]) == pytest.approx(X0 + (1 - 2) * (d1 + d2) / 2, rel=REL)


def test_edm_one_step_with_churn():
    """gamma = sqrt(2) - 1 (churn / N capped): t_hat = 2 sqrt(2), x_hat = x + sqrt(t_hat^2 - 4) S_noise eps."""
    t_hat, eps, s_noise = 2 * math.sqrt(2), 0.7, 1.5
    x_hat = X0 + math.sqrt(t_hat ** 2 - 4) * s_noise * eps
    d1 = (x_hat - D(x_hat, t_hat)) / t_hat
    x1 = x_hat + (1 - t_hat) * d1
    d2 = (x1 - D(x1, 1)) / 1
    want = x_hat + (1 - t_hat) * (d1 + d2) / 2
    got = run(sample_heun, [2.0, 1.0], churn=10.0, s_noise=s_noise, noise=const_noise([eps]))
    assert got == pytest.approx(want, rel=REL)


def test_edm_ancestral_churned_heun_step_above_split():
    """t_next = 1 > split: EDM's step with gamma = sqrt(2) - 1, S_noise 1."""
    t_hat, eps = 2 * math.sqrt(2), 0.7
    x_hat = X0 + math.sqrt(t_hat ** 2 - 4) * eps
    d1 = (x_hat - D(x_hat, t_hat)) / t_hat
    x1 = x_hat + (1 - t_hat) * d1
    want = x_hat + (1 - t_hat) * (d1 + (x1 - D(x1, 1))) / 2
    got = run(sample_edm_ancestral, [2.0, 1.0], split=0.5, nu=1.0, noise=const_noise([eps]))
    assert got == pytest.approx(want, rel=REL)


def test_edm_ancestral_ancestral_steps_below_split():
    """t_next <= split: x = D + t_next (sqrt(1 - nu^2) eps^ + nu z); the step to 0 returns D."""
    nu, z = 0.6, -0.4
    d0 = D(X0, 2)
    x1 = d0 + 1.0 * (0.8 * (X0 - d0) / 2 + nu * z)
    got = run(sample_edm_ancestral, [2.0, 1.0, 0.0], split=1.0, nu=nu, noise=const_noise([z]))
    assert got == pytest.approx(D(x1, 1), rel=REL)
    with pytest.raises(ValueError, match="nu"):
        run(sample_edm_ancestral, [2.0, 1.0], split=1.0, nu=1.5, noise=const_noise([z]))


def test_churn_gammas_follow_s_tmin_s_tmax():
    g = churn_gammas(torch.tensor([10.0, 5.0, 1.0, 0.1, 0.0]), churn=1.2, s_tmin=0.5, s_tmax=6.0)
    assert g == [0.0, 0.3, 0.3, 0.0]  # churn / N = 1.2 / 4, only where 0.5 <= t <= 6
    assert churn_gammas(torch.tensor([1.0, 0.0]), 100.0, 0, 10) == [pytest.approx(math.sqrt(2) - 1)]
    with pytest.raises(ValueError, match="churn"):
        churn_gammas(torch.tensor([1.0, 0.0]), -1.0, 0, 1)


def test_dpmpp_2m_two_steps():
    """First step first order, second with r = h_last / h = 1: D_d = 1.5 D - 0.5 D_old."""
    x1 = 0.5 * X0 + 0.5 * D(X0, 2)  # sigma 2 -> 1: x' = (s'/s) x - expm1(-h) D, expm1(-log 2) = -1/2
    d_old, d_new = D(X0, 2), D(x1, 1)
    want = 0.5 * x1 + 0.5 * (1.5 * d_new - 0.5 * d_old)
    assert run(sample_dpmpp_2m, [2.0, 1.0, 0.5]) == pytest.approx(want, rel=REL)
    assert run(sample_dpmpp_2m, [2.0, 0.0]) == pytest.approx(D(X0, 2), rel=REL)  # the last step: x = D


def test_cas_two_levels_and_denoise():
    eta, z = 0.6, 0.3
    beta = math.sqrt(1 - (2 / 1 * (1 - eta)) ** 2)
    x1 = X0 + eta * 4 * s(X0, 2) + beta * 1 * z
    x2 = x1 + eta * 1 * s(x1, 1)
    assert run(sample_cas, [2.0, 1.0], eta=eta, noise=const_noise([z]), denoise=False) == pytest.approx(x2, rel=REL)
    got = run(sample_cas, [2.0, 1.0], eta=eta, noise=const_noise([z]), denoise=True)
    assert got == pytest.approx(x2 + 1 * s(x2, 1), rel=REL)


def test_cas_refuses_an_inconsistent_eta():
    with pytest.raises(ValueError, match=r"eta .* > 0\.5"):
        run(sample_cas, [2.0, 1.0], eta=0.4, noise=const_noise([0.0]))


def test_pc_one_level_per_sample_step():
    """Corrector eps = 2 (snr |z| / |s|)^2 (one element: norms are absolute values), then the predictor to 0."""
    snr, zc, zp = 0.16, -0.8, 0.4
    eps = 2 * (snr * abs(zc) / abs(s(X0, 2))) ** 2
    xc = X0 + eps * s(X0, 2) + math.sqrt(2 * eps) * zc
    x_mean = xc + 4 * s(xc, 2)
    got = run(sample_pc, [2.0], snr=snr, noise=const_noise([zc, zp]), denoise=True)
    assert got == pytest.approx(x_mean, rel=REL)
    got = run(sample_pc, [2.0], snr=snr, noise=const_noise([zc, zp]), denoise=False)
    assert got == pytest.approx(x_mean + 2 * zp, rel=REL)


def _ode_exact(x_t, sigma_from, sigma_to):
    """The probability-flow ODE of a Gaussian: x - mu scales by sqrt((tau^2 + sigma^2) / (tau^2 + sigma_from^2))."""
    return MU + (x_t - MU) * math.sqrt((TAU ** 2 + sigma_to ** 2) / (TAU ** 2 + sigma_from ** 2))


@pytest.mark.parametrize("fn,order", [(sample_euler, 1), (sample_heun, 2), (sample_dpmpp_2m, 2)],
                         ids=["euler", "heun", "dpmpp-2m"])
def test_ode_solvers_converge_at_their_order(fn, order):
    """Error at sigma_min (no last step to 0) against the closed form, as the steps double: it falls by ~2^order."""
    sig_min, sig_max = 0.05, 10.0
    want = _ode_exact(X0 * 10, sig_max, sig_min)
    errors = []
    for n in (16, 32, 64):
        sig = karras_sigmas(n, sig_min, sig_max)[:-1]
        x = torch.full((1, 1), X0 * 10, dtype=torch.float64)
        errors.append(abs(float(fn(gaussian(), x, sig)) - want))
    ratios = [errors[0] / errors[1], errors[1] / errors[2]]
    assert all(2 ** order * 0.7 < r < 2 ** order * 1.5 for r in ratios), (errors, ratios)


def test_rk45_ode_matches_the_closed_form():
    x = torch.full((2, 3), X0 * 10)
    x[1] = -4.0
    ticks = []
    got = sample_ode(gaussian(0.05, 10.0), x, torch.tensor([10.0, 0.05]), eps=0.0, denoise=False, rtol=1e-7,
                     atol=1e-7, progress=ticks.append)
    evals = sum(ticks)  # reported through progress, as every sampler reports its evaluations
    assert torch.allclose(got[0], torch.tensor(_ode_exact(X0 * 10, 10.0, 0.05)).float(), atol=2e-5)
    assert torch.allclose(got[1], torch.tensor(_ode_exact(-4.0, 10.0, 0.05)).float(), atol=2e-5)
    assert 10 < evals < 2000


@pytest.mark.parametrize("name", ["heun", "edm", "edm-ancestral", "dpmpp-2m", "cas", "pc"])
def test_samplers_reach_the_data_distribution(name):
    """From x_T ~ N(mu, sigma_max^2) each sampler ends near N(mu, tau^2): mean and spread of 500 draws of 64
    dimensions (the corrector's norms need more than one dimension to mean anything)."""
    den = gaussian(0.01, 20.0)
    g = torch.Generator().manual_seed(0)
    x = MU + 20.0 * torch.randn(500, 64, generator=g, dtype=torch.float64)

    def noise(step, like):
        return torch.randn(like.shape, generator=g, dtype=like.dtype)
    if name in ("cas", "pc"):
        sig = geometric_sigmas(200, 0.01, 20.0)
        kw = {"eta": 0.1} if name == "cas" else {}
        fn = sample_cas if name == "cas" else sample_pc
    else:
        sig = karras_sigmas(40, 0.01, 20.0)
        fn = {"heun": sample_heun, "edm": sample_heun, "edm-ancestral": sample_edm_ancestral,
              "dpmpp-2m": sample_dpmpp_2m}[name]
        kw = {"edm": {"churn": 40.0, "s_tmin": 0.05, "s_tmax": 10.0},
              "edm-ancestral": {"split": 0.1, "nu": 1.0}}.get(name, {})
    out = fn(den, x, sig, noise=noise, **kw)
    assert abs(float(out.mean()) - MU) < 4 * TAU / math.sqrt(500)  # the samples' means vary; elements less
    assert abs(float(out.std()) / TAU - 1) < 0.05


def test_karras_and_geometric_schedules():
    k = karras_sigmas(5, 0.002, 80.0, rho=7.0)
    ramp = torch.linspace(0, 1, 5, dtype=torch.float64)
    want = (80 ** (1 / 7) + ramp * (0.002 ** (1 / 7) - 80 ** (1 / 7))) ** 7
    assert torch.allclose(k[:-1], want) and k[-1] == 0 and k[0] == pytest.approx(80) and k[-2] == pytest.approx(0.002)
    g = geometric_sigmas(4, 0.01, 10.0)
    assert torch.allclose(g, torch.tensor([10.0, 1.0, 0.1, 0.01], dtype=torch.float64))
    with pytest.raises(ValueError, match="steps"):
        karras_sigmas(0, 0.1, 1.0)
    with pytest.raises(ValueError, match="sigma_min"):
        geometric_sigmas(3, 2.0, 1.0)
