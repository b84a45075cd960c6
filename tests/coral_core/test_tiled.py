"""Colonies tile by tile equal colonies of the whole image (seams merged, none doubled)."""

from __future__ import annotations

import numpy as np
import pytest

from coral_core.inference.instances import RefineSettings, TwoStageResult, refine
from coral_core.inference.prediction import SemanticPrediction, summarize_probabilities
from coral_core.inference.tiled import TileGrid, iter_tiled_colonies
from coral_core.labels.taxonomy import MaskEncoding, Taxonomy

ENCODING = MaskEncoding(Taxonomy("two", ("Acropora", "Porites")))


def _scene(height: int, width: int, seed: int) -> SemanticPrediction:
    """Discs and rectangles of both genera on background, many of them across seams."""
    rng = np.random.default_rng(seed)
    value = np.zeros((height, width), np.int64)
    rows, cols = np.mgrid[:height, :width]
    for _ in range(14):
        cy, cx = rng.integers(0, height), rng.integers(0, width)
        radius = rng.integers(5, 30)
        value[(rows - cy) ** 2 + (cols - cx) ** 2 <= radius**2] = rng.integers(1, 3)
    value[10:25, :] = 1  # a band across every vertical seam
    probs = np.zeros((3, height, width), np.float32)
    for v in range(3):
        probs[v] = np.where(value == v, 0.9, 0.05)
    return summarize_probabilities(probs, ENCODING)


def _crop(summary: SemanticPrediction, region) -> SemanticPrediction:
    x0, y0, x1, y1 = region
    return SemanticPrediction(
        *(getattr(summary, name)[y0:y1, x0:x1]
          for name in ("labels", "coral", "colony_labels", "colony_probability"))
    )  # fmt: skip


def _key(instance) -> tuple:
    return instance.value, instance.area, instance.bbox, instance.mask.tobytes()


@pytest.mark.parametrize(("tile", "margin", "seed"), [(64, 16, 0), (50, 40, 1), (37, 0, 2)])
def test_tiled_colonies_equal_the_whole_image(tile: int, margin: int, seed: int) -> None:
    height, width = 150, 170
    summary = _scene(height, width, seed)
    # Rules that read a colony's whole shape (splitting touching colonies at their necks,
    # slivers) see only a tile's region; seams are exact for connected regions only.
    settings = RefineSettings(min_area=1, min_thickness=0, neck_ratio=0)
    whole = refine(summary, ENCODING, settings=settings).instances

    def refine_region(region) -> TwoStageResult:
        cropped = _crop(summary, region)
        return TwoStageResult(cropped.labels, refine(cropped, ENCODING, settings=settings))

    tiles = []
    grid = TileGrid(height, width, tile, margin)
    tiled = list(iter_tiled_colonies(grid, refine_region, lambda *args: tiles.append(args[0])))
    assert len(tiles) == grid.rows * grid.columns
    assert len(whole) > 5
    assert sorted(map(_key, tiled)) == sorted(map(_key, whole))


def test_colonies_are_yielded_as_soon_as_their_rows_are_done() -> None:
    summary = _scene(150, 170, 0)
    settings = RefineSettings(min_area=1)
    rows_done: list[int] = []

    def refine_region(region) -> TwoStageResult:
        rows_done.append(region[1])
        cropped = _crop(summary, region)
        return TwoStageResult(cropped.labels, refine(cropped, ENCODING, settings=settings))

    colonies = iter_tiled_colonies(TileGrid(150, 170, 50, 10), refine_region)
    first = next(colonies)
    assert max(rows_done) < 100  # the last row of tiles was not needed yet
    assert first.bbox[1] + first.bbox[3] <= 50
