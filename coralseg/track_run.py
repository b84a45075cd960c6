"""``coralseg track`` for one plot: read both visits, align them, link the colonies.

Reading goes through :mod:`coralseg.cover_inputs` (masks, instance records, georeference)
and :mod:`coral_core.formats.raster_io` (photos); the work is :mod:`coral_core.tracking`.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np

from coral_core.ecology.scale import scale_from_geotransform
from coral_core.errors import CoralsegError
from coral_core.formats.raster_io import GeoInfo, open_image
from coral_core.tracking import (
    Alignment,
    ColonyFates,
    Linking,
    TrackedColony,
    align_geotransforms,
    align_photos,
    colonies_from_label_mask,
    colony_fates,
    identity_alignment,
    link_colonies,
    refine_shift,
)
from coralseg.cover_inputs import CoverSource, MaskItem, read_instances, read_mask, record_geo
from coralseg.track_pairs import PlotPair, find_photo

ALIGN_METHODS = ("auto", "features", "geotransform", "none")


@dataclass(frozen=True)
class TrackSettings:
    """The command's options that shape each plot's tracking."""

    align: str = "auto"
    residual_shift: bool = False
    before_images: str | None = None
    after_images: str | None = None
    colonies_from: str = "auto"
    connectivity: int = 8
    min_area: int = 1
    min_overlap: float = 0.3
    partial_mortality: float = 0.3
    scale: float | None = None
    scales: dict[str, float] | None = None
    scale_from_geotransform: bool = False


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


def _colonies(source: CoverSource, item: MaskItem, mask: np.ndarray, settings: TrackSettings):
    legend = source.legend
    use_instances = settings.colonies_from == "instances" or (
        settings.colonies_from == "auto" and item.record is not None
    )
    if use_instances:
        if item.record is None:
            raise CoralsegError(
                f"{item.name} of {source.root} has no instance record; use --colonies-from "
                "labels (connected regions of the masks)"
            )
        colony_values = set(legend.colony_values)
        return [
            TrackedColony(c.label, c.value, np.asarray(c.mask, bool), c.bbox[0], c.bbox[1])
            for c in read_instances(item)
            if c.value in colony_values and c.area >= settings.min_area
        ]
    names = {value: legend.name_of(value) for value in legend.colony_values}
    return colonies_from_label_mask(
        mask, legend.colony_values, names, settings.connectivity, settings.min_area
    )


def _read_visit(
    source: CoverSource, item: MaskItem, photo_folder: str | None, settings: TrackSettings
) -> Visit:
    mask, geo = read_mask(item.path)
    geo = geo or record_geo(item)
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
                f"--scale geotransform: {item.path} has no geotransform; give pixels per cm"
            )
        try:
            scale = scale_from_geotransform(geo)
        except ValueError as err:
            raise CoralsegError(f"{item.path}: {err}") from None
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
                "found; give --before-images DIR --after-images DIR, or --align none when the "
                "two visits' masks share one pixel grid"
            )
    try:
        if method == "none":
            if before.mask.shape != after.mask.shape:
                raise CoralsegError(
                    f"--align none, but plot {plot}'s masks differ in size "
                    f"({before.mask.shape[1]}x{before.mask.shape[0]} and "
                    f"{after.mask.shape[1]}x{after.mask.shape[0]})"
                )
            alignment = identity_alignment()
        elif method == "geotransform":
            if before.geo is None or after.geo is None:
                raise CoralsegError(
                    f"--align geotransform, but plot {plot} lacks a georeferenced mask or image"
                )
            alignment = align_geotransforms(before.geo, after.geo)
        else:
            if before.photo is None or after.photo is None:
                raise CoralsegError(
                    f"--align features, but plot {plot} lacks a photo of "
                    f"{'the first' if before.photo is None else 'the second'} visit; give "
                    "--before-images and --after-images"
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
    pair: PlotPair, sources: tuple[CoverSource, CoverSource], settings: TrackSettings
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


def alignment_row(result: PlotResult) -> dict[str, object]:
    """One row of ``alignment.csv``."""
    a = result.alignment
    return {
        "plot": result.plot,
        "before_image": result.before.name,
        "after_image": result.after.name,
        "method": a.method,
        "inliers": "" if a.inliers is None else a.inliers,
        "matches": "" if a.matches is None else a.matches,
        "reprojection_error_px": ""
        if a.reprojection_error_px is None
        else round(a.reprojection_error_px, 3),
        "residual_shift_x": round(a.residual_shift[0], 3),
        "residual_shift_y": round(a.residual_shift[1], 3),
        "overlap": "" if a.overlap is None else round(a.overlap, 4),
        "matrix": " ".join(f"{v:.9g}" for v in a.matrix.ravel()),
    }


def picture_path(out: Path, plot: str) -> Path:
    safe = "".join(c if c.isalnum() or c in "-_." else "_" for c in plot)
    return out / "pictures" / f"{safe}.png"
