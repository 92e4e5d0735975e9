"""Denoising score matching: a case computed by hand, and the label/noise draws."""

import torch

from ncsn_fast.losses import dsm_loss


def test_dsm_hand_computed():
    # x = 0, sigma = 2, z = (1, -1): x~ = (2, -2), target = -z/sigma = (-0.5, 0.5).
    # score returns (0.5, 0.5): residual (1, 0), 1/2 * 1 * sigma^2 = 2.
    x = torch.zeros(1, 1, 1, 2)
    sigmas = torch.tensor([2.0, 1.0])
    seen = {}

    def score(xt, labels):
        seen["xt"], seen["labels"] = xt.clone(), labels.clone()
        return torch.full_like(xt, 0.5)

    loss = dsm_loss(score, x, sigmas, labels=torch.tensor([0]), noise=torch.tensor([[[[1.0, -1.0]]]]))
    assert loss.item() == 2.0
    assert seen["xt"].flatten().tolist() == [2.0, -2.0]
    # anneal_power 0 drops the sigma^2 weight: 1/2 * 1 = 0.5.
    assert dsm_loss(score, x, sigmas, labels=torch.tensor([0]), anneal_power=0.0,
                    noise=torch.tensor([[[[1.0, -1.0]]]])).item() == 0.5


def test_dsm_perfect_score_of_gaussian_data():
    # For data x = 0 exactly, the score of the blurred density is -x~/sigma^2 = target: loss 0.
    x = torch.zeros(8, 1, 4, 4)
    sigmas = torch.tensor([3.0, 1.0, 0.3])
    loss = dsm_loss(lambda xt, lab: -xt / sigmas[lab].view(-1, 1, 1, 1) ** 2, x, sigmas)
    assert loss.abs().item() < 1e-10


def test_dsm_draws_labels_then_noise_from_generator():
    x = torch.rand(16, 1, 2, 2)
    sigmas = torch.tensor([1.0, 0.5, 0.25])
    got = {}

    def score(xt, labels):
        got["labels"] = labels
        return torch.zeros_like(xt)

    per = dsm_loss(score, x, sigmas, generator=torch.Generator().manual_seed(5), reduce=False)
    g = torch.Generator().manual_seed(5)
    labels = torch.randint(0, 3, (16,), generator=g)
    z = torch.randn(x.shape, generator=g)
    assert torch.equal(got["labels"], labels)
    expected = 0.5 * (z.view(16, -1) ** 2).sum(-1)  # sigma^2 * |z/sigma|^2 / 2
    torch.testing.assert_close(per, expected)
