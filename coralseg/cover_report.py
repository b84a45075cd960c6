"""File side of ``coralseg cover``: measure every mask of a source, write tables, GeoJSON, plots.

The measuring is :mod:`coral_core.ecology`'s; this module reads the masks a
:class:`~coralseg.cover_inputs.CoverSource` lists, applies the region of interest and the
scale the options give, and writes the outputs (each file atomically).
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path

import numpy as np
from tqdm import tqdm

from coral_core.ecology.agreement import CoverAgreement, cover_agreement
from coral_core.ecology.colonies import (
    Colony,
    colonies_from_instances,
    colonies_from_labels,
    colony_columns,
    colony_rows,
)
from coral_core.ecology.cover import CoverTable, ImageCover, image_cover
from coral_core.ecology.geojson import GeoJSONWriter, colony_features
from coral_core.ecology.groups import (
    Grouping,
    colony_summary_rows,
    group_cover,
    group_images,
)
from coral_core.ecology.plots import plot_colony_sizes, plot_cover_agreement, plot_cover_by_group
from coral_core.ecology.roi import roi_from_margin, roi_from_polygon
from coral_core.ecology.scale import scale_from_geotransform, scale_from_quadrat
from coral_core.ecology.tables import write_csv
from coral_core.errors import CoralsegError
from coral_core.formats.raster_io import GeoInfo
from coralseg.cover_colonies import DrawnImage, drawn_colonies
from coralseg.cover_inputs import CoverSource, read_instances, read_mask, record_geo

# Progress bars appear from this many images on.
PROGRESS_FROM = 10
# Masks that could not be read, one row each: file, reason.
SKIPPED_CSV = "skipped_masks.csv"


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


@dataclass
class Measured:
    """What was measured on one source."""

    source: CoverSource
    table: CoverTable
    colonies: dict[str, list[Colony]] | None = None  # None: not measured
    pixels_per_cm: dict[str, float] = field(default_factory=dict)
    skipped: list[tuple[str, str]] = field(default_factory=list)  # (file, why): unreadable


def region_of_interest(
    height: int, width: int, settings: CoverSettings, name: str = ""
) -> np.ndarray | None:
    """The ROI of an image as the settings define it; None for the whole image."""
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
        return None if geo is None else geotransform_scale(geo, name)
    if settings.scale_by_image is not None:
        return settings.scale_by_image.get(name)
    if settings.pixels_per_cm:
        return settings.pixels_per_cm
    if settings.quadrat_cm:
        return scale_from_quadrat(roi_pixels, *settings.quadrat_cm)
    return None


def geotransform_scale(geo: GeoInfo, name: str) -> float:
    """Pixels per cm of a georeferenced mask from its pixel size and its CRS's units."""
    from rasterio.crs import CRS
    from rasterio.errors import CRSError

    if geo.crs is None:
        raise CoralsegError(
            f"{name} has a geotransform but no CRS, so its pixel size has no unit; give --scale"
        )
    try:
        crs = CRS.from_user_input(geo.crs)
    except CRSError as err:
        raise CoralsegError(f"{name}: cannot read its CRS ({err}); give --scale") from None
    if crs.is_geographic:
        raise CoralsegError(
            f"{name} is in a geographic CRS ({geo.crs}: degrees); reproject it to a metric CRS "
            "(e.g. UTM) or give --scale"
        )
    _, metres_per_unit = crs.linear_units_factor
    try:
        return scale_from_geotransform(geo, metres_per_unit)
    except ValueError as err:
        raise CoralsegError(f"{name}: {err}") from None


def measure(
    source: CoverSource,
    settings: CoverSettings,
    with_colonies: bool = True,
    geojson: GeoJSONWriter | None = None,
    fields: Mapping[str, Mapping[str, str]] | None = None,
    field_names: Sequence[str] = (),
    description: str = "measuring",
    polygons: Mapping[str, DrawnImage] | None = None,
) -> Measured:
    """Cover (and colonies) of every image of a source; an image with ``polygons`` (from
    ``--annotations``) has one colony per polygon (:mod:`coralseg.cover_colonies`).

    A mask that cannot be read (truncated, corrupt, not a label mask) is left out and listed
    in ``Measured.skipped`` with the reason; the others are measured.
    """
    if settings.colonies_from == "instances" and with_colonies and source.kind != "infer":
        raise CoralsegError(
            "--colonies-from instances needs a 'coralseg infer' output (it has instance "
            f"records); {source.root} has label masks only"
        )
    legend = source.legend
    names: list[str] = []
    covers: list[ImageCover] = []
    measured = Measured(source, CoverTable((), legend.names, np.zeros((0, 0)), np.zeros(0)))
    if with_colonies:
        measured.colonies = {}
    items = source.items
    for item in tqdm(items, desc=description, unit="img", disable=len(items) < PROGRESS_FROM):
        try:
            mask, geo = read_mask(item.path)
        except CoralsegError as err:
            measured.skipped.append((str(item.path), str(err)))
            continue
        roi = region_of_interest(*mask.shape, settings, item.name)
        cover = image_cover(mask, legend, roi, where=str(item.path))
        names.append(item.name)
        covers.append(cover)
        if settings.scale_from_geotransform:
            geo = geo or record_geo(item)
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
                read_instances(item),
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
            geo = geo or record_geo(item)
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


@dataclass(frozen=True)
class ReportFiles:
    """Paths written by :func:`write_report`."""

    written: tuple[Path, ...]
    agreement: CoverAgreement | None = None


def write_report(
    out: Path,
    measured: Measured,
    fields: Mapping[str, Mapping[str, str]],
    field_names: Sequence[str],
    group_by: Sequence[str],
    predicted: Measured | None = None,
) -> ReportFiles:
    """Write the tables and plots of a measured source (and its comparison with predictions)."""
    legend = measured.source.legend
    table = measured.table
    scaled = bool(measured.pixels_per_cm)
    written: list[Path] = []
    grouping = _grouping(table.images, fields, group_by)
    agreement = None
    if predicted is not None:
        agreement = cover_agreement(table, predicted.table)
        if not agreement.images:
            raise CoralsegError(
                f"no image of {measured.source.root} has a prediction in "
                f"{predicted.source.root} (images are matched by name, e.g. "
                f"{table.images[0]!r}); compare the predictions of the same images"
            )

    written.append(
        write_csv(
            out / "cover_per_image.csv",
            table.rows(fields, field_names, measured.pixels_per_cm if scaled else None),
        )
    )
    groups = group_cover(table, grouping)
    written.append(write_csv(out / "cover_per_group.csv", groups.rows()))
    labels = [grouping.label(g) for g in range(len(grouping.keys))]
    colors = list(legend.colors)
    written.append(
        plot_cover_by_group(labels, legend.names, groups.mean, colors, out / "cover_by_group.png")
    )

    if measured.colonies is not None:
        written += _write_colonies(out, measured, fields, field_names, grouping)
    skipped = [*measured.skipped, *(predicted.skipped if predicted is not None else ())]
    if skipped:
        rows = [{"file": path, "reason": reason} for path, reason in skipped]
        written.append(write_csv(out / SKIPPED_CSV, rows, ("file", "reason")))

    if predicted is not None and agreement is not None:
        written.append(
            write_csv(out / "cover_error_per_image.csv", agreement.image_rows(fields, field_names))
        )
        written.append(write_csv(out / "cover_error_per_class.csv", agreement.class_rows()))
        agreement_grouping = _grouping(agreement.images, fields, group_by)
        written.append(
            write_csv(out / "cover_error_per_group.csv", agreement.group_rows(agreement_grouping))
        )
        class_colors = [_color(c, measured, predicted) for c in agreement.classes]
        written.append(
            plot_cover_agreement(
                agreement.annotated,
                agreement.predicted,
                agreement.classes,
                class_colors,
                out / "cover_agreement.png",
            )
        )
    return ReportFiles(tuple(written), agreement)


def _write_colonies(
    out: Path,
    measured: Measured,
    fields: Mapping[str, Mapping[str, str]],
    field_names: Sequence[str],
    grouping: Grouping,
) -> list[Path]:
    """colonies.csv, colonies_per_group.csv and colony_sizes.png."""
    legend = measured.source.legend
    table = measured.table
    colonies = measured.colonies or {}
    scaled = bool(measured.pixels_per_cm)
    written: list[Path] = []
    rows: list[dict[str, object]] = []
    for image in table.images:
        rows += colony_rows(
            image,
            colonies.get(image, ()),
            dict(fields.get(image, {})),
            field_names,
            measured.pixels_per_cm.get(image),
            with_scale_columns=scaled,
        )
    written.append(write_csv(out / "colonies.csv", rows, colony_columns(field_names, scaled)))
    colony_classes = [n for n, c in zip(legend.names, legend.colony, strict=True) if c]
    summary = colony_summary_rows(
        table.images,
        colonies,
        grouping,
        colony_classes,
        dict(zip(table.images, table.roi_pixels.tolist(), strict=True)),
        measured.pixels_per_cm if scaled else None,
    )
    written.append(write_csv(out / "colonies_per_group.csv", summary))
    if colony_classes:
        all_scaled = scaled and all(i in measured.pixels_per_cm for i in table.images)
        areas = {
            name: np.array(
                [
                    c.area / (measured.pixels_per_cm[i] ** 2 if all_scaled else 1.0)
                    for i in table.images
                    for c in colonies.get(i, ())
                    if c.label == name
                ]
            )
            for name in colony_classes
        }
        written.append(
            plot_colony_sizes(
                areas,
                {n: legend.color_of(n) for n in colony_classes},
                out / "colony_sizes.png",
                unit="cm²" if all_scaled else "px",
            )
        )
    return written


def _grouping(
    images: Sequence[str], fields: Mapping[str, Mapping[str, str]], by: Sequence[str]
) -> Grouping:
    try:
        return group_images(images, fields, by)
    except ValueError as err:
        raise CoralsegError(f"{err}; --group-by takes fields that --groups defines") from None


def _color(name: str, *sources: Measured) -> tuple[int, int, int]:
    for measured in sources:
        if name in measured.source.legend.names:
            return measured.source.legend.color_of(name)
    return (128, 128, 128)


def format_summary(measured: Measured, top: int = 5) -> list[str]:
    """A few lines for the terminal: images, annotated fraction, top classes, colonies."""
    table = measured.table
    lines = [measured.source.describe()]
    annotated = table.annotated_pixels.sum()
    roi = table.roi_pixels.sum()
    fraction = annotated / roi if roi else 0.0
    pooled = 100.0 * table.pixels.sum(axis=0) / annotated if annotated else np.zeros(0)
    order = np.argsort(-pooled)[:top] if annotated else []
    best = ", ".join(f"{table.classes[j]} {pooled[j]:.1f}%" for j in order if pooled[j] > 0)
    lines.append(f"  annotated: {100 * fraction:.1f}% of the sampled area; cover: {best or 'none'}")
    if measured.colonies is not None:
        count = sum(len(c) for c in measured.colonies.values())
        lines.append(f"  colonies: {count}")
    if measured.skipped:
        lines.append(
            f"  skipped {len(measured.skipped)} unreadable mask(s) (listed in {SKIPPED_CSV}):"
        )
        lines += [f"    {path}: {reason}" for path, reason in measured.skipped]
    if measured.pixels_per_cm:
        values = list(measured.pixels_per_cm.values())
        low, high = min(values), max(values)
        spread = f"{low:.3g}" if math.isclose(low, high) else f"{low:.3g}-{high:.3g}"
        lines.append(f"  scale: {spread} px/cm on {len(values)} of {len(table.images)} image(s)")
    return lines
