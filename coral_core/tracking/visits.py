"""One plot of two visits: read both, align them, link the colonies, give the fates.

Reading goes through :mod:`coral_core.ecology.sources` (mask folders, instance records,
georeference), :mod:`coral_core.formats.label_rasters` (masks) and
:mod:`coral_core.formats.raster_io` (photos); pairing the plots is
:mod:`coral_core.tracking.pairs`'.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from coral_core.ecology.scale import georeferenced_scale
from coral_core.ecology.sources import MaskItem, MaskSource, item_geo, item_instances
from coral_core.errors import CoralsegError
from coral_core.formats.label_rasters import read_label_mask
from coral_core.formats.raster_io import GeoInfo, open_image
from coral_core.tracking.alignment import (
    Alignment,
    align_geotransforms,
    align_photos,
    identity_alignment,
    refine_shift,
)
from coral_core.tracking.colonies import TrackedColony, colonies_from_label_mask
from coral_core.tracking.fates import ColonyFates, colony_fates
from coral_core.tracking.linking import Linking, link_colonies
from coral_core.tracking.pairs import PlotPair, find_photo

ALIGN_METHODS = ("auto", "features", "geotransform", "none")


@dataclass(frozen=True)
class TrackSettings:
    """How each plot is tracked.

    Attributes:
        align: ``"auto"``, ``"features"`` (photos), ``"geotransform"`` or ``"none"``.
        residual_shift: remove a remaining shift after aligning (phase correlation).
        before_images, after_images: folders of each visit's photos (found by name).
        colonies_from: ``"auto"``, ``"labels"`` or ``"instances"``; ``connectivity`` (4 or 8)
            and ``min_colony_area`` (pixels) for colonies from labels.
        min_overlap: shared pixels, as a share of the smaller colony, that link two colonies.
        partial_mortality: a linked colony that lost more than this share of its area.
        scale, scales, scale_from_geotransform: pixels per cm of every image, per image name,
            or from each raster's georeference.
    """

    align: str = "auto"
    residual_shift: bool = False
    before_images: str | None = None
    after_images: str | None = None
    colonies_from: str = "auto"
    connectivity: int = 8
    min_colony_area: int = 1
    min_overlap: float = 0.3
    partial_mortality: float = 0.3
    scale: float | None = None
    scales: dict[str, float] | None = None
    scale_from_geotransform: bool = False

    def __post_init__(self) -> None:
        if self.align not in ALIGN_METHODS:
            raise CoralsegError(
                f"alignment {self.align!r} is none of {', '.join(ALIGN_METHODS)}",
                settings=("align",),
            )
        if not 0 < self.min_overlap <= 1:
            raise CoralsegError(
                f"the minimum overlap is a share in (0, 1], got {self.min_overlap}",
                settings=("min_overlap",),
            )
        if not 0 < self.partial_mortality < 1:
            raise CoralsegError(
                "the partial-mortality threshold is a share between 0 and 1, got "
                f"{self.partial_mortality}",
                settings=("partial_mortality",),
            )
        if self.min_colony_area < 1:
            raise CoralsegError(
                f"the minimum colony area must be at least 1 pixel, got {self.min_colony_area}",
                settings=("min_colony_area",),
            )


@dataclass(frozen=True, eq=False)
class Visit:
    """One visit of a plot: its mask, photo (if found), georeference, colonies."""

    name: str
    mask: np.ndarray
    photo: np.ndarray | None
    geo: GeoInfo | None
    colonies: list[TrackedColony]
    pixels_per_cm: float | None


@dataclass(frozen=True, eq=False)
class PlotResult:
    plot: str
    before: Visit
    after: Visit
    alignment: Alignment
    linking: Linking
    fates: ColonyFates


def _colonies(source: MaskSource, item: MaskItem, mask: np.ndarray, settings: TrackSettings):
    legend = source.legend
    use_instances = settings.colonies_from == "instances" or (
        settings.colonies_from == "auto" and item.record is not None
    )
    if use_instances:
        if item.record is None:
            raise CoralsegError(
                f"{item.name} of {source.root} has no instance record; take colonies from "
                "labels (connected regions of the masks)",
                settings=("colonies_from",),
            )
        colony_values = set(legend.colony_values)
        return [
            TrackedColony(c.label, c.value, np.asarray(c.mask, bool), c.bbox[0], c.bbox[1])
            for c in item_instances(item)
            if c.value in colony_values and c.area >= settings.min_colony_area
        ]
    names = {value: legend.name_of(value) for value in legend.colony_values}
    return colonies_from_label_mask(
        mask, legend.colony_values, names, settings.connectivity, settings.min_colony_area
    )


def _read_visit(
    source: MaskSource, item: MaskItem, photo_folder: str | None, settings: TrackSettings
) -> Visit:
    mask, geo = read_label_mask(item.path)
    geo = geo or item_geo(item)
    photo = None
    photo_path = find_photo(source, item, photo_folder)
    if photo_path is not None and settings.align in ("auto", "features"):
        with open_image(photo_path) as image:
            if (image.height, image.width) != mask.shape:
                raise CoralsegError(
                    f"the photo {photo_path} is {image.width}x{image.height} but the mask "
                    f"{item.path} is {mask.shape[1]}x{mask.shape[0]}; give the photos the "
                    "masks were made from"
                )
            photo = image.read()
    scale = settings.scale
    if settings.scales is not None:
        scale = settings.scales.get(item.name)
    elif settings.scale_from_geotransform:
        if geo is None:
            raise CoralsegError(
                f"the scale is to come from geotransforms, but {item.path} has none; give "
                "pixels per cm",
                settings=("scale",),
            )
        try:
            scale = georeferenced_scale(geo)
        except CoralsegError as err:
            raise CoralsegError(f"{item.path}: {err}", settings=err.settings) from None
    return Visit(item.name, mask, photo, geo, _colonies(source, item, mask, settings), scale)


def _align(plot: str, before: Visit, after: Visit, settings: TrackSettings) -> Alignment:
    method = settings.align
    if method == "auto":
        if before.geo is not None and after.geo is not None:
            method = "geotransform"
        elif before.photo is not None and after.photo is not None:
            method = "features"
        else:
            raise CoralsegError(
                f"cannot align plot {plot}: its masks have no geotransform and no photos were "
                "found; give the folders of both visits' photos, or align 'none' when the "
                "two visits' masks share one pixel grid",
                settings=("before_images", "after_images", "align"),
            )
    try:
        if method == "none":
            if before.mask.shape != after.mask.shape:
                raise CoralsegError(
                    f"alignment 'none', but plot {plot}'s masks differ in size "
                    f"({before.mask.shape[1]}x{before.mask.shape[0]} and "
                    f"{after.mask.shape[1]}x{after.mask.shape[0]})",
                    settings=("align",),
                )
            alignment = identity_alignment()
        elif method == "geotransform":
            if before.geo is None or after.geo is None:
                raise CoralsegError(
                    f"alignment 'geotransform', but plot {plot} lacks a georeferenced mask or "
                    "image",
                    settings=("align",),
                )
            alignment = align_geotransforms(before.geo, after.geo)
        else:
            if before.photo is None or after.photo is None:
                raise CoralsegError(
                    f"alignment 'features', but plot {plot} lacks a photo of "
                    f"{'the first' if before.photo is None else 'the second'} visit; give the "
                    "folders of both visits' photos",
                    settings=("before_images", "after_images"),
                )
            alignment = align_photos(before.photo, after.photo)
    except CoralsegError:
        raise
    except ValueError as err:
        raise CoralsegError(f"plot {plot}: {err}") from None
    if settings.residual_shift:
        if before.photo is not None and after.photo is not None:
            alignment = refine_shift(alignment, before.photo, after.photo)
        else:
            alignment = refine_shift(alignment, _colony_image(before), _colony_image(after))
    return alignment


def _colony_image(visit: Visit) -> np.ndarray:
    """``(H, W)`` uint8: 255 on the visit's colonies, 0 elsewhere (to correlate masks)."""
    image = np.zeros(visit.mask.shape, np.uint8)
    for colony in visit.colonies:
        x, y, w, h = colony.bbox
        image[y : y + h, x : x + w][colony.mask] = 255
    return image


def track_plot(
    pair: PlotPair, sources: tuple[MaskSource, MaskSource], settings: TrackSettings
) -> PlotResult:
    """Read, align and link one plot's two visits."""
    before = _read_visit(sources[0], pair.before, settings.before_images, settings)
    after = _read_visit(sources[1], pair.after, settings.after_images, settings)
    alignment = _align(pair.plot, before, after, settings)
    linking = link_colonies(
        before.colonies,
        after.colonies,
        alignment,
        after.mask.shape,
        before.mask.shape,
        settings.min_overlap,
    )
    fates = colony_fates(before.colonies, after.colonies, linking, settings.partial_mortality)
    return PlotResult(pair.plot, before, after, alignment, linking, fates)


def background_of(visit: Visit) -> np.ndarray:
    """What the picture shows under the colonies: the photo, or a light grey field."""
    if visit.photo is not None:
        return visit.photo
    return np.full((*visit.mask.shape, 3), 235, np.uint8)
