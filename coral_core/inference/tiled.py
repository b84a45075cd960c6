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

The work splits in two so that tiles can be refined anywhere (one process, or the workers of a
cluster, :mod:`coral_core.cluster`) and merged in one place: :func:`tile_pieces` turns one
tile's result into its :class:`Piece` s, and :func:`merge_tile_pieces` joins the pieces of all
tiles in row-major order. Given the same pieces, the merge gives the same colonies in the same
order, wherever the pieces were made.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from dataclasses import dataclass

import numpy as np

from coral_core.formats.polygons import foreground_box
from coral_core.inference.instances import CoralInstance, TwoStageResult

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


@dataclass(frozen=True, eq=False)
class Piece:
    """A colony clipped to one core.

    Attributes:
        value / label / score: the colony's class (encoding value and name) and score.
        box: ``(x0, y0, x1, y1)`` of the piece in image coordinates, ends exclusive.
        mask: ``(y1 - y0, x1 - x0)`` bool, the piece inside its box.
    """

    value: int
    label: str
    score: float
    box: Window
    mask: np.ndarray

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


def _clip_to_core(instance: CoralInstance, region: Window, core: Window) -> Piece | None:
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
    return Piece(instance.value, instance.label, instance.score, box, piece_mask)


def tile_pieces(grid: TileGrid, row: int, column: int, result: TwoStageResult) -> list[Piece]:
    """The colonies a tile's ``result`` (refined over ``grid.region(row, column)``, in that
    region's coordinates) has inside the tile's core, in the result's order."""
    core, region = grid.core(row, column), grid.region(row, column)
    return [
        piece
        for instance in result.instances.instances
        if (piece := _clip_to_core(instance, region, core)) is not None
    ]


class _Groups:
    """Union-find over pieces, which are numbered in the order they are added."""

    def __init__(self) -> None:
        self.parent: list[int] = []
        self.pieces: dict[int, list[Piece]] = {}

    def add(self, piece: Piece) -> int:
        number = len(self.parent)
        self.parent.append(number)
        self.pieces[number] = [piece]
        return number

    def find(self, number: int) -> int:
        while self.parent[number] != number:
            self.parent[number] = self.parent[self.parent[number]]
            number = self.parent[number]
        return number

    def union(self, a: int, b: int) -> None:
        ra, rb = self.find(a), self.find(b)
        if ra != rb:
            self.parent[rb] = ra
            self.pieces[ra].extend(self.pieces.pop(rb))

    def pop(self, root: int) -> list[Piece]:
        return self.pieces.pop(root)


def _merged(pieces: list[Piece]) -> CoralInstance:
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


def merge_tile_pieces(
    grid: TileGrid, pieces_of: Callable[[int, int], list[Piece]]
) -> Iterator[CoralInstance]:
    """Colonies of the whole image from its tiles' pieces, yielded as soon as they are complete.

    Args:
        grid: the tiling (its margin plays no part here).
        pieces_of: the pieces of tile ``(row, column)`` (:func:`tile_pieces`); called once per
            tile, in row-major order.

    Yields:
        :class:`CoralInstance` in image coordinates, in an order fixed by the pieces; colonies
        crossing seams appear once, merged.
    """
    groups = _Groups()
    above: list[tuple[int, Piece, int]] = []  # (number, piece, column) of the previous row
    for row in range(grid.rows):
        current: list[tuple[int, Piece, int]] = []
        left: list[tuple[int, Piece, int]] = []
        for column in range(grid.columns):
            core = grid.core(row, column)
            numbered = [(groups.add(piece), piece, column) for piece in pieces_of(row, column)]
            for number, piece, _ in numbered:
                for other, other_piece, _ in left:
                    if other_piece.value == piece.value and _touch(
                        other_piece.edge("right", grid.core(row, column - 1)),
                        piece.edge("left", core),
                    ):
                        groups.union(other, number)
                for other, other_piece, other_column in above:
                    if other_piece.value == piece.value and _touch(
                        other_piece.edge("bottom", grid.core(row - 1, other_column)),
                        piece.edge("top", core),
                    ):
                        groups.union(other, number)
            current.extend(numbered)
            left = numbered
        # Groups with a piece on this row's bottom border may continue below.
        bottom = grid.core(row, 0)[3]
        open_roots = {
            groups.find(number)
            for number, piece, _ in current
            if row + 1 < grid.rows and piece.box[3] == bottom
        }
        for root in list(groups.pieces):
            if groups.find(root) == root and root not in open_roots:
                yield _merged(groups.pop(root))
        above = [entry for entry in current if groups.find(entry[0]) in open_roots]


def iter_tiled_colonies(
    grid: TileGrid,
    refine_region: Callable[[Window], TwoStageResult],
    on_tile: Callable[[Window, Window, TwoStageResult], None] | None = None,
) -> Iterator[CoralInstance]:
    """Colonies of the whole image, refined and merged tile by tile in this process.

    Args:
        grid: the tiling.
        refine_region: runs both stages on a region ``(x0, y0, x1, y1)`` of the image; its
            colonies and masks are in the region's coordinates.
        on_tile: called with ``(core, region, result)`` after each tile (e.g. to write the
            core of the refined semantic mask), in row-major order.

    Yields:
        :class:`CoralInstance` as :func:`merge_tile_pieces` yields them.
    """

    def pieces_of(row: int, column: int) -> list[Piece]:
        core, region = grid.core(row, column), grid.region(row, column)
        result = refine_region(region)
        if on_tile is not None:
            on_tile(core, region, result)
        return tile_pieces(grid, row, column, result)

    return merge_tile_pieces(grid, pieces_of)
