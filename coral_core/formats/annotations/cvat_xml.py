"""CVAT's "CVAT for images 1.1" XML export -> :class:`AnnotationSet`.

The layout (task, job and project exports alike)::

    <annotations>
      <version>1.1</version>
      <meta><task>... <subset>Train</subset> <labels><label><name>Acropora</name>...
      <image id="0" name="q1.jpg" width="1380" height="920" [subset="Train" task_id="3"]>
        <polygon label="Acropora" occluded="0" points="x0,y0;x1,y1;..." z_order="0">
          <attribute name="...">...</attribute>
        </polygon>
        <polyline label="..." points="..."/>
        <mask label="..." rle="r0, r1, ..." left="L" top="T" width="W" height="H"/>
        <box .../> <points .../> <ellipse .../> <cuboid .../> <skeleton .../> <tag .../>
      </image>
      ...

A mask's ``rle`` alternates background and foreground runs over its ``W x H`` box in
row-major order, starting with background (CVAT's mask-shape runs, see
:mod:`coral_core.formats.rle`). Polygons, polylines and masks are colonies; the other shapes are
counted in :attr:`AnnotationSet.skipped`, as are the ``<track>`` elements of video exports.
A project export gives each image its task's ``subset``; a task export names it once in
``meta/task/subset``.
"""

from __future__ import annotations

import xml.etree.ElementTree as ET
from collections import Counter
from collections.abc import Iterable
from pathlib import Path

import numpy as np

from coral_core.formats.annotations.model import (
    AnnotatedImage,
    AnnotationFormatError,
    AnnotationSet,
    AnnotationShape,
)
from coral_core.formats.polygons import Polygon
from coral_core.formats.rle import cvat_points_to_mask, mask_to_cvat_points

FORMAT = "cvat-xml"
_NOT_COLONIES = {
    "box": "rectangle",
    "points": "points",
    "ellipse": "ellipse",
    "cuboid": "cuboid",
    "skeleton": "skeleton",
    "tag": "tag",
}


def read_cvat_xml(path: str | Path) -> AnnotationSet:
    """Read a CVAT for images 1.1 XML file (see the module docstring).

    Raises:
        AnnotationFormatError: the file is missing, is not XML, is not a CVAT for images
            export, or holds a malformed image or shape; the message says which and where.
    """
    path = Path(path)
    try:
        data = path.read_bytes()
    except OSError as err:
        raise AnnotationFormatError(f"cannot read {path}: {err.strerror or err}") from None
    return parse_cvat_xml(data, source=str(path))


def parse_cvat_xml(data: bytes | str, source: str = "the CVAT XML") -> AnnotationSet:
    """Parse the text of a CVAT for images 1.1 XML export (see :func:`read_cvat_xml`)."""
    try:
        root = ET.fromstring(data)
    except ET.ParseError as err:
        line, column = err.position
        raise AnnotationFormatError(
            f"{source} is not valid XML (line {line}, column {column}: {_reason(err)}); "
            "export the task again from CVAT as 'CVAT for images 1.1'"
        ) from None
    if root.tag != "annotations":
        raise AnnotationFormatError(
            f"{source} is XML but not a CVAT export (its root element is <{root.tag}>, not "
            "<annotations>); export the task from CVAT as 'CVAT for images 1.1'"
        )
    image_elements = root.findall("image")
    skipped: Counter = Counter()
    tracks = len(root.findall("track"))
    if tracks:
        if not image_elements:
            raise AnnotationFormatError(
                f"{source} is a 'CVAT for video 1.1' export (tracks, no images); export the "
                "task again as 'CVAT for images 1.1'"
            )
        skipped["track"] += tracks
    meta_subset = _text(root, "meta/task/subset") or _text(root, "meta/job/subset")
    images = tuple(_image(element, source, meta_subset, skipped) for element in image_elements)
    return AnnotationSet(
        source=source,
        format=FORMAT,
        images=images,
        labels=_labels(root),
        skipped=skipped,
    )


def _reason(err: ET.ParseError) -> str:
    return str(err).split(":", 1)[0]


def _text(root: ET.Element, path: str) -> str | None:
    element = root.find(path)
    text = element.text.strip() if element is not None and element.text else ""
    return text or None


def _labels(root: ET.Element) -> tuple[str, ...]:
    for owner in ("task", "project", "job"):
        names = [
            (label.findtext("name") or "").strip()
            for label in root.findall(f"meta/{owner}/labels/label")
        ]
        if names:
            return tuple(name for name in names if name)
    return ()


def _image(
    element: ET.Element, source: str, meta_subset: str | None, skipped: Counter
) -> AnnotatedImage:
    name = element.get("name")
    where = f"{source}, <image id={element.get('id')!r}>"
    if not name:
        raise AnnotationFormatError(f"{where} has no name attribute")
    where = f"{source}, image {name!r}"
    width = _positive_int(element, "width", where)
    height = _positive_int(element, "height", where)
    shapes = []
    for child in element:
        if child.tag in _NOT_COLONIES:
            skipped[_NOT_COLONIES[child.tag]] += 1
        elif child.tag in ("polygon", "polyline"):
            shape = _line_shape(child, where)
            if shape is None:
                skipped[f"invalid {child.tag}"] += 1
            else:
                shapes.append(shape)
        elif child.tag == "mask":
            shapes.append(_mask_shape(child, where, width, height))
        else:
            skipped[child.tag] += 1
    return AnnotatedImage(
        name=name,
        width=width,
        height=height,
        shapes=tuple(shapes),
        subset=element.get("subset") or meta_subset,
        image_id=_optional_int(element.get("id")),
        task_id=_optional_int(element.get("task_id")),
    )


def _positive_int(element: ET.Element, key: str, where: str) -> int:
    value = element.get(key)
    try:
        number = int(value) if value is not None else None
    except ValueError:
        number = None
    if number is None or number <= 0:
        raise AnnotationFormatError(
            f"{where} has {key}={value!r}; CVAT writes the image size as positive integers"
        )
    return number


def _optional_int(value: str | None) -> int | None:
    try:
        return int(value) if value is not None else None
    except ValueError:
        return None


def _common(element: ET.Element, where: str) -> dict:
    label = element.get("label")
    if not label:
        raise AnnotationFormatError(f"{where} has a <{element.tag}> without a label")
    attributes = {
        attribute.get("name", ""): (attribute.text or "")
        for attribute in element.findall("attribute")
    }
    try:
        z_order = int(element.get("z_order") or 0)
    except ValueError:
        raise AnnotationFormatError(
            f"{where}: a <{element.tag}> labelled {label!r} has z_order={element.get('z_order')!r}"
        ) from None
    return {
        "label": label,
        "z_order": z_order,
        "occluded": element.get("occluded", "0").strip() in ("1", "true", "True"),
        "attributes": attributes,
    }


def _line_shape(element: ET.Element, where: str) -> AnnotationShape | None:
    common = _common(element, where)
    text = element.get("points") or ""
    try:
        points = np.array(
            [[float(v) for v in pair.split(",")] for pair in text.split(";") if pair.strip()],
            dtype=np.float64,
        )
    except ValueError:
        points = None
    if points is None or points.ndim != 2 or points.shape[1] != 2:
        raise AnnotationFormatError(
            f"{where}: a <{element.tag}> labelled {common['label']!r} has points {text[:60]!r}; "
            "CVAT writes them as 'x0,y0;x1,y1;...'"
        )
    if not np.isfinite(points).all():
        return None
    if element.tag == "polyline":
        if len(points) < 2:
            return None
        points.setflags(write=False)
        return AnnotationShape(kind="polyline", path=points, **common)
    if len(points) < 3:
        return None
    return AnnotationShape(kind="polygon", polygons=(Polygon(points),), **common)


def _mask_shape(element: ET.Element, where: str, width: int, height: int) -> AnnotationShape:
    common = _common(element, where)
    what = f"{where}: the mask labelled {common['label']!r}"
    try:
        runs = [int(v) for v in (element.get("rle") or "").split(",")]
        left, top, box_w, box_h = (
            int(element.get(key) or "") for key in ("left", "top", "width", "height")
        )
    except ValueError:
        raise AnnotationFormatError(
            f"{what} needs rle='r0, r1, ...' and whole-number left, top, width and height"
        ) from None
    if (
        box_w <= 0
        or box_h <= 0
        or left < 0
        or top < 0
        or left + box_w > width
        or top + box_h > height
    ):
        raise AnnotationFormatError(
            f"{what} has the box left={left}, top={top}, width={box_w}, height={box_h}, which "
            f"does not lie inside the {width}x{height} image"
        )
    try:
        mask = cvat_points_to_mask([*runs, 0, 0, box_w - 1, box_h - 1], box_h, box_w)
    except ValueError as err:
        raise AnnotationFormatError(f"{what}: {err}") from None
    mask.setflags(write=False)
    return AnnotationShape(kind="mask", mask=mask, offset=(left, top), **common)


def to_cvat_xml(images: Iterable[AnnotatedImage], labels: Iterable[str] = ()) -> str:
    """The text of a CVAT for images 1.1 export of ``images`` (what CVAT would download).

    Polygons with several parts become one ``<polygon>`` per part; holes cannot be drawn as
    CVAT polygons and are left out (use a mask for a colony with holes). Coordinates are
    written with two decimals, as CVAT does.
    """
    images = list(images)
    declared = list(dict.fromkeys([*labels, *(s.label for i in images for s in i.shapes)]))
    root = ET.Element("annotations")
    ET.SubElement(root, "version").text = "1.1"
    task = ET.SubElement(ET.SubElement(root, "meta"), "task")
    label_list = ET.SubElement(task, "labels")
    for name in declared:
        label = ET.SubElement(label_list, "label")
        ET.SubElement(label, "name").text = name
        ET.SubElement(label, "type").text = "any"
    for index, image in enumerate(images):
        attributes = {
            "id": str(image.image_id if image.image_id is not None else index),
            "name": image.name,
        }
        if image.subset:
            attributes["subset"] = image.subset
        if image.task_id is not None:
            attributes["task_id"] = str(image.task_id)
        attributes.update(width=str(image.width), height=str(image.height))
        element = ET.SubElement(root, "image", attributes)
        for shape in image.shapes:
            _write_shape(element, shape)
    ET.indent(root)
    return '<?xml version="1.0" encoding="utf-8"?>\n' + ET.tostring(root, encoding="unicode") + "\n"


def _write_shape(parent: ET.Element, shape: AnnotationShape) -> None:
    common = {"label": shape.label, "source": "manual", "occluded": str(int(shape.occluded))}
    extra = {"z_order": str(shape.z_order)}
    elements = []
    if shape.kind == "mask":
        runs = mask_to_cvat_points(shape.mask)
        # mask_to_cvat_points boxes the foreground tightly; shift its box by the offset.
        left, top, right, bottom = runs[-4:]
        box = {
            "rle": ", ".join(str(r) for r in runs[:-4]),
            "left": str(shape.offset[0] + left),
            "top": str(shape.offset[1] + top),
            "width": str(right - left + 1),
            "height": str(bottom - top + 1),
        }
        elements.append(ET.SubElement(parent, "mask", {**common, **box, **extra}))
    else:
        rings = [shape.path] if shape.kind == "polyline" else [p.exterior for p in shape.polygons]
        for ring in rings:
            points = ";".join(f"{x:.2f},{y:.2f}" for x, y in np.asarray(ring))
            elements.append(
                ET.SubElement(parent, shape.kind, {**common, "points": points, **extra})
            )
    for element in elements:
        for name, value in shape.attributes.items():
            ET.SubElement(element, "attribute", {"name": name}).text = value
