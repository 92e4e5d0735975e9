"""ncsn_fast.sample on a plain score function: every sampler, the noise stream, batch invariance, bad input."""

import pytest
import torch

import ncsn_fast

MU = torch.linspace(-1, 1, 16).view(1, 4, 4)


def score(x, sigma):
    """Data N(MU, 0.3^2 I): s = -(x - MU) / (0.09 + sigma^2)."""
    return -(x - MU) / (0.09 + sigma.view(-1, 1, 1, 1) ** 2)


def denoiser(x, sigma):
    return x + sigma.view(-1, 1, 1, 1) ** 2 * score(x, sigma)


KW = dict(sigmas=[5.0, 0.01], shape=(1, 4, 4), progress=False)


@pytest.mark.parametrize("sampler,opts", [("heun", {"steps": 6}), ("dpmpp-2m", {"steps": 8}),
                                          ("pc", {"steps": 10}), ("edm", {"steps": 6}), ("euler", {"steps": 6})])
def test_function_fast_equals_reference_and_batch(sampler, opts):
    fast = ncsn_fast.sample(score, n=6, sampler=sampler, **opts, **KW)
    ref = ncsn_fast.sample(score, n=6, sampler=sampler, method="reference", **opts, **KW)
    assert fast.shape == (6, 1, 4, 4) and torch.isfinite(fast).all()
    assert (fast - ref).abs().max() <= 1e-5 * ref.abs().max()
    assert torch.equal(fast, ncsn_fast.sample(score, n=6, sampler=sampler, batch_size=4, **opts, **KW))


def test_default_sampler_is_heun_and_reaches_the_data():
    x = ncsn_fast.sample(score, n=400, **KW)
    assert abs(float(x.mean(0).sub(MU).abs().mean())) < 0.05 and abs(float(x.std(0).mean()) - 0.3) < 0.03


def test_denoiser_kind_gives_the_score_kind_samples():
    a = ncsn_fast.sample(score, n=4, steps=6, **KW)
    b = ncsn_fast.sample(denoiser, n=4, steps=6, kind="denoiser", **KW)
    assert (a - b).abs().max() <= 1e-4 * a.abs().max()


def test_ald_on_a_function():
    x = ncsn_fast.sample(score, n=4, sampler="ald", sigmas=torch.logspace(0, -2, 10), shape=(1, 4, 4),
                         n_steps_each=3, step_lr=1e-4, denoise=True, progress=False)
    assert torch.isfinite(x).all()
    with pytest.raises(ValueError, match="n_steps_each= and step_lr="):
        ncsn_fast.sample(score, n=4, sampler="ald", **KW)


@pytest.mark.parametrize("fn,kw,err,match", [
    (lambda x, s: x[:, :, :2], {}, ValueError, r"returned shape \(2, 1, 2, 4\)"),
    (score, {"sigmas": None}, ValueError, "sigmas="),
    (score, {"kind": "energy"}, ValueError, "kind"),
    ("not callable", {}, TypeError, "callable"),
])
def test_bad_functions_raise_clearly(fn, kw, err, match):
    with pytest.raises(err, match=match):
        ncsn_fast.sample(fn, n=2, **{**KW, **kw})
