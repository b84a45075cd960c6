from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from PIL import Image
from pycocotools import mask as mask_utils

from coral_core.formats.rle import (
    box_mask_to_coco_rle,
    coco_rle_area,
    coco_rle_bbox,
    coco_rle_to_mask,
    cvat_points_to_mask,
    mask_to_coco_rle,
    mask_to_cvat_points,
)


def random_masks(seed: int, count: int) -> list[np.ndarray]:
    """Masks of assorted sizes and densities, some with long runs (multi-character counts)."""
    rng = np.random.default_rng(seed)
    masks = [np.zeros((1, 1), bool), np.ones((1, 1), bool), np.ones((3, 5), bool)]
    for _ in range(count):
        height, width = rng.integers(1, 40, size=2)
        noise = rng.random((height, width)) < rng.random()
        blob = np.zeros((height, width), bool)
        blob[rng.integers(height) :, rng.integers(width) :] = True
        masks += [noise, blob, blob ^ (noise & (rng.random((height, width)) < 0.05))]
    return masks


def column_major_runs(mask: np.ndarray) -> list[int]:
    """Uncompressed COCO counts, computed independently of pycocotools."""
    flat = mask.ravel(order="F").astype(np.int8)
    changes = np.flatnonzero(np.diff(flat)) + 1
    runs = np.diff(np.concatenate(([0], changes, [flat.size]))).tolist()
    return [0, *runs] if flat[0] else runs


# --- COCO ---------------------------------------------------------------------------------


@pytest.mark.parametrize("mask", random_masks(seed=1, count=30))
def test_coco_round_trip_area_and_bbox(mask: np.ndarray) -> None:
    rle = mask_to_coco_rle(mask)
    assert rle["size"] == list(mask.shape)
    assert json.loads(json.dumps(rle)) == rle  # JSON-safe: str counts, int size
    decoded = coco_rle_to_mask(rle)
    assert decoded.dtype == bool and decoded.flags.c_contiguous
    assert np.array_equal(decoded, mask)
    assert coco_rle_area(rle) == mask.sum()
    rows, cols = np.nonzero(mask)
    expected_bbox = (
        (cols.min(), rows.min(), cols.max() - cols.min() + 1, rows.max() - rows.min() + 1)
        if mask.any()
        else (0, 0, 0, 0)
    )
    assert coco_rle_bbox(rle) == tuple(float(v) for v in expected_bbox)


@pytest.mark.parametrize("mask", random_masks(seed=2, count=10))
def test_coco_counts_as_bytes_or_uncompressed_list(mask: np.ndarray) -> None:
    compressed = mask_to_coco_rle(mask)
    as_bytes = {"size": compressed["size"], "counts": compressed["counts"].encode()}
    as_list = {"size": compressed["size"], "counts": column_major_runs(mask)}
    assert np.array_equal(coco_rle_to_mask(as_bytes), mask)
    assert np.array_equal(coco_rle_to_mask(as_list), mask)
    assert coco_rle_area(as_list) == mask.sum()


def test_coco_accepts_integer_masks_and_matches_pycocotools() -> None:
    labels = np.array([[0, 2, 2], [7, 0, 0]], dtype=np.uint8)
    expected = mask_utils.encode(np.asfortranarray(labels != 0, dtype=np.uint8))
    assert mask_to_coco_rle(labels)["counts"] == expected["counts"].decode()


@pytest.mark.parametrize(
    ("rle", "message"),
    [
        ({"counts": "0"}, '"size" and "counts"'),
        ([2, 2], '"size" and "counts"'),
        ({"size": [2], "counts": "4"}, r"\[height, width\]"),
        ({"size": [2.0, 2.0], "counts": "4"}, r"\[height, width\]"),
        ({"size": [2, -2], "counts": "4"}, r"\[height, width\]"),
        ({"size": [2, 2], "counts": 4}, "string, bytes or a list of ints"),
        ({"size": [2, 2], "counts": [1.5, 2.5]}, "string, bytes or a list of ints"),
        ({"size": [2, 2], "counts": [1, 1, 1]}, "cover 3 pixels but its size 2x2 has 4"),
        ({"size": [2, 2], "counts": [5, -1]}, "negative run"),
        ({"size": [2, 2], "counts": "2"}, "cover 2 pixels"),
        ({"size": [2, 2], "counts": "0\x7f"}, "characters outside"),
        ({"size": [2, 2], "counts": "0P"}, "ends in the middle of a number"),
        ({"size": [2, 2], "counts": "PPPPPPPP0"}, "too large"),
    ],
)
def test_coco_rejects_malformed_rle(rle: object, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        coco_rle_to_mask(rle)


def test_coco_counts_string_with_negative_deltas_and_long_runs() -> None:
    # Runs that shrink (negative differences to the run two before) and runs over 2**10.
    mask = np.zeros((300, 200), bool)
    mask[:, 150:] = True
    mask[100:103, 10:20] = True
    rle = mask_to_coco_rle(mask)
    assert np.array_equal(coco_rle_to_mask(rle), mask)


# --- CVAT ---------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("mask", "points"),
    [
        # First box pixel is foreground: an empty background run comes first.
        ("..... .##.. ..#.. .....", [0, 2, 1, 1, 1, 1, 2, 2]),
        ("..... ..#.. .#... .....", [1, 2, 1, 1, 1, 2, 2]),
        ("#", [0, 1, 0, 0, 0, 0]),
        ("... ... ..#", [0, 1, 2, 2, 2, 2]),
        ("#.# ...", [0, 1, 1, 1, 0, 0, 2, 0]),
    ],
)
def test_cvat_points_of_known_masks(mask: str, points: list[int]) -> None:
    bitmap = np.array([[c == "#" for c in row] for row in mask.split()])
    assert mask_to_cvat_points(bitmap) == points
    assert all(type(v) is int for v in points)
    assert np.array_equal(cvat_points_to_mask(points, *bitmap.shape), bitmap)


@pytest.mark.parametrize("mask", [m for m in random_masks(seed=3, count=30) if m.any()])
def test_cvat_round_trip(mask: np.ndarray) -> None:
    points = mask_to_cvat_points(mask)
    assert json.loads(json.dumps(points)) == points
    assert np.array_equal(cvat_points_to_mask(points, *mask.shape), mask)
    # CVAT's JSON gives the numbers back as floats.
    as_floats = [float(v) for v in points]
    assert np.array_equal(cvat_points_to_mask(as_floats, *mask.shape), mask)


def test_cvat_points_match_cvat_sdk() -> None:
    sdk_masks = pytest.importorskip("cvat_sdk.masks", reason="cvat-sdk is not installed")
    for mask in random_masks(seed=4, count=30):
        if not mask.any():
            continue
        points = mask_to_cvat_points(mask)
        assert points == sdk_masks.encode_mask(mask)
        height, width = mask.shape
        if hasattr(sdk_masks, "decode_mask"):  # cvat-sdk >= 2.40
            decoded = sdk_masks.decode_mask(points, image_width=width, image_height=height)
            assert np.array_equal(decoded, cvat_points_to_mask(points, height, width))


def test_cvat_empty_mask_is_an_error() -> None:
    with pytest.raises(ValueError, match="the mask is empty"):
        mask_to_cvat_points(np.zeros((3, 4), bool))


@pytest.mark.parametrize(
    ("points", "message"),
    [
        ([0, 0, 1, 1], "at least one run length"),
        ([[1, 0, 0, 0, 0]], "at least one run length"),
        ([1.5, 0, 0, 0, 0], "whole numbers"),
        (["1", "x", 0, 0, 0], "flat list of numbers"),
        ([1, 0, 0, float("nan"), 0], "whole numbers"),
        ([1, 0, 0, 4, 0], r"right=4.*inside the 4x3 image"),
        ([1, 2, 0, 1, 0], r"left=2.*right=1"),
        ([1, 0, 0, 0, 3], r"bottom=3.*inside the 4x3 image"),
        ([1, 0, -1, 0, 0], "top=-1"),
        ([2, 0, 0, 0, 0], "runs cover 2 pixels but the box is 1x1 = 1 pixels"),
        ([3, -2, 0, 0, 0, 0], "must not be negative"),
    ],
)
def test_cvat_rejects_malformed_points(points: list, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        cvat_points_to_mask(points, 3, 4)


def test_cvat_rejects_bad_image_size() -> None:
    with pytest.raises(ValueError, match="height must be a positive integer"):
        cvat_points_to_mask([1, 0, 0, 0, 0], 0, 4)


# --- Real labels -------------------------------------------------------------------------


@pytest.mark.shared_data
def test_real_class_masks_round_trip(shared_data: Path) -> None:
    path = sorted((shared_data / "eilat_train" / "labels").glob("*.png"))[0]
    labels = np.array(Image.open(path))
    for value in np.unique(labels):
        mask = labels == value
        assert np.array_equal(coco_rle_to_mask(mask_to_coco_rle(mask)), mask)
        assert np.array_equal(cvat_points_to_mask(mask_to_cvat_points(mask), *mask.shape), mask)


@pytest.mark.parametrize("seed", range(4))
def test_box_rle_equals_the_rle_of_the_whole_mask(seed: int) -> None:
    rng = np.random.default_rng(seed)
    for box in random_masks(seed, 10):
        h, w = box.shape
        height, width = h + int(rng.integers(0, 3)), w + int(rng.integers(0, 3))
        top, left = int(rng.integers(0, height - h + 1)), int(rng.integers(0, width - w + 1))
        whole = np.zeros((height, width), bool)
        whole[top : top + h, left : left + w] = box
        assert box_mask_to_coco_rle(box, left, top, height, width) == mask_to_coco_rle(whole)


def test_box_rle_refuses_a_box_outside_the_image() -> None:
    with pytest.raises(ValueError, match="is not inside the 4x4 image"):
        box_mask_to_coco_rle(np.ones((2, 3), bool), 2, 0, 4, 4)
