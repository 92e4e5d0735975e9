"""Training data: a folder of images (png/jpg, recursively), resized and centre-cropped to the config's size.

The batch of step s is a pure function of (seed, s): epoch e visits the images in the order of a permutation
seeded by (seed, e), and the horizontal flips of a batch come from a generator seeded by (seed, s). So a
resumed run sees exactly the batches an uninterrupted one would, and no loader state needs saving.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch
from PIL import Image

from .errors import NcsnError

EXTENSIONS = {".png", ".jpg", ".jpeg", ".bmp", ".webp"}


class ImageFolder:
    def __init__(self, root: str | Path, image_size: int, channels: int):
        self.root = Path(root)
        if not self.root.is_dir():
            raise NcsnError(f"--data {root}: not a folder")
        self.files = sorted(p for p in self.root.rglob("*") if p.suffix.lower() in EXTENSIONS and p.is_file())
        if not self.files:
            raise NcsnError(f"--data {root}: no images ({', '.join(sorted(EXTENSIONS))}) found")
        self.image_size, self.channels = image_size, channels

    def __len__(self) -> int:
        return len(self.files)

    def __getitem__(self, i: int) -> torch.Tensor:
        """Image i as float32 (C, H, W) in [0, 1]: shorter side resized to image_size, centre crop."""
        try:
            with Image.open(self.files[i]) as img:
                img = img.convert("L" if self.channels == 1 else "RGB")
                w, h = img.size
                s = self.image_size / min(w, h)
                img = img.resize((max(self.image_size, round(w * s)), max(self.image_size, round(h * s))),
                                 Image.BICUBIC)
                w, h = img.size
                left, top = (w - self.image_size) // 2, (h - self.image_size) // 2
                img = img.crop((left, top, left + self.image_size, top + self.image_size))
                arr = np.asarray(img, dtype=np.float32) / 255.0
        except OSError as e:
            raise NcsnError(f"cannot read image {self.files[i]}: {e}") from None
        arr = arr[None] if arr.ndim == 2 else arr.transpose(2, 0, 1)
        return torch.from_numpy(np.ascontiguousarray(arr))


def batch_indices(n: int, step: int, batch_size: int, seed: int) -> list[int]:
    """The dataset indices of the batch of `step` (epochs of seeded permutations, concatenated)."""
    out = []
    pos = step * batch_size
    while len(out) < batch_size:
        epoch, offset = divmod(pos, n)
        perm = torch.randperm(n, generator=torch.Generator().manual_seed(seed * 1_000_003 + epoch))
        take = min(batch_size - len(out), n - offset)
        out += perm[offset:offset + take].tolist()
        pos += take
    return out


def batch_at(data, step: int, batch_size: int, seed: int = 0, random_flip: bool = True,
             shard: tuple[int, int] = (0, 1)) -> torch.Tensor:
    """The global batch of `step` (batch_size images), or rank r's rows of it with shard=(r, world_size):
    batch_size / world_size images, only those read."""
    rank, world = shard
    if batch_size % world:
        raise NcsnError(f"the batch size {batch_size} does not split evenly over {world} processes")
    local = batch_size // world
    rows = slice(rank * local, (rank + 1) * local)
    x = torch.stack([data[i] for i in batch_indices(len(data), step, batch_size, seed)[rows]])
    if random_flip:
        flip = torch.rand(batch_size, generator=torch.Generator().manual_seed(seed * 1_000_003 + 7 * step + 1)) < 0.5
        flip = flip[rows]
        x[flip] = x[flip].flip(-1)
    return x
