"""Test and bench images made here, so no third-party media is needed: rendered documents and digit scans.

Documents are lines of text rendered with the DejaVu fonts (Debian's ``fonts-dejavu-core``), optionally
rotated and noisy; digits are scikit-learn's bundled handwritten digit scans (8x8, 17 grey levels),
written out as PNG.
"""

from __future__ import annotations

import io
from functools import lru_cache
from pathlib import Path

import numpy as np
from numpy.typing import NDArray
from PIL import Image, ImageDraw, ImageFont

FONT_DIR = Path("/usr/share/fonts/truetype/dejavu")
FONTS = ("DejaVuSans.ttf", "DejaVuSerif.ttf", "DejaVuSansMono.ttf")


def render_document(
    lines: list[str],
    *,
    size: int = 28,
    angle: float = 0.0,
    noise: float = 0.0,
    font: str = FONTS[0],
    seed: int = 0,
) -> Image.Image:
    """White page, black lines of ``size``-pixel text, rotated by ``angle`` degrees, Gaussian ``noise`` (0-255 sd)."""
    face = ImageFont.truetype(str(FONT_DIR / font), size)
    width = max(int(face.getlength(line)) for line in lines) + 4 * size
    height = int(len(lines) * size * 2.2) + 2 * size
    page = Image.new("L", (width, height), 255)
    draw = ImageDraw.Draw(page)
    for k, line in enumerate(lines):
        draw.text((2 * size, size + int(k * size * 2.2)), line, fill=0, font=face)
    if angle:
        page = page.rotate(angle, resample=Image.Resampling.BICUBIC, expand=True, fillcolor=255)
    if noise:
        pixels = np.asarray(page, dtype=np.float64)
        pixels += np.random.default_rng(seed).normal(0.0, noise, pixels.shape)
        page = Image.fromarray(np.clip(pixels, 0, 255).astype(np.uint8))
    return page.convert("RGB")


def png(image: Image.Image) -> bytes:
    out = io.BytesIO()
    image.save(out, format="PNG")
    return out.getvalue()


def document_png(lines: list[str], **options: float | str | int) -> bytes:
    return png(render_document(lines, **options))  # type: ignore[arg-type]


@lru_cache(maxsize=1)
def _digits() -> tuple[NDArray[np.float64], NDArray[np.int64]]:
    from sklearn.datasets import load_digits

    bunch = load_digits()
    return np.asarray(bunch.images, dtype=np.float64), np.asarray(bunch.target, dtype=np.int64)


def digit_image(index: int, side: int = 32) -> Image.Image:
    """Scan ``index`` of the 1,797 (dark ink on white), upscaled to ``side`` pixels."""
    images, _ = _digits()
    grey = (255 - images[index] * 255 / 16).astype(np.uint8)
    return Image.fromarray(grey).resize((side, side), Image.Resampling.BILINEAR).convert("RGB")


def digit_labels() -> NDArray[np.int64]:
    return _digits()[1]


def digit_png(digit: int, k: int) -> bytes:
    """The ``k``-th scan of ``digit`` as PNG."""
    index = int(np.flatnonzero(digit_labels() == digit)[k])
    return png(digit_image(index))
