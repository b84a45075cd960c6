"""Annotation files as plain data: CVAT's "CVAT for images 1.1" XML, COCO instances JSON,
and the point surveys of CoralNet (annotation CSV) and CPCe (``.cpc``).

Every reader returns an :class:`AnnotationSet` (images, their labelled polygons, polylines,
masks and points in pixel coordinates, CVAT subsets, the shapes left out), so importers never
see the file formats. :func:`read_annotations` picks the reader from the file.
"""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path

from coral_core.formats.annotations.coco import parse_coco, read_coco, subset_from_filename, to_coco
from coral_core.formats.annotations.coralnet import (
    looks_like_coralnet_csv,
    map_label_codes,
    read_coralnet_csv,
    read_label_codes,
)
from coral_core.formats.annotations.cpce import read_cpc
from coral_core.formats.annotations.cvat_xml import parse_cvat_xml, read_cvat_xml, to_cvat_xml
from coral_core.formats.annotations.model import (
    AnnotatedImage,
    AnnotationFormatError,
    AnnotationSet,
    AnnotationShape,
    fit_to_photo,
    shape_polylines,
)

POINT_FORMATS = ("coralnet-csv", "cpce")

__all__ = [
    "POINT_FORMATS",
    "AnnotatedImage",
    "AnnotationFormatError",
    "AnnotationSet",
    "AnnotationShape",
    "fit_to_photo",
    "map_label_codes",
    "parse_coco",
    "parse_cvat_xml",
    "read_annotations",
    "read_coco",
    "read_coralnet_csv",
    "read_cpc",
    "read_cvat_xml",
    "read_label_codes",
    "shape_polylines",
    "subset_from_filename",
    "to_coco",
    "to_cvat_xml",
]


def read_annotations(path: str | Path, subset: str | None = None) -> AnnotationSet:
    """Read a CVAT XML (``.xml``), COCO (``.json``), CoralNet CSV (``.csv``) or CPCe
    (``.cpc``) annotation file.

    Args:
        path: the file. Other suffixes are told apart by their first character (``<`` or
            ``{``) or a CoralNet header line.
        subset: for COCO, every image's subset (default: from ``instances_<subset>.json``);
            for the others, the subset of images the file gives none.

    Raises:
        AnnotationFormatError: a missing, unreadable or malformed file (see the readers).
    """
    path = Path(path)
    if not path.is_file():
        raise AnnotationFormatError(
            f"annotation file {path} does not exist"
            + (" (it is a folder; name the .xml or .json file in it)" if path.is_dir() else "")
        )
    kind = path.suffix.lower()
    if kind not in (".xml", ".json", ".csv", ".cpc"):
        with path.open("rb") as handle:
            head = handle.read(512).lstrip(b"\xef\xbb\xbf \t\r\n")
        kind = ".xml" if head.startswith(b"<") else ".json" if head.startswith(b"{") else ""
        first_line = head.decode("utf-8", errors="replace").splitlines()[:1]
        if not kind and first_line and looks_like_coralnet_csv(first_line[0]):
            kind = ".csv"
    if kind == ".csv":
        return read_coralnet_csv(path, subset)
    if kind == ".cpc":
        return read_cpc(path, subset)
    if kind == ".json":
        return read_coco(path, subset)
    if kind == ".xml":
        annotations = read_cvat_xml(path)
        if subset:
            images = tuple(
                image if image.subset else replace(image, subset=subset)
                for image in annotations.images
            )
            annotations = replace(annotations, images=images)
        return annotations
    raise AnnotationFormatError(
        f"{path} is neither CVAT XML nor COCO JSON (nor a CoralNet CSV or CPCe file); export "
        "the annotations from CVAT as 'CVAT for images 1.1' or 'COCO 1.0' (unzip the download and "
        "pass its .xml or .json), or from CoralNet as an annotation CSV"
    )
