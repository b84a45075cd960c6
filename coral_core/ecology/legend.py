"""What the pixel values of label masks mean for ecology: classes, colony classes, ignore.

A :class:`ClassLegend` lists, in report order, each class's name, pixel value, colour and
whether it is a colony class (countable colonies) or a cover-only class (bare substrate,
sand, "unknown": percent cover, no colonies). Values listed in ``ignore_values`` are not
annotated: they count in neither the annotated area nor any class. Any other value in a
mask is an error, so a mask read with the wrong taxonomy fails instead of giving wrong
cover.

Background (pixels no polygon covers) is handled explicitly by
:meth:`ClassLegend.from_encoding`: with ``background="class"`` it is a cover-only class named
``"background"`` (part of the annotated area, like an unlabelled substrate class); with
``background="ignore"`` its value is ignored and cover is over the labelled classes only.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Literal

import numpy as np

from coral_core.errors import CoralsegError
from coral_core.labels.palette import BACKGROUND_COLOR, RGB, parse_color
from coral_core.labels.taxonomy import BACKGROUND_NAME, IGNORE_INDEX, MaskEncoding

MAX_VALUE = 65535  # masks are uint8 or uint16


@dataclass(frozen=True)
class ClassLegend:
    """Classes of label masks, in report order.

    Attributes:
        names: class names, unique.
        values: the pixel value of each class (``0..65535``), unique.
        colony: per class, True for a colony class, False for a cover-only class.
        colors: per class, an RGB triple (ints ``0..255``) for plots.
        ignore_values: pixel values that are not annotated (e.g. ``255``).
    """

    names: tuple[str, ...]
    values: tuple[int, ...]
    colony: tuple[bool, ...]
    colors: tuple[RGB, ...]
    ignore_values: tuple[int, ...] = (IGNORE_INDEX,)

    def __post_init__(self) -> None:
        names = tuple(str(n) for n in self.names)
        values = tuple(int(v) for v in self.values)
        colony = tuple(bool(c) for c in self.colony)
        colors = tuple(parse_color(c) for c in self.colors)
        ignore = tuple(sorted({int(v) for v in self.ignore_values}))
        if not names:
            raise ValueError("a class legend needs at least one class")
        if not len(names) == len(values) == len(colony) == len(colors):
            raise ValueError(
                f"a class legend needs one value, colony flag and colour per class: got "
                f"{len(names)} names, {len(values)} values, {len(colony)} flags, "
                f"{len(colors)} colours"
            )
        if len(set(names)) != len(names):
            raise ValueError(f"class names must be unique, got {list(names)}")
        if len(set(values)) != len(values):
            raise ValueError(f"class pixel values must be unique, got {list(values)}")
        for value in (*values, *ignore):
            if not 0 <= value <= MAX_VALUE:
                raise ValueError(f"pixel values must lie in 0..{MAX_VALUE}, got {value}")
        shared = sorted(set(values) & set(ignore))
        if shared:
            raise ValueError(f"pixel values {shared} are both a class and ignored")
        object.__setattr__(self, "names", names)
        object.__setattr__(self, "values", values)
        object.__setattr__(self, "colony", colony)
        object.__setattr__(self, "colors", colors)
        object.__setattr__(self, "ignore_values", ignore)

    @classmethod
    def from_encoding(
        cls, encoding: MaskEncoding, background: Literal["class", "ignore"] = "class"
    ) -> ClassLegend:
        """The legend of masks written in ``encoding``'s convention.

        Colony classes are those :meth:`coral_core.labels.taxonomy.Taxonomy.is_colony` says are.

        Args:
            encoding: the mask convention (``background_is_ignore`` or not).
            background: for encodings with a background value (0): ``"class"`` reports it as
                the cover-only class ``"background"``, ``"ignore"`` excludes it from the
                annotated area. Encodings whose background is ignore (255) ignore it always.
        """
        if background not in ("class", "ignore"):
            raise ValueError(f"background must be 'class' or 'ignore', got {background!r}")
        taxonomy = encoding.taxonomy
        names = list(taxonomy.classes)
        values = [encoding.value_of(name) for name in names]
        colony = [taxonomy.is_colony(name) for name in names]
        colors = list(taxonomy.colors)
        ignore = [IGNORE_INDEX]
        if not encoding.background_is_ignore:
            if background == "class":
                names.insert(0, BACKGROUND_NAME)
                values.insert(0, encoding.background_value)
                colony.insert(0, False)
                colors.insert(0, BACKGROUND_COLOR)
            else:
                ignore.append(encoding.background_value)
        return cls(tuple(names), tuple(values), tuple(colony), tuple(colors), tuple(ignore))

    @property
    def colony_values(self) -> tuple[int, ...]:
        """Pixel values of the colony classes, in legend order."""
        return tuple(v for v, c in zip(self.values, self.colony, strict=True) if c)

    def name_of(self, value: int) -> str:
        """The class name of a pixel value."""
        try:
            return self.names[self.values.index(int(value))]
        except ValueError:
            raise ValueError(f"pixel value {value} is not a class of this legend") from None

    def color_of(self, name: str) -> RGB:
        """The colour of a class name."""
        return self.colors[self.names.index(name)]

    def lookup(self) -> np.ndarray:
        """``(MAX_VALUE + 1,)`` int64 table: pixel value -> class position, ``-1`` ignored,
        ``-2`` for values that are neither a class nor ignored."""
        table = np.full(MAX_VALUE + 1, -2, dtype=np.int64)
        table[list(self.ignore_values)] = -1
        table[list(self.values)] = np.arange(len(self.values))
        return table

    def check_values(self, present: Sequence[int], where: str = "the mask") -> None:
        """Raise :class:`CoralsegError` naming the values in ``present`` this legend lacks."""
        known = set(self.values) | set(self.ignore_values)
        unknown = sorted(int(v) for v in present if int(v) not in known)
        if unknown:
            listed = ", ".join(str(v) for v in unknown[:10]) + (
                ", ..." if len(unknown) > 10 else ""
            )
            defined = ", ".join(f"{v}={n}" for v, n in zip(self.values, self.names, strict=True))
            raise CoralsegError(
                f"{where} has pixel values {listed} that the classes do not define ({defined}; "
                f"ignored: {', '.join(map(str, self.ignore_values)) or 'none'}); give the "
                "taxonomy or classes.txt the masks were made with"
            )
