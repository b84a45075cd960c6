"""What CVAT requires of a Nuclio detector, written from CVAT's source, independently of
``nuclio_functions`` so the tests check that package against it.

Sources (cvat-ai/cvat, ``cvat/apps/lambda_manager/views.py``):

* ``LambdaFunction.__init__``: ``metadata.annotations.spec`` is a JSON list of labels; each
  label's ``name`` is required and unique (else ``InvalidFunctionMetadataError`` and the
  function is left out of CVAT's list); each attribute needs ``name`` (unique within its
  label), ``input_type`` and ``values``; ``type`` defaults to "unknown".
* ``LambdaFunction.invoke``: items whose ``label`` is not mapped to a task label are dropped;
  attributes are kept only if declared in the spec, and a value is checked against the task
  attribute's type (``number`` needs ``value.isnumeric()``, so values are strings).
* ``LambdaJob._call_detector.parse_anno``: a shape's ``type`` is taken as given; for
  ``mask``, ``mask[-4:]`` is ``xtl, ytl, xbr, ybr`` and ``mask[:-4]`` the flattened crop,
  run-length encoded by datumaro's ``mask_to_rle`` (a binary array); with "convert masks to
  polygons", ``points`` replaces the mask (a polygon: ``x, y`` pairs, at least 3 points).
"""

from __future__ import annotations

import json
import math
from collections.abc import Sequence
from typing import Any

import cv2
import numpy as np

SHAPE_TYPES = ("rectangle", "polygon", "polyline", "points", "ellipse", "cuboid", "mask")


def check_spec(spec_text: str) -> list[dict[str, Any]]:
    """Parse a function's ``spec`` annotation as CVAT does; raise what CVAT would reject."""
    spec = json.loads(spec_text or "[]")
    assert isinstance(spec, list), "spec must be a JSON list"
    names = [label["name"] for label in spec]  # KeyError = CVAT's own failure
    assert len(names) == len(set(names)), f"non-unique labels: {names}"
    for label in spec:
        attributes = [
            {"name": a["name"], "input_type": a["input_type"], "values": a["values"]}
            for a in label.get("attributes", [])
        ]
        attribute_names = [a["name"] for a in attributes]
        assert len(attribute_names) == len(set(attribute_names)), label["name"]
    return spec


def check_detections(
    items: Any, spec: Sequence[dict[str, Any]], height: int, width: int
) -> list[np.ndarray]:
    """Check a detector's response items; return each item's full-image mask (bool).

    Beyond what CVAT strictly needs, the item must not be silently lost (its label is in the
    spec, its attributes declared) and its polygon must outline (a part of) its mask.
    """
    assert isinstance(items, list), "a detector answers a JSON list"
    json.dumps(items)  # the processor sends JSON
    labels = {label["name"]: label for label in spec}
    masks = []
    for item in items:
        assert isinstance(item, dict)
        assert item["label"] in labels, f"label {item['label']!r} is not in the spec"
        assert item["type"] in SHAPE_TYPES
        assert item["type"] == "mask", "this function answers masks"
        confidence = float(item["confidence"])
        assert 0 <= confidence <= 1
        declared = {a["name"]: a for a in labels[item["label"]].get("attributes", [])}
        for attribute in item.get("attributes", []):
            assert attribute["name"] in declared, f"undeclared attribute {attribute['name']!r}"
            value = attribute["value"]
            assert isinstance(value, str), "attribute values are strings"
            if declared[attribute["name"]]["input_type"] == "number":
                assert value.isnumeric(), f"number attribute value {value!r}"
        mask = _check_mask(item["mask"], height, width)
        polygon = _check_polygon(item["points"], height, width)
        # the polygon outlines (a part of) this colony: inside its box, on its pixels
        ys, xs = np.nonzero(mask)
        assert polygon[:, 0].min() >= xs.min() - 1 and polygon[:, 0].max() <= xs.max() + 2
        assert polygon[:, 1].min() >= ys.min() - 1 and polygon[:, 1].max() <= ys.max() + 2
        drawn = np.zeros((height, width), np.uint8)
        cv2.fillPoly(drawn, [np.round(polygon).astype(np.int32)], 1)
        assert (drawn.astype(bool) & mask).any(), f"the polygon of a {item['label']} is off"
        masks.append(mask)
    return masks


def _check_mask(values: Any, height: int, width: int) -> np.ndarray:
    assert isinstance(values, list) and len(values) > 4
    xtl, ytl, xbr, ybr = values[-4:]
    for coordinate in (xtl, ytl, xbr, ybr):
        assert isinstance(coordinate, int) or float(coordinate).is_integer()
    xtl, ytl, xbr, ybr = int(xtl), int(ytl), int(xbr), int(ybr)
    assert 0 <= xtl <= xbr < width and 0 <= ytl <= ybr < height, (xtl, ytl, xbr, ybr)
    crop = np.asarray(values[:-4])
    assert crop.size == (xbr - xtl + 1) * (ybr - ytl + 1), "the crop does not fill its box"
    assert set(np.unique(crop).tolist()) <= {0, 255}, "mask values are 0 or 255"
    assert (crop == 255).any(), "an empty mask"
    full = np.zeros((height, width), dtype=bool)
    full[ytl : ybr + 1, xtl : xbr + 1] = crop.reshape(ybr - ytl + 1, xbr - xtl + 1) == 255
    return full


def _check_polygon(points: Any, height: int, width: int) -> np.ndarray:
    assert isinstance(points, list) and len(points) % 2 == 0 and len(points) >= 6
    assert all(isinstance(v, int | float) and math.isfinite(v) for v in points)
    polygon = np.asarray(points, dtype=np.float64).reshape(-1, 2)
    assert (polygon[:, 0] >= 0).all() and (polygon[:, 0] <= width).all()
    assert (polygon[:, 1] >= 0).all() and (polygon[:, 1] <= height).all()
    return polygon
