"""Reading the learning-curve PNG back: is each strategy's curve drawn in every panel?"""

from __future__ import annotations

from pathlib import Path

import numpy as np

#: the first two colours of matplotlib's default cycle: the plot's strategies in STRATEGY_MODELS order
COLOURS = {"random": (0x1F, 0x77, 0xB4), "lasl": (0xFF, 0x7F, 0x0E)}
#: figsize (19, 5.5) at 100 dpi: three panels (records, characters, corrections)
SIZE = (550, 1900)
PANELS = 3


def curve_pixels(path: Path, min_pixels: int = 150) -> dict[str, bool]:
    """For random (the first curve's colour) and lasl (the second's): are at least ``min_pixels`` pixels of
    that exact colour in each third of the figure (the records, characters and corrections panels)?"""
    import matplotlib.image

    img = matplotlib.image.imread(str(path))
    assert img.shape[:2] == SIZE, img.shape
    rgb = img[:, :, :3]
    width = SIZE[1] // PANELS
    out = {}
    for name, colour in COLOURS.items():
        hit = np.all(np.abs(rgb - np.array(colour) / 255.0) < 0.02, axis=2)
        out[name] = all(hit[:, k * width:(k + 1) * width].sum() >= min_pixels for k in range(PANELS))
    return out
