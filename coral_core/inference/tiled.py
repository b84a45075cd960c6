"""Colonies on images of any size (orthomosaics): the instance stage tile by tile.

The image is cut into *cores*, ``tile x tile`` squares in rows, each refined with a context
``margin`` around it (read from the image, clipped at its edges), so that colonies near a
core's border are seen with their surroundings. Each colony found in a tile's region is
clipped to the core: every pixel belongs to exactly one core, so no colony is counted twice.
Colonies cut by a seam are joined again: pieces of the same class in neighbouring cores that
touch across their shared border (8-connectivity, as colonies are found) form one colony,
whose mask is the union of the pieces, area their sum and score their area-weighted mean.

Cores are processed row by row. A colony is finished, and yielded, once no piece of it
touches the bottom of the row just done, so memory holds one row of tiles and the colonies
still open, never the image. Orthomosaics are processed at their native resolution (their
pixel size is a ground distance, unlike photo-quadrats, which are seen at the model's
training scale).
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from dataclasses import dataclass, field

import numpy as np

from coral_core.inference.instances import CoralInstance, TwoStageResult
from coral_core.polygons import foreground_box

Window = tuple[int, int, int, int]  # x0, y0, x1, y1, ends exclusive


@dataclass(frozen=True)
class TileGrid:
    """Cores of ``tile`` pixels over an ``height x width`` image, each with ``margin`` of
    context on every side (clipped at the image's edges)."""

    height: int
    width: int
    tile: int
    margin: int

    def __post_init__(self) -> None:
        if self.tile < 1 or self.margin < 0:
            raise ValueError(f"tile must be >= 1 and margin >= 0, got {self.tile}, {self.margin}")

    @property
    def rows(self) -> int:
        return -(-self.height // self.tile)

    @property
    def columns(self) -> int:
        return -(-self.width // self.tile)

    def core(self, row: int, column: int) -> Window:
        x0, y0 = column * self.tile, row * self.tile
        return x0, y0, min(x0 + self.tile, self.width), min(y0 + self.tile, self.height)

    def region(self, row: int, column: int) -> Window:
        x0, y0, x1, y1 = self.core(row, column)
        m = self.margin
        return max(0, x0 - m), max(0, y0 - m), min(self.width, x1 + m), min(self.height, y1 + m)


@dataclass(eq=False)
class _Piece:
    """A colony clipped to one core: its mask inside its box, in image coordinates."""

    value: int
    label: str
    score: float
    box: Window
    mask: np.ndarray
    row: int
    group: int = field(default=-1)

    @property
    def area(self) -> int:
        return int(self.mask.sum())

    def edge(self, side: str, core: Window) -> tuple[int, np.ndarray] | None:
        """The piece's pixels along one border of its core, as ``(offset, bool strip)``
        where offset is the strip's first image row (left/right) or column (top/bottom)."""
        x0, y0, x1, y1 = self.box
        cx0, cy0, cx1, cy1 = core
        if side == "right" and x1 == cx1:
            return y0, self.mask[:, -1]
        if side == "left" and x0 == cx0:
            return y0, self.mask[:, 0]
        if side == "bottom" and y1 == cy1:
            return x0, self.mask[-1, :]
        if side == "top" and y0 == cy0:
            return x0, self.mask[0, :]
        return None


def _touch(a: tuple[int, np.ndarray] | None, b: tuple[int, np.ndarray] | None) -> bool:
    """Whether two border strips facing each other have set pixels that are neighbours
    (8-connectivity: the same or an adjacent position along the seam)."""
    if a is None or b is None:
        return False
    (start_a, strip_a), (start_b, strip_b) = a, b
    end = max(start_a + strip_a.size, start_b + strip_b.size) + 1
    origin = min(start_a, start_b) - 1
    line_a = np.zeros(end - origin, dtype=bool)
    line_b = np.zeros(end - origin, dtype=bool)
    line_a[start_a - origin : start_a - origin + strip_a.size] = strip_a
    line_b[start_b - origin : start_b - origin + strip_b.size] = strip_b
    grown = line_b.copy()
    grown[1:] |= line_b[:-1]
    grown[:-1] |= line_b[1:]
    return bool((line_a & grown).any())


def _clip_to_core(instance: CoralInstance, region: Window, core: Window, row: int) -> _Piece | None:
    """The part of a colony (found in ``region``'s coordinates) inside ``core``."""
    rx0, ry0 = region[:2]
    x, y, w, h = instance.bbox
    x0, y0, x1, y1 = rx0 + x, ry0 + y, rx0 + x + w, ry0 + y + h
    cx0, cy0, cx1, cy1 = core
    ix0, iy0, ix1, iy1 = max(x0, cx0), max(y0, cy0), min(x1, cx1), min(y1, cy1)
    if ix0 >= ix1 or iy0 >= iy1:
        return None
    mask = instance.mask[iy0 - y0 : iy1 - y0, ix0 - x0 : ix1 - x0]
    tight = foreground_box(mask)
    if tight is None:
        return None
    left, top, right, bottom = tight
    box = (ix0 + left, iy0 + top, ix0 + right, iy0 + bottom)
    piece_mask = np.ascontiguousarray(mask[top:bottom, left:right])
    return _Piece(instance.value, instance.label, instance.score, box, piece_mask, row)


class _Groups:
    """Union-find over pieces."""

    def __init__(self) -> None:
        self.parent: list[int] = []
        self.pieces: dict[int, list[_Piece]] = {}

    def add(self, piece: _Piece) -> None:
        piece.group = len(self.parent)
        self.parent.append(piece.group)
        self.pieces[piece.group] = [piece]

    def find(self, group: int) -> int:
        while self.parent[group] != group:
            self.parent[group] = self.parent[self.parent[group]]
            group = self.parent[group]
        return group

    def union(self, a: _Piece, b: _Piece) -> None:
        ra, rb = self.find(a.group), self.find(b.group)
        if ra != rb:
            self.parent[rb] = ra
            self.pieces[ra].extend(self.pieces.pop(rb))

    def pop(self, root: int) -> list[_Piece]:
        return self.pieces.pop(root)


def _merged(pieces: list[_Piece]) -> CoralInstance:
    x0 = min(p.box[0] for p in pieces)
    y0 = min(p.box[1] for p in pieces)
    x1 = max(p.box[2] for p in pieces)
    y1 = max(p.box[3] for p in pieces)
    mask = np.zeros((y1 - y0, x1 - x0), dtype=bool)
    areas = []
    for p in pieces:
        mask[p.box[1] - y0 : p.box[3] - y0, p.box[0] - x0 : p.box[2] - x0] |= p.mask
        areas.append(p.area)
    area = int(sum(areas))
    score = sum(p.score * a for p, a in zip(pieces, areas, strict=True)) / max(area, 1)
    first = pieces[0]
    return CoralInstance(first.label, first.value, round(score, 6), (x0, y0, x1 - x0, y1 - y0),
                         mask, area)  # fmt: skip


def iter_tiled_colonies(
    grid: TileGrid,
    refine_region: Callable[[Window], TwoStageResult],
    on_tile: Callable[[Window, Window, TwoStageResult], None] | None = None,
) -> Iterator[CoralInstance]:
    """Colonies of the whole image, yielded as soon as they are complete.

    Args:
        grid: the tiling.
        refine_region: runs both stages on a region ``(x0, y0, x1, y1)`` of the image; its
            colonies and masks are in the region's coordinates.
        on_tile: called with ``(core, region, result)`` after each tile (e.g. to write the
            core of the refined semantic mask), in row-major order.

    Yields:
        :class:`CoralInstance` in image coordinates, in no particular order; colonies crossing
        seams appear once, merged.
    """
    groups = _Groups()
    above: list[_Piece] = []  # pieces of the previous row of cores
    for row in range(grid.rows):
        current: list[_Piece] = []
        left: list[_Piece] = []
        for column in range(grid.columns):
            core, region = grid.core(row, column), grid.region(row, column)
            result = refine_region(region)
            if on_tile is not None:
                on_tile(core, region, result)
            pieces = [
                piece
                for instance in result.instances.instances
                if (piece := _clip_to_core(instance, region, core, row)) is not None
            ]
            for piece in pieces:
                groups.add(piece)
                for other in left:
                    if other.value == piece.value and _touch(
                        other.edge("right", grid.core(row, column - 1)), piece.edge("left", core)
                    ):
                        groups.union(other, piece)
                for other in above:
                    if other.value == piece.value and _touch(
                        other.edge("bottom", grid.core(row - 1, _column_of(other, grid))),
                        piece.edge("top", core),
                    ):
                        groups.union(other, piece)
            current.extend(pieces)
            left = pieces
        # Groups with a piece on this row's bottom border may continue below.
        open_roots = {
            groups.find(p.group)
            for p in current
            if row + 1 < grid.rows and p.box[3] == grid.core(row, 0)[3]
        }
        for root in list(groups.pieces):
            if groups.find(root) == root and root not in open_roots:
                yield _merged(groups.pop(root))
        above = [p for p in current if groups.find(p.group) in open_roots]


def _column_of(piece: _Piece, grid: TileGrid) -> int:
    return piece.box[0] // grid.tile
