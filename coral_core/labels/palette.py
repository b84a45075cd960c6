"""Deterministic, visually distinct class colours for any number of classes.

Colours are RGB triples of ints in 0..255. Black (0, 0, 0) is reserved for background and
white (255, 255, 255) for ignore, so no generated colour is either.
"""

from __future__ import annotations

import functools

import numpy as np

RGB = tuple[int, int, int]

BACKGROUND_COLOR: RGB = (0, 0, 0)
IGNORE_COLOR: RGB = (255, 255, 255)
MAX_COLORS = 256

_GRID_LEVELS = np.linspace(0, 255, 16).round().astype(np.int64)  # candidates: 16^3 RGB colours


def _srgb_to_lab(rgb: np.ndarray) -> np.ndarray:
    """CIELAB (D65) of sRGB colours: (K, 3) ints 0..255 -> (K, 3) float64."""
    c = rgb.astype(np.float64) / 255.0
    linear = np.where(c <= 0.04045, c / 12.92, ((c + 0.055) / 1.055) ** 2.4)
    xyz = (
        linear
        @ np.array([[0.4124, 0.3576, 0.1805], [0.2126, 0.7152, 0.0722], [0.0193, 0.1192, 0.9505]]).T
    )
    xyz /= np.array([0.95047, 1.0, 1.08883])
    f = np.where(xyz > (6 / 29) ** 3, np.cbrt(xyz), xyz / (3 * (6 / 29) ** 2) + 4 / 29)
    return np.stack(
        [116 * f[:, 1] - 16, 500 * (f[:, 0] - f[:, 1]), 200 * (f[:, 1] - f[:, 2])], axis=1
    )


@functools.lru_cache(maxsize=1)
def _farthest_point_order() -> tuple[RGB, ...]:
    grid = np.stack(np.meshgrid(_GRID_LEVELS, _GRID_LEVELS, _GRID_LEVELS, indexing="ij"), -1)
    candidates = grid.reshape(-1, 3)
    lab = _srgb_to_lab(candidates)
    # Start as if background and ignore were already chosen, so no colour comes near them.
    anchors = _srgb_to_lab(np.array([BACKGROUND_COLOR, IGNORE_COLOR]))
    nearest = np.min(np.linalg.norm(lab[:, None, :] - anchors[None], axis=2), axis=1)
    order: list[RGB] = []
    for _ in range(MAX_COLORS):
        best = int(np.argmax(nearest))  # ties: the lowest index, so the order is fixed
        order.append(tuple(int(v) for v in candidates[best]))  # type: ignore[arg-type]
        nearest = np.minimum(nearest, np.linalg.norm(lab - lab[best], axis=1))
    return tuple(order)


def distinct_colors(n: int) -> list[RGB]:
    """Return ``n`` distinct RGB colours, the same ones on every call.

    Greedy farthest-point sampling in CIELAB over a 16x16x16 grid of RGB colours: each new
    colour is the one perceptually farthest from all earlier ones and from black and white.
    Prefixes are stable: ``distinct_colors(5) == distinct_colors(9)[:5]``.

    Args:
        n: number of colours, 0 <= n <= 256.

    Returns:
        ``n`` unique ``(r, g, b)`` tuples with ints in 0..255, never pure black or white.
    """
    if not 0 <= n <= MAX_COLORS:
        raise ValueError(f"the number of colours must be in 0..{MAX_COLORS}, got {n}")
    return list(_farthest_point_order()[:n])


def parse_color(value: object) -> RGB:
    """Parse a colour given as ``"#rrggbb"`` / ``"rrggbb"`` or a sequence of three ints.

    Raises:
        ValueError: with a sentence saying what is wrong with ``value``.
    """
    if isinstance(value, str):
        text = value.strip().removeprefix("#")
        if len(text) != 6:
            raise ValueError(f"colour {value!r} is not of the form '#rrggbb'")
        try:
            return (int(text[0:2], 16), int(text[2:4], 16), int(text[4:6], 16))
        except ValueError:
            raise ValueError(f"colour {value!r} is not of the form '#rrggbb'") from None
    if (
        isinstance(value, list | tuple)
        and len(value) == 3
        and all(isinstance(c, int) and not isinstance(c, bool) and 0 <= c <= 255 for c in value)
    ):
        return (value[0], value[1], value[2])
    raise ValueError(
        f"colour {value!r} must be '#rrggbb' or three integers in 0..255, e.g. [255, 128, 0]"
    )


def to_hex(color: RGB) -> str:
    """Format an RGB triple as ``"#rrggbb"`` (the form CVAT and FiftyOne use)."""
    return "#{:02x}{:02x}{:02x}".format(*color)
