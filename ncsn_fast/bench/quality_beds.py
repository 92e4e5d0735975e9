"""Two test beds that measure a sampler's quality: an exact score, and the built-in digits network.

Exact score: a Gaussian mixture whose K components are the built-in digits' training images mu_k, each with
spread tau: p(x) = 1/K sum_k N(x; mu_k, tau^2 I). Blurred by sigma it stays a mixture, with spread
tau^2 + sigma^2, so its score is known at every sigma:

    s(x, sigma) = sum_k w_k(x) (mu_k - x) / (tau^2 + sigma^2),   w = softmax_k(-|x - mu_k|^2 / (2 (tau^2 + sigma^2)))

and what a sampler gets wrong is the sampler's alone. Its samples are judged by their mean log-density
under p (against that of exact draws) and by how evenly they spread over the components.

Network: the digits model's samples are judged in the feature space of the project's digit classifier (its
512 features before the last layer), by the Frechet distance to the held-out digits, and by the
classifier's confident share and class histogram (quality.py).
"""

from __future__ import annotations

import math
import warnings

import numpy as np
import torch
import torch.nn.functional as F

from ..digits import load_digits
from ..quality import CONFIDENT, DigitClassifier


class DigitsMixture:
    """The exact-score bed: components = the digits' training split (16 x 16), spread tau."""

    def __init__(self, tau: float = 0.05, image_size: int = 16):
        images, _ = load_digits("train", image_size)
        self.shape = tuple(images.shape[1:])
        self.mu = images.reshape(len(images), -1).double()
        self.mu_sq = (self.mu ** 2).sum(1)
        self.tau = tau

    @property
    def k(self) -> int:
        return len(self.mu)

    def _sq_dist(self, x: torch.Tensor) -> torch.Tensor:
        xf = x.reshape(len(x), -1).double()
        return ((xf ** 2).sum(1, keepdim=True) - 2 * xf @ self.mu.T + self.mu_sq).clamp_min(0)

    def score(self, x: torch.Tensor, sigma: torch.Tensor) -> torch.Tensor:
        """s(x, sigma) for x (N, ...) and sigma (N,), in x's dtype."""
        var = self.tau ** 2 + sigma.double().view(-1, 1) ** 2
        w = torch.softmax(-self._sq_dist(x) / (2 * var), dim=1)
        xf = x.reshape(len(x), -1).double()
        return ((w @ self.mu - xf) / var).reshape(x.shape).to(x.dtype)

    def log_density(self, x: torch.Tensor) -> torch.Tensor:
        """log p(x) per sample (nats), float64."""
        d = self.mu.shape[1]
        t2 = self.tau ** 2
        return (torch.logsumexp(-self._sq_dist(x) / (2 * t2), dim=1) - math.log(self.k)
                - 0.5 * d * math.log(2 * math.pi * t2))

    def nearest(self, x: torch.Tensor) -> torch.Tensor:
        return self._sq_dist(x).argmin(dim=1)

    def sample(self, n: int, generator: torch.Generator) -> torch.Tensor:
        k = torch.randint(0, self.k, (n,), generator=generator)
        z = torch.randn(n, self.mu.shape[1], generator=generator, dtype=torch.float64)
        return (self.mu[k] + self.tau * z).float().reshape(n, *self.shape)

    def judge(self, x: torch.Tensor, exact: torch.Tensor) -> dict:
        """Mean log-density of x against exact draws (the gap, nats per image: 0 is perfect, below is worse),
        and the distinct nearest components hit, as a share of what as many exact draws hit."""
        finite = torch.isfinite(x.reshape(len(x), -1)).all(1)
        lp, lp_exact = self.log_density(x[finite]), self.log_density(exact)
        hit, hit_exact = len(torch.unique(self.nearest(x[finite]))), len(torch.unique(self.nearest(exact)))
        return {"log_density": float(lp.mean()) if finite.any() else -math.inf,
                "log_density_gap": float(lp.mean() - lp_exact.mean()) if finite.any() else -math.inf,
                "log_density_gap_median": float(lp.median() - lp_exact.median()) if finite.any() else -math.inf,
                "coverage": hit / hit_exact, "non_finite": int((~finite).sum())}


@torch.no_grad()
def classifier_features(net: DigitClassifier, images: torch.Tensor) -> torch.Tensor:
    """The classifier's 512 features before its last layer, for images (N, 1, 16, 16) in [0, 1]."""
    x = F.max_pool2d(F.relu(net.conv1(images.float())), 2)
    x = F.max_pool2d(F.relu(net.conv2(x)), 2)
    return x.flatten(1)


def frechet_distance(a: torch.Tensor, b: torch.Tensor) -> float:
    """|mu_a - mu_b|^2 + Tr(S_a + S_b - 2 (S_a S_b)^(1/2)) of two feature sets (rows = samples)."""
    from scipy import linalg

    a, b = a.double().numpy(), b.double().numpy()
    mu_a, mu_b = a.mean(0), b.mean(0)
    s_a, s_b = np.cov(a, rowvar=False), np.cov(b, rowvar=False)
    with warnings.catch_warnings():  # fewer samples than features: singular covariances, as in every FID
        warnings.simplefilter("ignore", linalg.LinAlgWarning)
        covmean = linalg.sqrtm(s_a @ s_b)
    covmean = covmean.real if np.iscomplexobj(covmean) else covmean
    return float(((mu_a - mu_b) ** 2).sum() + np.trace(s_a + s_b - 2 * covmean))


class DigitsJudge:
    """The network bed's judge: features and labels of the held-out digits, computed once."""

    def __init__(self, net: DigitClassifier):
        self.net = net
        heldout, labels = load_digits("heldout", 16)
        self.features = classifier_features(net, heldout)
        self.class_share = torch.bincount(labels, minlength=10).double() / len(labels)

    @torch.no_grad()
    def __call__(self, images: torch.Tensor) -> dict:
        """images (N, 1, 16, 16) in [0, 1] (clamped here, as saving them does)."""
        images = images.float().clamp(0, 1)
        prob = torch.softmax(self.net(images), dim=1)
        conf, label = prob.max(dim=1)
        digit = label < 10
        hist = torch.bincount(label[digit], minlength=10)
        share = hist.double() / max(int(digit.sum()), 1)
        return {"fd": frechet_distance(classifier_features(self.net, images), self.features),
                "confident_share": float(((conf >= CONFIDENT) & digit).float().mean()),
                "not_a_digit_share": float((~digit).float().mean()),
                "class_tv": float(0.5 * (share - self.class_share).abs().sum()), "histogram": hist.tolist()}
