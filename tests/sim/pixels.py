"""Reading the learning-curve PNG back: is each strategy's curve drawn in both panels?"""

from __future__ import annotations

from pathlib import Path

import numpy as np

#: the first two colours of matplotlib's default cycle: the plot's strategies in STRATEGY_MODELS order
COLOURS = {"random": (0x1F, 0x77, 0xB4), "lasl": (0xFF, 0x7F, 0x0E)}
#: figsize (13, 5.5) at 110 dpi
SIZE = (605, 1430)


def curve_pixels(path: Path, min_pixels: int = 150) -> dict[str, bool]:
    """For random (the first curve's colour) and lasl (the second's): are at least ``min_pixels`` pixels of
    that exact colour in each half of the figure (the records panel and the characters panel)?"""
    import matplotlib.image

    img = matplotlib.image.imread(str(path))
    assert img.shape[:2] == SIZE, img.shape
    rgb = img[:, :, :3]
    half = SIZE[1] // 2
    out = {}
    for name, colour in COLOURS.items():
        hit = np.all(np.abs(rgb - np.array(colour) / 255.0) < 0.02, axis=2)
        out[name] = bool(hit[:, :half].sum() >= min_pixels and hit[:, half:].sum() >= min_pixels)
    return out
