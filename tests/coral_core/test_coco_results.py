"""COCO results records: one type for any model's predictions, read and written by
coral_core.formats.coco, the same record after a round trip."""

from __future__ import annotations

import numpy as np
import pytest

from coral_core.errors import CoralsegError
from coral_core.formats.coco import CocoResult, ImageInfo, coco_result_annotation, parse_results
from coral_core.formats.rle import coco_rle_to_mask, mask_to_coco_rle


def test_a_result_round_trips_through_its_annotation() -> None:
    mask = np.zeros((6, 9), bool)
    mask[1:4, 2:7] = True
    images = {"a": ImageInfo("a", "a.jpg", 9, 6)}  # Ultralytics writes file stems as ids
    result = CocoResult("a", 3, 0.75, mask_to_coco_rle(mask))
    annotation = coco_result_annotation(1, result)
    assert annotation["bbox"] == [2, 1, 5, 3] and annotation["area"] == 15
    (back,) = parse_results([annotation], images, "preds.json")
    assert back == result
    assert np.array_equal(coco_rle_to_mask(dict(back.rle)), mask)


def test_a_record_on_an_unknown_image_is_named() -> None:
    images = {1: ImageInfo(1, "a.jpg", 9, 6)}
    record = {"image_id": 2, "category_id": 1, "segmentation": [[0, 0, 4, 0, 4, 4]], "score": 1}
    with pytest.raises(CoralsegError, match=r"preds.json: prediction #1 refers to image_id 2"):
        parse_results([record], images, "preds.json")
