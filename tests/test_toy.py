"""The NCSN paper's 2-D check: annealed Langevin recovers the mixture weights, plain Langevin does not."""

import torch

from ncsn_fast.toy import GaussianMixture2D, run_toy


def test_exact_score_is_gradient_of_log_density():
    mix = GaussianMixture2D()
    x = torch.randn(16, 2, dtype=torch.float64) * 6
    for sigma in (0.1, 1.0, 20.0):
        xr = x.clone().requires_grad_(True)
        var = 1 + sigma ** 2
        mu = torch.tensor(mix.means, dtype=torch.float64)
        logp = torch.logsumexp(torch.log(torch.tensor(mix.weights, dtype=torch.float64))
                               - 0.5 * ((xr[:, None] - mu) ** 2).sum(-1) / var, dim=1)
        (grad,) = torch.autograd.grad(logp.sum(), xr)
        torch.testing.assert_close(mix.score(x, sigma), grad)


def test_annealed_recovers_weights_plain_does_not():
    mix = GaussianMixture2D()
    annealed = mix.mode_fraction(run_toy(n=6000, seed=0, annealed=True))
    plain = mix.mode_fraction(run_toy(n=6000, seed=0, annealed=False))
    assert abs(annealed - 0.2) <= 0.03
    assert abs(plain - 0.2) > 0.15  # stuck near the 50/50 split of the uniform start
