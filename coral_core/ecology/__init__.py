"""Ecological outputs of label masks and predicted colonies: what a reef survey publishes.

Pure functions over numpy arrays (conventions in each docstring), one concept per module:

* ``legend``: what pixel values mean: classes, colony or cover-only, ignore, background;
* ``roi``: the region of interest (inside of the quadrat frame): a margin or a polygon;
* ``cover``: percent cover per image over the annotated area, and tables of many images;
* ``colonies``: colonies from label masks or instance masks: area, perimeter, maximum
  diameter, centroid, box;
* ``scale``: pixels per cm, from a measurement, a quadrat of known size or a geotransform;
* ``groups``: images grouped by site/year/... (filename pattern, metadata CSV, any
  mapping); mean cover with SD, SE and n; colony counts and size distributions;
* ``agreement``: predicted vs annotated cover, errors in percentage points;
* ``tables``: tidy CSVs; ``geojson``: colonies as GeoJSON; ``plots``: PNG figures.

Folders of masks, as ``coralseg cover`` measures them (files read through the module that
owns each format):

* ``sources``: the three kinds of mask folder and their images (each mask read by
  :mod:`coral_core.formats.label_rasters`); ``image_fields``: image fields and groups;
  ``image_settings``: per-image scale and region-of-interest CSVs;
* ``measure``: cover, colonies and scale of every mask of a source (``CoverSettings``);
  ``report``: the tables and plots written from it;
* ``drawn_colonies``: colonies as polygons of an annotation file; ``colony_comparison``:
  predicted colonies against annotated ones.

Typical use (e.g. from a FiftyOne operator: arrays in, rows out)::

    legend = ClassLegend.from_encoding(encoding)
    covers = [image_cover(mask, legend) for mask in masks]   # .as_dict(): {class: percent}
    table = CoverTable.from_covers(names, covers)
    per_image = table.rows(fields, ["site", "year"])          # tidy rows
    grouping = group_images(names, fields, ["site", "year"])
    per_group = group_cover(table, grouping).rows()           # mean, SD, SE, n per class
    colonies = colonies_from_labels(mask, legend)             # or colonies_from_instances
    rows = colony_rows(name, colonies)
    error = cover_agreement(table, predicted_table)           # .class_rows(), .image_rows()
"""

from coral_core.ecology.agreement import CoverAgreement, cover_agreement
from coral_core.ecology.colonies import (
    Colony,
    colonies_from_instances,
    colonies_from_labels,
    colony_rows,
    measure_colony,
)
from coral_core.ecology.cover import CoverTable, ImageCover, image_cover
from coral_core.ecology.groups import (
    GroupCover,
    Grouping,
    colony_summary_rows,
    fields_from_name,
    fields_from_pattern,
    group_cover,
    group_images,
    match_metadata,
    read_metadata_csv,
)
from coral_core.ecology.legend import ClassLegend
from coral_core.ecology.roi import roi_from_margin, roi_from_polygon
from coral_core.ecology.scale import area_cm2, length_cm, scale_from_quadrat

__all__ = [
    "ClassLegend",
    "Colony",
    "CoverAgreement",
    "CoverTable",
    "GroupCover",
    "Grouping",
    "ImageCover",
    "area_cm2",
    "colonies_from_instances",
    "colonies_from_labels",
    "colony_rows",
    "colony_summary_rows",
    "cover_agreement",
    "fields_from_name",
    "fields_from_pattern",
    "group_cover",
    "group_images",
    "image_cover",
    "length_cm",
    "match_metadata",
    "measure_colony",
    "read_metadata_csv",
    "roi_from_margin",
    "roi_from_polygon",
    "scale_from_quadrat",
]
