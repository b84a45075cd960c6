"""Tiles refined anywhere and merged from their files give the colonies of one process."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from coral_core.errors import CoralsegError
from coral_core.inference.instances import RefineSettings, refine
from coral_core.inference.pipeline import TwoStageResult
from coral_core.inference.tile_results import (
    TileResult,
    read_tile_result,
    read_tile_version,
    tile_result_path,
    write_tile_result,
)
from coral_core.inference.tiled import TileGrid, iter_tiled_colonies, merge_tile_pieces, tile_pieces
from tests.coral_core.test_tiled import ENCODING, _crop, _scene


def _instance_key(instance) -> tuple:
    return (instance.label, instance.value, instance.score, instance.bbox, instance.area,
            instance.mask.shape, instance.mask.tobytes())  # fmt: skip


def test_tiles_written_and_read_back_merge_into_the_same_colonies(tmp_path: Path) -> None:
    summary = _scene(150, 170, seed=1)
    settings = RefineSettings(min_area=1)
    grid = TileGrid(150, 170, tile=50, margin=20)

    def refine_region(region) -> TwoStageResult:
        cropped = _crop(summary, region)
        return TwoStageResult(cropped.labels, refine(cropped, ENCODING, settings=settings))

    expected_semantic = np.zeros((150, 170), np.uint8)

    def on_tile(core, region, result) -> None:
        x0, y0, x1, y1 = core
        inside = result.instances.semantic[y0 - region[1] : y1 - region[1],
                                           x0 - region[0] : x1 - region[0]]  # fmt: skip
        expected_semantic[y0:y1, x0:x1] = inside

    in_process = list(iter_tiled_colonies(grid, refine_region, on_tile))
    # the tiles as cluster workers do them, in reverse order, each to its own file
    for row in reversed(range(grid.rows)):
        for column in reversed(range(grid.columns)):
            result = refine_region(grid.region(row, column))
            x0, y0, x1, y1 = core = grid.core(row, column)
            rx0, ry0 = grid.region(row, column)[:2]
            inside = (slice(y0 - ry0, y1 - ry0), slice(x0 - rx0, x1 - rx0))
            tile = TileResult("v1", core, result.semantic_raw[inside],
                              result.instances.semantic[inside],
                              tile_pieces(grid, row, column, result))  # fmt: skip
            write_tile_result(tile_result_path(tmp_path, "reef", row, column), tile)

    semantic = np.zeros((150, 170), np.uint8)

    def pieces_of(row: int, column: int):
        tile = read_tile_result(tile_result_path(tmp_path, "reef", row, column))
        assert tile.model_version == "v1" and tile.core == grid.core(row, column)
        x0, y0, x1, y1 = tile.core
        semantic[y0:y1, x0:x1] = tile.semantic
        return tile.pieces

    merged = list(merge_tile_pieces(TileGrid(150, 170, 50, margin=0), pieces_of))
    assert len(in_process) > 5
    assert any(c.bbox[0] // 50 != (c.bbox[0] + c.bbox[2] - 1) // 50 for c in merged)  # seams
    assert [_instance_key(c) for c in merged] == [_instance_key(c) for c in in_process]
    assert (semantic > 0).any() and np.array_equal(semantic, expected_semantic)


def test_a_tile_file_is_read_strictly(tmp_path: Path) -> None:
    path = tile_result_path(tmp_path, "reef", 0, 1)
    empty = TileResult("v2", (10, 0, 20, 5), np.ones((5, 10), np.uint8),
                       np.zeros((5, 10), np.uint8), [])  # fmt: skip
    write_tile_result(path, empty)
    assert read_tile_version(path) == "v2"
    back = read_tile_result(path)
    assert back.pieces == [] and back.core == (10, 0, 20, 5) and back.semantic_raw.sum() == 50
    assert list(path.parent.iterdir()) == [path]  # no temporary file left
    path.write_bytes(path.read_bytes()[:40])
    with pytest.raises(CoralsegError, match=r"unusable.*redo it"):
        read_tile_result(path)
    np.savez(path.with_suffix(""), meta=np.array('{"format": "other"}'))
    with pytest.raises(CoralsegError, match="not a coralseg-tile-result/1 file"):
        read_tile_result(path)
