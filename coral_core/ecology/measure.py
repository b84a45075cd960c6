"""Measure every mask of a :class:`~coral_core.ecology.sources.MaskSource`: cover, colonies,
scale, inside each image's region of interest.

:func:`measure_source` reads each mask once, applies the region of interest and the scale
that :class:`CoverSettings` give, and measures cover (:mod:`coral_core.ecology.cover`) and
colonies (:mod:`coral_core.ecology.colonies`): from the instance records of a ``coralseg
infer`` output, from drawn polygons (:mod:`coral_core.ecology.drawn_colonies`), or as the
connected regions of the masks. :mod:`coral_core.ecology.report` writes the result.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field, replace

import numpy as np
from tqdm import tqdm

from coral_core.ecology.colonies import Colony, colonies_from_instances, colonies_from_labels
from coral_core.ecology.cover import CoverTable, ImageCover, image_cover
from coral_core.ecology.drawn_colonies import DrawnImage, drawn_colonies
from coral_core.ecology.geojson import GeoJSONWriter, colony_features
from coral_core.ecology.roi import roi_from_margin, roi_from_polygon
from coral_core.ecology.scale import georeferenced_scale, scale_from_quadrat
from coral_core.ecology.sources import MaskSource, item_geo, item_instances
from coral_core.errors import CoralsegError
from coral_core.formats.label_rasters import read_label_mask
from coral_core.formats.raster_io import GeoInfo

# Progress bars appear from this many images on.
PROGRESS_FROM = 10


@dataclass(frozen=True)
class CoverSettings:
    """How to measure: region of interest, scale, colonies.

    Attributes:
        roi_margin, roi_margin_unit: cut this margin (``"px"`` or ``"fraction"``) off every
            side. ``roi_polygon``: ``(K, 2)`` pixel vertices of the region instead;
            ``roi_polygon_by_image``: one per image name (images it lacks are measured
            whole).
        pixels_per_cm: one scale for every image; ``scale_by_image``: per image name;
            ``scale_from_geotransform``: from each georeferenced mask's pixel size.
        quadrat_cm: ``(width, height)`` of the frame whose inside is the region of interest
            (the whole image without one): the scale of each image from its size.
        colonies_from: ``"auto"`` (instance records where a source has them, else connected
            regions), ``"labels"`` or ``"instances"``.
        min_colony_area: colonies with fewer pixels are left out.
        connectivity: 8 or 4, for colonies from labels.
    """

    roi_margin: float | None = None
    roi_margin_unit: str = "px"
    roi_polygon: np.ndarray | None = None
    roi_polygon_by_image: Mapping[str, np.ndarray] | None = None
    pixels_per_cm: float | None = None
    scale_by_image: Mapping[str, float] | None = None
    quadrat_cm: tuple[float, float] | None = None
    scale_from_geotransform: bool = False
    colonies_from: str = "auto"
    min_colony_area: int = 1
    connectivity: int = 8

    def __post_init__(self) -> None:
        if self.roi_margin and (
            self.roi_polygon is not None or self.roi_polygon_by_image is not None
        ):
            raise CoralsegError(
                "give either a region-of-interest margin or a polygon, not both",
                settings=("roi_margin", "roi_polygon"),
            )
        scaled = self.pixels_per_cm or self.scale_by_image is not None
        if self.quadrat_cm and (scaled or self.scale_from_geotransform):
            raise CoralsegError(
                "give either a scale or a quadrat size, not both",
                settings=("pixels_per_cm", "quadrat_cm"),
            )
        if self.min_colony_area < 1:
            raise CoralsegError(
                f"the minimum colony area must be at least 1 pixel, got {self.min_colony_area}",
                settings=("min_colony_area",),
            )


@dataclass
class MeasuredSource:
    """What was measured on one source."""

    source: MaskSource
    table: CoverTable
    colonies: dict[str, list[Colony]] | None = None  # None: not measured
    pixels_per_cm: dict[str, float] = field(default_factory=dict)
    skipped: list[tuple[str, str]] = field(default_factory=list)  # (file, why): unreadable


def region_of_interest(
    height: int, width: int, settings: CoverSettings, name: str = ""
) -> np.ndarray | None:
    """The ``(H, W)`` bool ROI of an image as the settings define it; None for the whole."""
    try:
        if settings.roi_polygon_by_image is not None:
            polygon = settings.roi_polygon_by_image.get(name)
            return None if polygon is None else roi_from_polygon(height, width, polygon)
        if settings.roi_polygon is not None:
            return roi_from_polygon(height, width, settings.roi_polygon)
        if settings.roi_margin:
            return roi_from_margin(height, width, settings.roi_margin, settings.roi_margin_unit)
    except ValueError as err:
        raise CoralsegError(f"{name or 'image'}: {err}") from None
    return None


def image_scale(
    name: str, roi_pixels: int, settings: CoverSettings, geo: GeoInfo | None = None
) -> float | None:
    """Pixels per cm of an image, or None when the settings give none for it."""
    if settings.scale_from_geotransform:
        return None if geo is None else _georeferenced_scale(geo, name)
    if settings.scale_by_image is not None:
        return settings.scale_by_image.get(name)
    if settings.pixels_per_cm:
        return settings.pixels_per_cm
    if settings.quadrat_cm:
        return scale_from_quadrat(roi_pixels, *settings.quadrat_cm)
    return None


def _georeferenced_scale(geo: GeoInfo, name: str) -> float:
    try:
        return georeferenced_scale(geo)
    except CoralsegError as err:
        raise CoralsegError(f"{name}: {err}", settings=err.settings) from None


def measure_source(
    source: MaskSource,
    settings: CoverSettings,
    with_colonies: bool = True,
    geojson: GeoJSONWriter | None = None,
    fields: Mapping[str, Mapping[str, str]] | None = None,
    field_names: Sequence[str] = (),
    description: str = "measuring",
    polygons: Mapping[str, DrawnImage] | None = None,
) -> MeasuredSource:
    """Cover (and colonies) of every image of a source; an image with ``polygons`` (drawn
    annotations, :func:`~coral_core.ecology.drawn_colonies.read_drawn_polygons`) has one
    colony per polygon.

    A mask that cannot be read (truncated, corrupt, not a label mask) is left out and listed
    in ``MeasuredSource.skipped`` with the reason; the others are measured.

    Args:
        geojson: where each image's colony outlines go, as they are measured (the outlines
            are then dropped from the colonies kept in memory).
        fields, field_names: image fields (site, year, ...) that the GeoJSON features carry.
        description: the progress bar's label.
    """
    if settings.colonies_from == "instances" and with_colonies and source.kind != "infer":
        raise CoralsegError(
            "colonies from instances needs a 'coralseg infer' output (it has instance "
            f"records); {source.root} has label masks only",
            settings=("colonies_from",),
        )
    legend = source.legend
    names: list[str] = []
    covers: list[ImageCover] = []
    measured = MeasuredSource(source, CoverTable((), legend.names, np.zeros((0, 0)), np.zeros(0)))
    if with_colonies:
        measured.colonies = {}
    items = source.items
    for item in tqdm(items, desc=description, unit="img", disable=len(items) < PROGRESS_FROM):
        try:
            mask, geo = read_label_mask(item.path)
        except CoralsegError as err:
            measured.skipped.append((str(item.path), str(err)))
            continue
        roi = region_of_interest(*mask.shape, settings, item.name)
        cover = image_cover(mask, legend, roi, where=str(item.path))
        names.append(item.name)
        covers.append(cover)
        if settings.scale_from_geotransform:
            geo = geo or item_geo(item)
        scale = image_scale(item.name, cover.roi_pixels, settings, geo)
        if scale is not None:
            measured.pixels_per_cm[item.name] = scale
        if not with_colonies:
            continue
        use_instances = settings.colonies_from == "instances" or (
            settings.colonies_from == "auto" and item.record is not None
        )
        outline = geojson is not None
        drawn = None if polygons is None else polygons.get(item.name)
        if drawn is not None and not use_instances:
            colonies = colonies_from_instances(
                drawn_colonies(drawn, mask.shape, legend),
                legend,
                roi=roi,
                image_size=mask.shape,
                min_area=settings.min_colony_area,
                outline=outline,
            )
        elif use_instances:
            colonies = colonies_from_instances(
                item_instances(item),
                legend,
                roi=roi,
                image_size=mask.shape,
                min_area=settings.min_colony_area,
                outline=outline,
            )
        else:
            colonies = colonies_from_labels(
                mask,
                legend,
                roi=roi,
                connectivity=settings.connectivity,
                min_area=settings.min_colony_area,
                outline=outline,
            )
        if geojson is not None:
            geo = geo or item_geo(item)
            image_fields = (fields or {}).get(item.name, {})
            features = colony_features(item.name, colonies, geo, image_fields, field_names, scale)
            geojson.add(features, None if geo is None else (geo.crs or ""))
            colonies = [replace(c, outline=()) for c in colonies]
        measured.colonies[item.name] = colonies  # type: ignore[index]
    if not names:
        raise CoralsegError(
            f"no mask of {source.root} could be read, e.g. {measured.skipped[0][1]}"
        )
    measured.table = CoverTable.from_covers(names, covers)
    return measured
