"""A small synthetic reef sample for ``coralseg demo``: drawn here, so it is ours to ship.

Each photo-quadrat is sand and rubble under blue water with a few colonies of four genera,
each genus with its own colour family and growth texture (branching Acropora, massive
Porites, bumpy Pocillopora, plating Montipora). Colonies are irregular outlines; their
pixels are exactly those :func:`coral_core.formats.polygons.polygons_to_mask` gives the outline
(the rule ``coralseg prepare`` applies), painted largest first so that the smaller colony
is on top where two overlap, as ``prepare`` rasterizes them. The sample is written the way
CVAT exports a task: ``images/`` plus ``annotations.xml`` (CVAT for images 1.1, subsets
Train/Validation/Test), and a ``taxonomy.yaml`` of the four genera.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import cv2
import numpy as np
import yaml
from PIL import Image

from coral_core.atomic import atomic_path, write_text_atomically
from coral_core.formats.annotations import AnnotatedImage, AnnotationShape, to_cvat_xml
from coral_core.formats.polygons import Polygon, polygons_to_mask


@dataclass(frozen=True)
class Genus:
    """How one genus looks: its colour (RGB), the spread of that colour, its texture."""

    name: str
    color: tuple[int, int, int]
    legend: tuple[int, int, int]
    texture: str
    lobes: int


GENERA: tuple[Genus, ...] = (
    Genus("Acropora", (150, 112, 168), (31, 119, 180), "branching", 9),
    Genus("Porites", (196, 164, 86), (255, 127, 14), "massive", 3),
    Genus("Pocillopora", (206, 118, 122), (214, 39, 40), "bumpy", 5),
    Genus("Montipora", (190, 122, 54), (44, 160, 44), "plating", 4),
)
SUBSETS = (("Train", 0.6), ("Validation", 0.2), ("Test", 0.2))


@dataclass(frozen=True)
class SampleFiles:
    """Where a generated sample lies."""

    images: Path
    annotations: Path
    taxonomy: Path


def sample_files(root: Path) -> SampleFiles:
    return SampleFiles(root / "images", root / "annotations.xml", root / "taxonomy.yaml")


def write_sample(
    root: str | Path,
    count: int = 30,
    width: int = 448,
    height: int = 336,
    seed: int = 0,
    advance: Callable[[int], object] | None = None,
) -> SampleFiles:
    """Draw ``count`` quadrats into ``root`` (``images/``, ``annotations.xml``, ``taxonomy.yaml``).

    The annotations file is written last, atomically: its presence means the sample is
    complete. The same arguments always draw the same pixels.
    """
    if count < 3:
        raise ValueError(f"a sample needs at least 3 images (one per split), got {count}")
    files = sample_files(Path(root))
    files.images.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(seed)
    subsets = _subsets(count)
    images = []
    for index in range(count):
        pixels, shapes = draw_quadrat(rng, width, height)
        name = f"quadrat_{index:03d}.jpg"
        with atomic_path(files.images / name) as partial:
            Image.fromarray(pixels).save(partial, format="JPEG", quality=92)
        images.append(AnnotatedImage(name, width, height, tuple(shapes), subset=subsets[index]))
        if advance:
            advance(1)
    write_text_atomically(files.taxonomy, taxonomy_yaml())
    write_text_atomically(files.annotations, to_cvat_xml(images, [g.name for g in GENERA]))
    return files


def taxonomy_yaml() -> str:
    """The sample's taxonomy file: the four genera with their legend colours."""
    data = {
        "name": "demo-genera",
        "description": "the four genera of coralseg's synthetic demo sample",
        "classes": [
            {"name": g.name, "color": "#{:02x}{:02x}{:02x}".format(*g.legend)} for g in GENERA
        ],
    }
    return yaml.safe_dump(data, sort_keys=False)


def _subsets(count: int) -> list[str]:
    sizes = [max(1, round(count * share)) for _, share in SUBSETS[1:]]
    train = count - sum(sizes)
    names = [SUBSETS[0][0]] * train
    for (name, _), size in zip(SUBSETS[1:], sizes, strict=True):
        names += [name] * size
    return names


def draw_quadrat(
    rng: np.random.Generator, width: int, height: int
) -> tuple[np.ndarray, list[AnnotationShape]]:
    """One photo: ``(height, width, 3)`` uint8 RGB and its colonies as polygon shapes."""
    image = _seabed(rng, width, height)
    colonies = []
    for _ in range(int(rng.integers(4, 8))):
        genus = GENERA[int(rng.integers(len(GENERA)))]
        ring = _outline(rng, genus, width, height)
        mask = polygons_to_mask([Polygon(ring)], height, width)
        if mask.sum() >= 200:
            colonies.append((genus, ring, mask))
    colonies.sort(key=lambda colony: -int(colony[2].sum()))  # largest first: smaller on top
    for genus, _, mask in colonies:
        _paint(rng, image, genus, mask)
    image = _underwater(rng, image)
    shapes = [
        AnnotationShape(genus.name, "polygon", polygons=(Polygon(ring),))
        for genus, ring, _ in colonies
    ]
    return image, shapes


def _noise(rng: np.random.Generator, height: int, width: int, scale: float) -> np.ndarray:
    """Smooth noise in [-1, 1] with features about ``scale`` pixels wide."""
    small = rng.normal(size=(max(2, int(height / scale) + 2), max(2, int(width / scale) + 2)))
    field = cv2.resize(small, (width, height), interpolation=cv2.INTER_CUBIC)
    return field / (np.abs(field).max() + 1e-9)


def _seabed(rng: np.random.Generator, width: int, height: int) -> np.ndarray:
    sand = np.array([205.0, 192.0, 158.0]) + rng.normal(0, 8, 3)
    image = np.empty((height, width, 3))
    image[:] = sand
    image += 22 * _noise(rng, height, width, 40)[..., None]
    image += rng.normal(0, 6, (height, width, 1))
    for _ in range(int(rng.integers(15, 40))):  # rubble
        centre = (int(rng.integers(width)), int(rng.integers(height)))
        axes = (int(rng.integers(2, 9)), int(rng.integers(2, 6)))
        shade = float(rng.uniform(120, 190))
        stone = (shade, shade * 0.93, shade * 0.8)
        cv2.ellipse(image, centre, axes, float(rng.uniform(0, 180)), 0, 360, stone, -1)
    return image


def _outline(rng: np.random.Generator, genus: Genus, width: int, height: int) -> np.ndarray:
    side = min(width, height)
    radius = side * rng.uniform(0.08, 0.2)
    cx, cy = rng.uniform(0.1, 0.9) * width, rng.uniform(0.1, 0.9) * height
    angles = np.linspace(0, 2 * np.pi, 64, endpoint=False)
    wobble = np.ones_like(angles)
    for harmonic in range(2, 2 + genus.lobes):
        wobble += rng.uniform(0, 0.35 / harmonic**0.5) * np.cos(
            harmonic * angles + rng.uniform(0, 2 * np.pi)
        )
    r = radius * np.clip(wobble, 0.45, None)
    ring = np.stack([cx + r * np.cos(angles), cy + r * np.sin(angles)], axis=1)
    return np.round(ring, 2)  # what the CVAT XML keeps, so the pixels match the file


def _paint(rng: np.random.Generator, image: np.ndarray, genus: Genus, mask: np.ndarray) -> None:
    rows, cols = np.nonzero(mask)
    top, bottom, left, right = rows.min(), rows.max() + 1, cols.min(), cols.max() + 1
    region = mask[top:bottom, left:right]
    yy, xx = np.mgrid[top:bottom, left:right].astype(np.float64)
    cy, cx = yy[region].mean(), xx[region].mean()
    dist = np.hypot(yy - cy, xx - cx)
    theta = np.arctan2(yy - cy, xx - cx)
    phase = rng.uniform(0, 2 * np.pi)
    if genus.texture == "branching":
        pattern = np.cos(14 * theta + 0.15 * dist + phase) ** 8
    elif genus.texture == "bumpy":
        pattern = (np.sin(xx * 0.9 + phase) * np.sin(yy * 0.9)) ** 2
    elif genus.texture == "plating":
        pattern = 0.5 + 0.5 * np.sin(0.45 * dist + phase)
    else:
        pattern = 0.5 + 0.5 * _noise(rng, bottom - top, right - left, 6)
    edge = cv2.distanceTransform(region.astype(np.uint8), cv2.DIST_L2, 3)
    shade = 0.65 + 0.35 * np.clip(edge / 10.0, 0, 1)  # darker rims
    color = np.array(genus.color, dtype=np.float64) + rng.normal(0, 10, 3)
    texture = color * (0.75 + 0.4 * pattern)[..., None] * shade[..., None]
    texture += rng.normal(0, 5, texture.shape)
    window = image[top:bottom, left:right]
    window[region] = texture[region]


def _underwater(rng: np.random.Generator, image: np.ndarray) -> np.ndarray:
    height, width = image.shape[:2]
    water = np.array([40.0, 115.0, 150.0])
    depth = rng.uniform(0.12, 0.3)
    light = 1.0 + 0.12 * _noise(rng, height, width, 25)[..., None]  # caustics
    out = (image * light) * (1 - depth) + water * depth
    out = cv2.GaussianBlur(out, (3, 3), 0.6)
    return np.clip(out, 0, 255).astype(np.uint8)
