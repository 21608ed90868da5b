"""Checks on rendered picture files, shared by the demo and benchmark-plot tests."""

from __future__ import annotations

from pathlib import Path

import numpy as np
from matplotlib.colors import to_rgb
from PIL import Image


def rgb(color: str) -> tuple[int, int, int]:
    """A matplotlib colour as 8-bit RGB, as it appears in an opaque PNG."""
    r, g, b = (round(255 * c) for c in to_rgb(color))
    return r, g, b


def frames(path: Path, fmt: str, size: tuple[int, int]) -> list[np.ndarray]:
    """Open ``path``, check its format and pixel size, and return its frames as RGB arrays.

    Every frame must have more than one colour (a blank picture fails).
    """
    with Image.open(path) as image:
        assert image.format == fmt
        assert image.size == size
        out = []
        for number in range(getattr(image, "n_frames", 1)):
            image.seek(number)
            out.append(np.asarray(image.convert("RGB")))
    for frame in out:
        assert len(np.unique(frame.reshape(-1, 3), axis=0)) > 1
    return out


def colours(frame: np.ndarray) -> set[tuple[int, int, int]]:
    """The distinct RGB colours of a frame."""
    return {tuple(int(v) for v in c) for c in np.unique(frame.reshape(-1, 3), axis=0)}
