"""Percent cover of each class per image, and tables of it over many images.

Definitions, for one image, a :class:`~coral_core.ecology.legend.ClassLegend` and a region
of interest (ROI; the whole image by default):

* ``pixels[c]``: pixels of class ``c`` inside the ROI;
* ``annotated_pixels``: the sum of ``pixels`` over all classes (ignored values excluded);
* ``cover_percent[c] = 100 * pixels[c] / annotated_pixels``: cover is over the annotated
  area, so unlabelled pixels neither dilute nor inflate it; NaN when nothing is annotated;
* ``annotated_fraction = annotated_pixels / roi_pixels``: how much of the sample the cover
  rests on (1.0 for fully labelled masks).

Percent covers of one image add up to 100 over the legend's classes.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

import numpy as np

from coral_core.ecology.legend import MAX_VALUE, ClassLegend
from coral_core.ecology.tables import csv_number


@dataclass(frozen=True, eq=False)
class ImageCover:
    """Cover of one image.

    Attributes:
        classes: class names, the legend's order.
        pixels: ``(C,)`` int64 pixels per class inside the ROI.
        roi_pixels: pixels of the ROI (the whole image without one).
    """

    classes: tuple[str, ...]
    pixels: np.ndarray
    roi_pixels: int

    @property
    def annotated_pixels(self) -> int:
        return int(self.pixels.sum())

    @property
    def annotated_fraction(self) -> float:
        return self.annotated_pixels / self.roi_pixels if self.roi_pixels else 0.0

    @property
    def cover_percent(self) -> np.ndarray:
        """``(C,)`` float64 percent cover per class; NaN where nothing is annotated."""
        return _percent(self.pixels[None], np.array([self.annotated_pixels]))[0]

    def as_dict(self) -> dict[str, float]:
        """``{class: percent cover}``, e.g. for per-sample fields."""
        return dict(zip(self.classes, self.cover_percent.tolist(), strict=True))


def image_cover(
    mask: np.ndarray, legend: ClassLegend, roi: np.ndarray | None = None, where: str = "the mask"
) -> ImageCover:
    """Pixels per class of a label mask, inside a region of interest.

    Args:
        mask: ``(H, W)`` uint8 or uint16 label mask in the legend's values.
        legend: what the values mean.
        roi: optional ``(H, W)`` bool region of interest (see :mod:`coral_core.ecology.roi`).
        where: how error messages name the mask (e.g. its file).

    Raises:
        CoralsegError: the mask holds values the legend neither defines nor ignores.
        ValueError: the mask is not a 2-D unsigned integer array or the ROI's shape differs.
    """
    counts = value_counts(mask, roi)
    present = np.flatnonzero(counts)
    legend.check_values(present, where)
    # a uint8 mask has no pixel of a class valued above 255
    pixels = np.array([counts[v] if v < counts.size else 0 for v in legend.values], np.int64)
    roi_pixels = int(mask.size if roi is None else np.count_nonzero(roi))
    return ImageCover(legend.names, pixels, roi_pixels)


def value_counts(mask: np.ndarray, roi: np.ndarray | None = None) -> np.ndarray:
    """``(V,)`` int64 pixel count of each value ``0..V-1`` of a mask (inside ``roi``).

    ``V`` is 256 for uint8 masks, ``max + 1`` for uint16 ones.
    """
    mask = np.asarray(mask)
    if mask.ndim != 2 or mask.dtype not in (np.uint8, np.uint16):
        raise ValueError(
            f"a label mask must be an (H, W) uint8 or uint16 array, got {mask.dtype} of shape "
            f"{mask.shape}"
        )
    values = mask.ravel()
    if roi is not None:
        roi = np.asarray(roi, dtype=bool)
        if roi.shape != mask.shape:
            raise ValueError(f"the ROI's shape {roi.shape} differs from the mask's {mask.shape}")
        values = mask[roi]
    length = 256 if mask.dtype == np.uint8 else MAX_VALUE + 1
    return np.bincount(values, minlength=length).astype(np.int64)


@dataclass(frozen=True, eq=False)
class CoverTable:
    """Cover of many images: one row per image, one column per class.

    Attributes:
        images: image names, unique.
        classes: class names.
        pixels: ``(I, C)`` int64 pixels per image and class.
        roi_pixels: ``(I,)`` int64 ROI pixels per image.
    """

    images: tuple[str, ...]
    classes: tuple[str, ...]
    pixels: np.ndarray
    roi_pixels: np.ndarray

    def __post_init__(self) -> None:
        pixels = np.asarray(self.pixels, dtype=np.int64).reshape(
            len(self.images), len(self.classes)
        )
        roi = np.asarray(self.roi_pixels, dtype=np.int64).reshape(len(self.images))
        repeated = sorted(n for n, count in Counter(self.images).items() if count > 1)
        if repeated:
            raise ValueError(f"image names must be unique; repeated: {', '.join(repeated[:5])}")
        object.__setattr__(self, "images", tuple(self.images))
        object.__setattr__(self, "classes", tuple(self.classes))
        object.__setattr__(self, "pixels", pixels)
        object.__setattr__(self, "roi_pixels", roi)

    @classmethod
    def from_covers(cls, names: Sequence[str], covers: Sequence[ImageCover]) -> CoverTable:
        """Stack per-image covers (all with the same classes) into a table."""
        if len(names) != len(covers):
            raise ValueError(f"{len(names)} names for {len(covers)} covers")
        if not covers:
            raise ValueError("there are no images to tabulate")
        classes = covers[0].classes
        if any(c.classes != classes for c in covers):
            raise ValueError("every image cover must have the same classes in the same order")
        pixels = np.stack([c.pixels for c in covers])
        roi = np.array([c.roi_pixels for c in covers], dtype=np.int64)
        return cls(tuple(names), classes, pixels, roi)

    @property
    def annotated_pixels(self) -> np.ndarray:
        """``(I,)`` int64 annotated pixels per image."""
        return self.pixels.sum(axis=1)

    @property
    def annotated_fraction(self) -> np.ndarray:
        """``(I,)`` float64; 0 where the ROI is empty."""
        roi = self.roi_pixels
        return np.divide(
            self.annotated_pixels, roi, out=np.zeros(len(roi), dtype=np.float64), where=roi > 0
        )

    @property
    def cover_percent(self) -> np.ndarray:
        """``(I, C)`` float64 percent cover; rows of images without annotation are NaN."""
        return _percent(self.pixels, self.annotated_pixels)

    def with_classes(self, classes: Sequence[str]) -> CoverTable:
        """The same table over ``classes`` (reordered; classes it lacks get 0 pixels).

        Raises:
            ValueError: a class of this table is not in ``classes`` (its pixels would be lost).
        """
        missing = [c for c in self.classes if c not in classes]
        if missing:
            raise ValueError(f"classes {missing} would be dropped; include them")
        pixels = np.zeros((len(self.images), len(classes)), dtype=np.int64)
        for j, name in enumerate(classes):
            if name in self.classes:
                pixels[:, j] = self.pixels[:, self.classes.index(name)]
        return CoverTable(self.images, tuple(classes), pixels, self.roi_pixels)

    def subset(self, images: Sequence[str]) -> CoverTable:
        """The rows of ``images``, in that order."""
        index = {name: i for i, name in enumerate(self.images)}
        missing = [name for name in images if name not in index]
        if missing:
            raise ValueError(f"images not in the table: {', '.join(missing[:5])}")
        rows = [index[name] for name in images]
        return CoverTable(tuple(images), self.classes, self.pixels[rows], self.roi_pixels[rows])

    def rows(
        self,
        fields: Mapping[str, Mapping[str, str]] | None = None,
        field_names: Sequence[str] = (),
        pixels_per_cm: Mapping[str, float] | None = None,
    ) -> list[dict[str, object]]:
        """Tidy rows, one per image and class (zeros included), image order then class order.

        Columns: ``image``, the ``field_names`` (values from ``fields[image]``, ``""`` where
        absent), ``class``, ``pixels``, ``cover_percent`` (NaN -> ``""``),
        ``annotated_fraction``, ``annotated_pixels``, ``roi_pixels``, and ``area_cm2`` when
        ``pixels_per_cm`` is given (``""`` for images it lacks).
        """
        cover = self.cover_percent
        fraction = self.annotated_fraction
        annotated = self.annotated_pixels
        out: list[dict[str, object]] = []
        for i, image in enumerate(self.images):
            image_fields = (fields or {}).get(image, {})
            scale = (pixels_per_cm or {}).get(image)
            for j, name in enumerate(self.classes):
                row: dict[str, object] = {"image": image}
                row.update({f: image_fields.get(f, "") for f in field_names})
                row |= {
                    "class": name,
                    "pixels": int(self.pixels[i, j]),
                    "cover_percent": csv_number(cover[i, j]),
                    "annotated_fraction": float(fraction[i]),
                    "annotated_pixels": int(annotated[i]),
                    "roi_pixels": int(self.roi_pixels[i]),
                }
                if pixels_per_cm is not None:
                    row["area_cm2"] = "" if scale is None else self.pixels[i, j] / scale**2
                out.append(row)
        return out


def _percent(pixels: np.ndarray, annotated: np.ndarray) -> np.ndarray:
    out = np.full(pixels.shape, np.nan, dtype=np.float64)
    has = annotated > 0
    out[has] = 100.0 * pixels[has] / annotated[has, None]
    return out
