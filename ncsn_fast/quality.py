"""A judge for digit samples: a small CNN trained on the held-out digits (never seen by the score model).

`score_digits(images)` reports the share of images it classifies as a digit with confidence >= 0.9, the mean
confidence and the class histogram; on real digits of the training split (which the classifier never saw)
it gives the reference figures. An 11th class, "not a digit", is trained on junk (uniform noise, flat
images, digits drowned in noise, two digits overlaid), so that a blank or a smudge does not pass for a
digit the way it would with 10 classes only. The weights ship in `assets/digits_classifier.pt` (made by
`train_classifier()`, a few seconds on a CPU, deterministic).
"""

from __future__ import annotations

from importlib import resources

import torch
import torch.nn.functional as F
from torch import nn

from .digits import load_digits

CONFIDENT = 0.9


class DigitClassifier(nn.Module):
    """16x16 grey digits -> 11 logits (0-9, 10 = not a digit): two conv/pool stages and a linear layer."""

    def __init__(self):
        super().__init__()
        self.conv1 = nn.Conv2d(1, 16, 3, padding=1)
        self.conv2 = nn.Conv2d(16, 32, 3, padding=1)
        self.fc = nn.Linear(32 * 4 * 4, 11)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = F.max_pool2d(F.relu(self.conv1(x)), 2)
        x = F.max_pool2d(F.relu(self.conv2(x)), 2)
        return self.fc(x.flatten(1))


def _augment(x: torch.Tensor, g: torch.Generator) -> torch.Tensor:
    """Shifts of up to one pixel: 450 images are few, and samples are not perfectly centred."""
    shifts = torch.randint(-1, 2, (2,), generator=g).tolist()
    return torch.roll(x, shifts=shifts, dims=(2, 3))


def junk(x: torch.Tensor, n: int, g: torch.Generator) -> torch.Tensor:
    """n images that are not digits, a quarter of each kind, made from the digits x."""
    k = n // 4
    noise = torch.rand(k, 1, 16, 16, generator=g)
    flat = torch.rand(k, 1, 1, 1, generator=g).expand(k, 1, 16, 16)
    i = torch.randint(0, len(x), (2, n - 2 * k), generator=g)
    drowned = (x[i[0, :k]] + 0.5 * torch.randn(k, 1, 16, 16, generator=g)).clamp(0, 1)
    overlaid = torch.maximum(x[i[0, k:]], x[i[1, k:]])
    return torch.cat([noise, flat, drowned, overlaid])


def train_classifier(steps: int = 800, seed: int = 0) -> DigitClassifier:
    """Adam on the held-out split, batches of 64 digits (one-pixel shifts) + 16 junk images."""
    torch.manual_seed(seed)
    g = torch.Generator().manual_seed(seed)
    x, y = load_digits("heldout", 16)
    net = DigitClassifier()
    opt = torch.optim.Adam(net.parameters(), lr=3e-3)
    for _ in range(steps):
        idx = torch.randint(0, len(x), (64,), generator=g)
        batch = torch.cat([_augment(x[idx], g), junk(x, 16, g)])
        labels = torch.cat([y[idx], torch.full((16,), 10)])
        loss = F.cross_entropy(net(batch), labels)
        opt.zero_grad()
        loss.backward()
        opt.step()
    return net.eval()


def load_classifier() -> DigitClassifier:
    net = DigitClassifier()
    with (resources.files("ncsn_fast") / "assets" / "digits_classifier.pt").open("rb") as f:
        net.load_state_dict(torch.load(f, map_location="cpu", weights_only=True))
    return net.eval()


@torch.no_grad()
def score_digits(images: torch.Tensor, classifier: DigitClassifier | None = None) -> dict:
    """images: (N, 1, 16, 16) in [0, 1] (or uint8 (N, 16, 16, 1) as in samples.npz)."""
    if images.dtype == torch.uint8:
        images = images.permute(0, 3, 1, 2).float() / 255.0
    if images.shape[1:] != (1, 16, 16):
        raise ValueError(f"expected digits of shape (N, 1, 16, 16), got {tuple(images.shape)}")
    net = classifier or load_classifier()
    prob = torch.softmax(net(images.float()), dim=1)
    conf, label = prob.max(dim=1)
    digit = label < 10
    return {"n": len(images), "confident_share": ((conf >= CONFIDENT) & digit).float().mean().item(),
            "not_a_digit_share": (~digit).float().mean().item(),
            "mean_confidence": conf[digit].mean().item() if digit.any() else 0.0,
            "histogram": torch.bincount(label[digit], minlength=10).tolist()}


def accuracy(classifier: DigitClassifier, split: str = "train") -> float:
    x, y = load_digits(split, 16)
    with torch.no_grad():
        return (classifier(x).argmax(1) == y).float().mean().item()


def describe(score: dict) -> str:
    """One line for people: confident share, rejects, class histogram."""
    hist = " ".join(f"{d}:{c}" for d, c in enumerate(score["histogram"]))
    return (f"digit classifier: {100 * score['confident_share']:.0f} % of {score['n']} classified with confidence "
            f">= {CONFIDENT} ({100 * score['not_a_digit_share']:.0f} % not a digit); classes {hist}")
