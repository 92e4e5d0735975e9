"""Turning samples into files: uint8 conversion, image grids, .npz and PNG, all written atomically."""

from __future__ import annotations

import io
import math
from pathlib import Path

import numpy as np
import torch
from PIL import Image, ImageDraw

from .config import Config
from .fileio import atomic_write_bytes


def data_transform(x: torch.Tensor, config: Config) -> torch.Tensor:
    """[0, 1] image space -> model space (the originals' data_transform, for the initial state)."""
    if config.data.logit_transform:
        lam = 1e-6
        x = lam + (1 - 2 * lam) * x
        return torch.log(x) - torch.log1p(-x)
    if config.data.rescaled:
        return 2 * x - 1.0
    return x


def inverse_data_transform(x: torch.Tensor, config: Config) -> torch.Tensor:
    """Model space -> [0, 1] image space, as the originals do before saving (then clamped)."""
    if config.data.logit_transform:
        x = torch.sigmoid(x)
    elif config.data.rescaled:
        x = (x + 1.0) / 2.0
    return x.clamp(0.0, 1.0)


def to_uint8_nhwc(x: torch.Tensor) -> np.ndarray:
    """[0, 1] floats (N, C, H, W) -> uint8 (N, H, W, C), rounded as torchvision's save_image does."""
    x = x.detach().float().cpu().clamp(0, 1)
    return x.mul(255).add(0.5).clamp(0, 255).to(torch.uint8).permute(0, 2, 3, 1).numpy()


def make_grid(images: np.ndarray, nrow: int | None = None, padding: int = 2) -> np.ndarray:
    """uint8 (N, H, W, C) -> one uint8 (H', W', C) image, `nrow` images per row."""
    n, h, w, c = images.shape
    nrow = nrow or max(1, math.ceil(math.sqrt(n)))
    rows = math.ceil(n / nrow)
    grid = np.zeros((rows * (h + padding) + padding, nrow * (w + padding) + padding, c), np.uint8)
    for i, img in enumerate(images):
        r, col = divmod(i, nrow)
        y0, x0 = padding + r * (h + padding), padding + col * (w + padding)
        grid[y0:y0 + h, x0:x0 + w] = img
    return grid


def png_bytes(image: np.ndarray | Image.Image) -> bytes:
    if isinstance(image, np.ndarray):
        image = Image.fromarray(image[..., 0] if image.shape[-1] == 1 else image)
    buf = io.BytesIO()
    image.save(buf, format="PNG")
    return buf.getvalue()


def save_png(path: str | Path, image: np.ndarray | Image.Image) -> None:
    atomic_write_bytes(path, png_bytes(image))


def save_npz(path: str | Path, samples: np.ndarray, **extra) -> None:
    """`arr_0` is the uint8 NHWC array, the layout FID tools (e.g. the TF and torch FID code) read."""
    buf = io.BytesIO()
    np.savez(buf, samples, **extra)
    atomic_write_bytes(path, buf.getvalue())


def scatter_plot(panels: list[tuple[str, np.ndarray]], extent: float = 10.0, size: int = 360,
                 ) -> Image.Image:
    """Side-by-side 2-D scatter plots (title, points (N, 2)) drawn with Pillow."""
    margin, title_h = 10, 22
    img = Image.new("RGB", (len(panels) * (size + margin) + margin, size + title_h + margin), "white")
    draw = ImageDraw.Draw(img)
    for k, (title, pts) in enumerate(panels):
        x0, y0 = margin + k * (size + margin), title_h
        draw.rectangle([x0, y0, x0 + size, y0 + size], outline="black")
        draw.text((x0 + 4, 4), title, fill="black")
        scale = size / (2 * extent)
        for px, py in np.asarray(pts, dtype=np.float64):
            u, v = x0 + (px + extent) * scale, y0 + (extent - py) * scale
            if x0 <= u <= x0 + size and y0 <= v <= y0 + size:
                draw.point((u, v), fill=(31, 119, 180))
    return img
