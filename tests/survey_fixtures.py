"""Two visits of a plot whose truth is known by construction, for the tracking tests.

:func:`first_visit` draws a photo-quadrat (textured seabed, colonies of three classes) and
its label mask. :func:`second_visit` makes the next year's visit of any photo and label
mask: it picks colonies away from the border and changes them, one per change (grown,
shrunk, partial mortality, removed, re-labelled to another genus, two fused by a bridge of
tissue, one split by a band of sand), adds a recruit on bare sand, then moves the camera
(rotation, zoom, shift, a little perspective) and changes the light. It returns the
expected fate of every first-visit colony, in the order
:func:`coral_core.tracking.colonies_from_label_mask` lists them.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field

import cv2
import numpy as np

from coral_core.tracking import colonies_from_label_mask

BACKGROUND = 0
CLASSES = {1: "Acropora", 2: "Porites", 3: "Pocillopora"}
COLORS = {1: (150, 112, 168), 2: (196, 164, 86), 3: (206, 118, 122)}


@dataclass(frozen=True)
class Camera:
    """How the camera moved between the visits, and how the light changed."""

    rotation_deg: float = 4.0
    zoom: float = 1.06
    shift: tuple[float, float] = (10.0, -8.0)
    perspective: float = 3e-5
    gain: float = 0.85
    gamma: float = 1.15
    tint: tuple[float, float, float] = (-6.0, 4.0, 10.0)

    def matrix(self, height: int, width: int) -> np.ndarray:
        """First-visit pixel -> second-visit pixel (OpenCV centres), about the image centre."""
        cx, cy = (width - 1) / 2, (height - 1) / 2
        angle = np.deg2rad(self.rotation_deg)
        c, s = self.zoom * np.cos(angle), self.zoom * np.sin(angle)
        centre = np.array([[1, 0, -cx], [0, 1, -cy], [0, 0, 1.0]])
        motion = np.array(
            [
                [c, -s, cx + self.shift[0]],
                [s, c, cy + self.shift[1]],
                [self.perspective, -0.5 * self.perspective, 1.0],
            ]
        )
        return motion @ centre


STILL = Camera(0.0, 1.0, (0.0, 0.0), 0.0, 1.0, 1.0, (0.0, 0.0, 0.0))


@dataclass
class SecondVisit:
    """The second visit and what tracking should find.

    Attributes:
        photo: ``(H, W, 3)`` uint8 RGB, or None when no first photo was given.
        mask: ``(H, W)`` uint8 label mask.
        matrix: the true first -> second pixel transform.
        expected: first-visit colony index -> fate, every colony.
        genus_changed: first-visit colonies given another class.
        recruits: colonies added.
    """

    photo: np.ndarray | None
    mask: np.ndarray
    matrix: np.ndarray
    expected: dict[int, str]
    genus_changed: set[int] = field(default_factory=set)
    recruits: int = 0


def _noise(rng: np.random.Generator, height: int, width: int, scale: float) -> np.ndarray:
    small = rng.normal(size=(max(2, int(height / scale) + 2), max(2, int(width / scale) + 2)))
    smooth = cv2.resize(small, (width, height), interpolation=cv2.INTER_CUBIC)
    return smooth / (np.abs(smooth).max() + 1e-9)


def _blob(rng: np.random.Generator, cx: float, cy: float, radius: float) -> np.ndarray:
    angles = np.linspace(0, 2 * np.pi, 48, endpoint=False)
    wobble = 1 + sum(
        rng.uniform(0, 0.12) * np.cos(k * angles + rng.uniform(0, 2 * np.pi)) for k in (2, 3, 5)
    )
    ring = np.stack([cx + radius * wobble * np.cos(angles), cy + radius * wobble * np.sin(angles)])
    return np.round(ring.T).astype(np.int32)


def _texture(rng: np.random.Generator, value: int, shape: tuple[int, int]) -> np.ndarray:
    color = np.array(COLORS[value], dtype=np.float64)
    pattern = 0.8 + 0.3 * _noise(rng, shape[0], shape[1], 5)
    return color * pattern[..., None] + rng.normal(0, 5, (*shape, 3))


def first_visit(
    seed: int = 0, width: int = 560, height: int = 400
) -> tuple[np.ndarray, np.ndarray]:
    """A quadrat: ``(H, W, 3)`` uint8 RGB photo and ``(H, W)`` uint8 mask (0 = sand,
    1..3 = :data:`CLASSES`). Twelve colonies on a jittered 4x3 grid; the two of the middle
    row's first cells are of one class and close, so they can fuse."""
    rng = np.random.default_rng(seed)
    photo = np.empty((height, width, 3))
    photo[:] = (200.0, 188.0, 152.0)
    photo += 26 * _noise(rng, height, width, 30)[..., None]
    photo += 12 * _noise(rng, height, width, 6)[..., None]
    for _ in range(120):  # rubble: corners for the feature matcher
        centre = (int(rng.integers(width)), int(rng.integers(height)))
        axes = (int(rng.integers(2, 7)), int(rng.integers(2, 5)))
        shade = float(rng.uniform(90, 170))
        cv2.ellipse(photo, centre, axes, float(rng.uniform(0, 180)), 0, 360,
                    (shade, shade * 0.92, shade * 0.8), -1)  # fmt: skip
    mask = np.zeros((height, width), np.uint8)
    # The grid fills the middle 72% of each side, so the camera move keeps every colony.
    cell_w, cell_h = 0.18 * width, 0.24 * height
    for row in range(3):
        for col in range(4):
            value = 1 + (row * 4 + col) % 3
            cx = 0.14 * width + (col + 0.5) * cell_w + rng.uniform(-4, 4)
            cy = 0.14 * height + (row + 0.5) * cell_h + rng.uniform(-4, 4)
            radius = rng.uniform(0.26, 0.3) * min(cell_w, cell_h)
            if row == 1 and col in (0, 1):
                value = 2
                cx = 0.14 * width + (col + 0.5) * cell_w + (10 if col == 0 else -10)
                radius = 0.28 * min(cell_w, cell_h)
            ring = _blob(rng, cx, cy, radius)
            region = np.zeros_like(mask)
            cv2.fillPoly(region, [ring], 1)
            region = region.astype(bool) & (mask == BACKGROUND)
            mask[region] = value
            photo[region] = _texture(rng, value, (height, width))[region]
    photo += rng.normal(0, 4, photo.shape)
    return np.clip(photo, 0, 255).astype(np.uint8), mask


def _components(region: np.ndarray) -> int:
    return cv2.connectedComponents(region.view(np.uint8), connectivity=8)[0] - 1


def second_visit(
    mask: np.ndarray,
    colony_values: Sequence[int],
    photo: np.ndarray | None = None,
    camera: Camera = Camera(),
    seed: int = 0,
    margin: float = 0.12,
    min_area: int = 1,
) -> SecondVisit:
    """The next visit of ``mask`` (and ``photo``): see the module docstring.

    Args:
        mask: ``(H, W)`` uint8 label mask, 0 = background.
        colony_values: values of colony classes.
        margin: colonies within this share of the image's side from the border stay as they
            are (the camera move may take them out of view).
        min_area: colonies of fewer pixels are not colonies (as ``--min-colony-area``).
    """
    rng = np.random.default_rng(seed)
    height, width = mask.shape
    names = {v: str(v) for v in range(256)}
    colonies = colonies_from_label_mask(mask, colony_values, names, min_area=min_area)
    new = mask.copy()
    colour = None if photo is None else photo.astype(np.float64)
    removed = np.zeros(mask.shape, bool)
    index_map = np.full(mask.shape, -1, np.int32)
    for index, colony in enumerate(colonies):
        x, y, w, h = colony.bbox
        index_map[y : y + h, x : x + w][colony.mask] = index

    def full(index: int) -> np.ndarray:
        return index_map == index

    def clearance(index: int) -> float:
        others = (index_map >= 0) & (index_map != index)
        distance = cv2.distanceTransform((~others).view(np.uint8), cv2.DIST_L2, 5)
        return float(distance[full(index)].min())

    mx, my = margin * width, margin * height
    usable = [
        i
        for i, c in enumerate(colonies)
        if c.area >= 300
        and c.left >= mx
        and c.top >= my
        and c.left + c.bbox[2] <= width - mx
        and c.top + c.bbox[3] <= height - my
    ]
    expected = {i: "persisted" for i in range(len(colonies))}
    changed: set[int] = set()
    genus_changed: set[int] = set()

    def paint(region: np.ndarray, value: int, like: int) -> None:
        new[region] = value
        if colour is not None:
            reference = colour[full(like)].mean(axis=0)
            pattern = 0.85 + 0.25 * _noise(rng, height, width, 5)[..., None]
            colour[region] = (reference * pattern + rng.normal(0, 5, colour.shape))[region]

    def clear(region: np.ndarray) -> None:
        new[region] = BACKGROUND
        removed[region] = True

    # Fusion: the closest pair of one class with nothing else between them.
    pairs = []
    for a in usable:
        for b in usable:
            if a < b and colonies[a].value == colonies[b].value:
                gap = _gap(full(a), full(b))
                if gap < 60:
                    pairs.append((gap, a, b))
    if pairs:
        _, a, b = min(pairs)
        bridge = _bridge(full(a), full(b), thickness=max(8, round(np.sqrt(colonies[a].area) / 3)))
        bridge &= (index_map < 0) | (index_map == a) | (index_map == b)
        paint(bridge & (new == BACKGROUND), colonies[a].value, a)
        if _components(full(a) | full(b) | bridge) == 1:
            expected[a] = expected[b] = "fusion"
            changed |= {a, b}
    # Fission: the largest colony left, cut through its centroid by a band of sand.
    for i in sorted((i for i in usable if i not in changed), key=lambda i: -colonies[i].area):
        xs = np.nonzero(full(i))[1]
        band = np.abs(np.arange(width)[None, :] - xs.mean()) <= 4
        band = np.broadcast_to(band, mask.shape) & full(i)
        parts = full(i) & ~band
        count, _, stats, _ = cv2.connectedComponentsWithStats(parts.view(np.uint8))
        if count == 3 and stats[1:, 4].min() >= 0.25 * colonies[i].area:
            clear(band)
            expected[i] = "fission"
            changed.add(i)
            break
    spare = iter([i for i in usable if i not in changed])
    for fate in ("death", "growth", "shrinkage", "partial_mortality", "genus"):
        i = next(spare, None)
        if i is None:
            break
        region = full(i)
        changed.add(i)
        if fate == "death":
            clear(region)
            expected[i] = "death"
        elif fate == "growth":
            reach = int(max(3, min(6, clearance(i) / 2 - 2)))
            kernel = cv2.getStructuringElement(cv2.MORPH_ELLIPSE, (2 * reach + 1,) * 2)
            grown = cv2.dilate(region.view(np.uint8), kernel).astype(bool) & (new == BACKGROUND)
            paint(grown, colonies[i].value, i)
        elif fate == "shrinkage":
            kernel = cv2.getStructuringElement(cv2.MORPH_ELLIPSE, (5, 5))
            kept = cv2.erode(region.view(np.uint8), kernel).astype(bool)
            clear(region & ~kept)
        elif fate == "partial_mortality":
            xs = np.nonzero(region)[1]
            clear(region & (np.arange(width)[None, :] > np.percentile(xs, 40)))
            expected[i] = "partial_mortality"
        else:
            other = next(v for v in colony_values if v != colonies[i].value)
            new[region] = other
            genus_changed.add(i)
    for i in set(range(len(colonies))) - changed:  # the camera move may lose colonies
        seen = np.count_nonzero(_move_mask(full(i).view(np.uint8), camera))
        if seen < 0.5 * colonies[i].area * camera.zoom**2:
            expected[i] = "out_of_view"
    recruits = 0
    free = (index_map < 0) & ~_border(mask.shape, margin)
    distance = cv2.distanceTransform(free.view(np.uint8), cv2.DIST_L2, 5)
    if colonies and distance.max() > 14:
        cy, cx = np.unravel_index(int(np.argmax(distance)), distance.shape)
        disc = np.zeros(mask.shape, np.uint8)
        cv2.circle(disc, (int(cx), int(cy)), 9, 1, -1)
        paint(disc.astype(bool), colonies[0].value, 0)
        recruits = 1
    return SecondVisit(
        photo=_move_photo(colour, removed, mask != BACKGROUND, camera)
        if colour is not None
        else None,
        mask=_move_mask(new, camera),
        matrix=camera.matrix(height, width),
        expected=expected,
        genus_changed=genus_changed,
        recruits=recruits,
    )


def _border(shape: tuple[int, int], margin: float) -> np.ndarray:
    height, width = shape
    inside = np.zeros(shape, bool)
    my, mx = int(margin * height), int(margin * width)
    inside[my : height - my, mx : width - mx] = True
    return ~inside


def _gap(a: np.ndarray, b: np.ndarray) -> float:
    distance = cv2.distanceTransform((~a).view(np.uint8), cv2.DIST_L2, 5)
    return float(distance[b].min())


def _bridge(a: np.ndarray, b: np.ndarray, thickness: int) -> np.ndarray:
    """A band of pixels joining the two regions' closest points."""
    to_a = cv2.distanceTransform((~a).view(np.uint8), cv2.DIST_L2, 5)
    to_b = cv2.distanceTransform((~b).view(np.uint8), cv2.DIST_L2, 5)
    pb = np.unravel_index(int(np.argmin(np.where(b, to_a, np.inf))), a.shape)
    pa = np.unravel_index(int(np.argmin(np.where(a, to_b, np.inf))), a.shape)
    band = np.zeros(a.shape, np.uint8)
    cv2.line(band, (int(pa[1]), int(pa[0])), (int(pb[1]), int(pb[0])), 1, thickness)
    return band.astype(bool)


def _move_mask(mask: np.ndarray, camera: Camera) -> np.ndarray:
    height, width = mask.shape
    return cv2.warpPerspective(
        mask, camera.matrix(height, width), (width, height), flags=cv2.INTER_NEAREST,
        borderMode=cv2.BORDER_CONSTANT, borderValue=BACKGROUND,
    )  # fmt: skip


def _move_photo(
    photo: np.ndarray, removed: np.ndarray, colonies: np.ndarray, camera: Camera
) -> np.ndarray:
    """Sand painted over what was removed, the camera moved, the light changed."""
    image = np.clip(photo, 0, 255).astype(np.uint8)
    # Sand from around every first-visit colony, so no colony colour bleeds into it.
    hidden = cv2.dilate(colonies.view(np.uint8), np.ones((5, 5), np.uint8))
    sand = cv2.inpaint(image, hidden, 5, cv2.INPAINT_TELEA)
    image[removed] = sand[removed]
    height, width = removed.shape
    moved = cv2.warpPerspective(
        image, camera.matrix(height, width), (width, height), flags=cv2.INTER_LINEAR,
        borderMode=cv2.BORDER_REFLECT,
    ).astype(np.float64)  # fmt: skip
    lit = 255 * camera.gain * (moved / 255) ** camera.gamma + np.array(camera.tint)
    return np.clip(lit, 0, 255).astype(np.uint8)


def warped_copy(photo: np.ndarray, matrix: np.ndarray, camera: Camera = Camera()) -> np.ndarray:
    """``photo`` seen through ``matrix`` (OpenCV centres) under ``camera``'s light."""
    height, width = photo.shape[:2]
    moved = cv2.warpPerspective(
        photo, matrix, (width, height), flags=cv2.INTER_LINEAR, borderMode=cv2.BORDER_REFLECT
    ).astype(np.float64)
    lit = 255 * camera.gain * (moved / 255) ** camera.gamma + np.array(camera.tint)
    return np.clip(lit, 0, 255).astype(np.uint8)
