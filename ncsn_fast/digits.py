"""The built-in digits data: the UCI optical-recognition handwritten digits (the 1,797-image test set that
scikit-learn ships as `load_digits`), 8x8 with 16 grey levels, kept in `assets/digits.npz` (45 KB; CC BY 4.0,
E. Alpaydin and C. Kaynak, https://archive.ics.uci.edu/dataset/80). Images are scaled to [0, 1] and upscaled
bilinearly to the config's size (16 for the built-in model).

A fixed split keeps three quarters for the score model (`split='train'`, index % 4 != 0) and the rest
(`split='heldout'`) for the classifier that scores samples, so the judge never saw what the model learned.
"""

from __future__ import annotations

from importlib import resources

import numpy as np
import torch
import torch.nn.functional as F

SPLITS = ("train", "heldout", "all")


def _asset(name: str):
    return resources.files("ncsn_fast") / "assets" / name


def load_digits(split: str = "all", image_size: int = 16) -> tuple[torch.Tensor, torch.Tensor]:
    """(images float32 (N, 1, S, S) in [0, 1], labels int64 (N,)) of a split."""
    if split not in SPLITS:
        raise ValueError(f"split must be one of {SPLITS}, got {split!r}")
    with _asset("digits.npz").open("rb") as f, np.load(f) as z:
        images, labels = z["images"], z["labels"]
    index = np.arange(len(images))
    keep = {"train": index % 4 != 0, "heldout": index % 4 == 0, "all": index >= 0}[split]
    x = torch.from_numpy(images[keep].astype(np.float32) / 16.0)[:, None]
    if image_size != 8:
        x = F.interpolate(x, size=(image_size, image_size), mode="bilinear", align_corners=False).clamp_(0, 1)
    return x.contiguous(), torch.from_numpy(labels[keep].astype(np.int64))


class DigitsDataset:
    """The digits as a dataset of (1, S, S) tensors, for `data.batch_at`."""

    def __init__(self, image_size: int = 16, channels: int = 1, split: str = "train"):
        if channels != 1:
            raise ValueError(f"the digits are grey (1 channel); the config asks for {channels}")
        self.images, self.labels = load_digits(split, image_size)

    def __len__(self) -> int:
        return len(self.images)

    def __getitem__(self, i: int) -> torch.Tensor:
        return self.images[i]


BUILTIN_MODELS = {"digits": "digits_ncsnv2.pth", "digits-ncsnpp": "digits_ncsnpp.pth"}
"""The built-in models, both trained on the training split: NCSNv2 (ngf 16, config assets/digits.yml) and NCSN++
(VE, continuous; nf 16, config assets/digits_ncsnpp.json). Our checkpoint format: config embedded, EMA weights."""


def builtin_checkpoint(name: str = "digits"):
    """The path of a built-in model (BUILTIN_MODELS)."""
    if name not in BUILTIN_MODELS:
        raise ValueError(f"no built-in model {name!r}; there are {', '.join(BUILTIN_MODELS)}")
    return _asset(BUILTIN_MODELS[name])
