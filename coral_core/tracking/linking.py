"""Which colonies of two visits are the same colony, by overlap of their aligned masks.

Each before colony is carried into the after image (:func:`~.colonies.warp_colony`). A
before and an after colony *touch* when the pixels they share are at least ``min_overlap``
of the smaller of the two (so a small colony fused into a large one, or a small fragment
split off a large one, still touches it). Among touching colonies, the one-to-one links are
the optimal assignment maximising the summed intersection over union (the Hungarian
method, per group of touching colonies so the cost follows the colonies, not the image).
A before colony left without a link that touches a linked after colony fused into it; an
after colony left without a link that touches a linked before colony split off it.

A fusion or fission partner smaller than ``FRAGMENT`` of the colony it joins or leaves is
not one (a few stray pixels of a mask do not make a colony split).

Only what both images show can be compared: a colony's *common* area is the part of it
inside the other visit's image (a before colony's in after-image pixels, once aligned; an
after colony's pixels that fall inside the before image when carried back). A colony is
*in view* when at least half of it is common. A colony out of view has no fate.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
from scipy.optimize import linear_sum_assignment

from coral_core.tracking.alignment import Alignment
from coral_core.tracking.colonies import TrackedColony, warp_colony

# Shared pixels, as a share of the smaller colony, for two colonies to touch.
MIN_OVERLAP = 0.3
# Share of a colony inside the other visit's image for it to be in view.
IN_VIEW = 0.5
# A fusion or fission partner must be at least this share of the colony it joins or leaves.
FRAGMENT = 0.02


@dataclass(frozen=True, eq=False)
class Linking:
    """How the colonies of two visits are linked.

    Attributes:
        pairs: one-to-one links ``(before index, after index)``, sorted.
        fused: before colony -> the linked after colony it fused into.
        split: after colony -> the linked before colony it split off.
        iou: intersection over union of every touching ``(before, after)`` pair.
        aligned_area: ``(N,)`` float64 area of each before colony in after-image pixels.
        before_common, after_common: ``(N,)`` and ``(M,)`` float64 common areas (module
            docstring), both in after-image pixels.
        before_in_view, after_in_view: ``(N,)`` and ``(M,)`` bool (see the module docstring).
    """

    pairs: tuple[tuple[int, int], ...]
    fused: dict[int, int]
    split: dict[int, int]
    iou: dict[tuple[int, int], float]
    aligned_area: np.ndarray
    before_common: np.ndarray
    after_common: np.ndarray
    before_in_view: np.ndarray
    after_in_view: np.ndarray


def link_colonies(
    before: Sequence[TrackedColony],
    after: Sequence[TrackedColony],
    alignment: Alignment,
    after_shape: tuple[int, int],
    before_shape: tuple[int, int],
    min_overlap: float = MIN_OVERLAP,
) -> Linking:
    """Link the colonies of two visits (see the module docstring).

    Args:
        before, after: the colonies of the first and second visit.
        alignment: before-image pixels -> after-image pixels.
        after_shape, before_shape: ``(H, W)`` of the two images.
        min_overlap: in ``(0, 1]``: shared pixels over the smaller colony's for a touch.
    """
    if not 0 < min_overlap <= 1:
        raise ValueError(f"min_overlap must be in (0, 1], got {min_overlap}")
    after_boxes = np.array([c.bbox for c in after], dtype=np.int64).reshape(-1, 4)
    after_areas = np.array([c.area for c in after], dtype=np.float64)
    aligned_area = np.zeros(len(before))
    before_common = np.zeros(len(before))
    iou: dict[tuple[int, int], float] = {}
    for i, colony in enumerate(before):
        mask, left, top, full_area = warp_colony(colony, alignment, after_shape)
        aligned_area[i] = full_area
        inside = float(np.count_nonzero(mask))
        before_common[i] = inside
        if inside == 0:
            continue
        h, w = mask.shape
        near = np.flatnonzero(
            (after_boxes[:, 0] < left + w)
            & (after_boxes[:, 0] + after_boxes[:, 2] > left)
            & (after_boxes[:, 1] < top + h)
            & (after_boxes[:, 1] + after_boxes[:, 3] > top)
        )
        for j in near:
            shared = _shared_pixels(mask, left, top, after[j])
            if shared >= min_overlap * min(inside, after_areas[j]):
                iou[(i, int(j))] = shared / (inside + after_areas[j] - shared)
    pairs = _assign(iou)
    linked_before = {i for i, _ in pairs}
    linked_after = {j for _, j in pairs}
    after_common = _common_areas(after, alignment, before_shape)
    joined = dict((j, i) for i, j in pairs)
    left = dict(pairs)
    fused = _strongest(
        {
            (i, j): v
            for (i, j), v in iou.items()
            if i not in linked_before
            and j in linked_after
            and before_common[i] >= FRAGMENT * before_common[joined[j]]
        }
    )
    split = _strongest(
        {
            (j, i): v
            for (i, j), v in iou.items()
            if j not in linked_after
            and i in linked_before
            and after_common[j] >= FRAGMENT * after_common[left[i]]
        }
    )
    return Linking(
        pairs=tuple(sorted(pairs)),
        fused=fused,
        split=split,
        iou=iou,
        aligned_area=aligned_area,
        before_common=before_common,
        after_common=after_common,
        before_in_view=before_common >= IN_VIEW * aligned_area,
        after_in_view=after_common >= IN_VIEW * after_areas,
    )


def _shared_pixels(mask: np.ndarray, left: int, top: int, colony: TrackedColony) -> float:
    h, w = mask.shape
    ch, cw = colony.mask.shape
    x0, y0 = max(left, colony.left), max(top, colony.top)
    x1, y1 = min(left + w, colony.left + cw), min(top + h, colony.top + ch)
    if x1 <= x0 or y1 <= y0:
        return 0.0
    ours = mask[y0 - top : y1 - top, x0 - left : x1 - left]
    theirs = colony.mask[y0 - colony.top : y1 - colony.top, x0 - colony.left : x1 - colony.left]
    return float(np.count_nonzero(ours & theirs))


def _assign(iou: dict[tuple[int, int], float]) -> list[tuple[int, int]]:
    """The one-to-one pairs of maximal summed IoU, solved per connected group of touches."""
    parent: dict[tuple[str, int], tuple[str, int]] = {}

    def root(node: tuple[str, int]) -> tuple[str, int]:
        while parent.setdefault(node, node) != node:
            parent[node] = parent[parent[node]]
            node = parent[node]
        return node

    for i, j in iou:
        parent[root(("b", i))] = root(("a", j))
    groups: dict[tuple[str, int], list[tuple[int, int]]] = {}
    for i, j in iou:
        groups.setdefault(root(("b", i)), []).append((i, j))
    pairs = []
    for edges in groups.values():
        rows = sorted({i for i, _ in edges})
        cols = sorted({j for _, j in edges})
        weights = np.zeros((len(rows), len(cols)))
        for i, j in edges:
            weights[rows.index(i), cols.index(j)] = iou[(i, j)]
        chosen_rows, chosen_cols = linear_sum_assignment(weights, maximize=True)
        pairs += [
            (rows[r], cols[c])
            for r, c in zip(chosen_rows, chosen_cols, strict=True)
            if weights[r, c]
        ]
    return pairs


def _strongest(edges: dict[tuple[int, int], float]) -> dict[int, int]:
    """For each first index, the second index of its edge of highest weight."""
    best: dict[int, tuple[float, int]] = {}
    for (key, other), weight in edges.items():
        if key not in best or weight > best[key][0]:
            best[key] = (weight, other)
    return {key: other for key, (_, other) in sorted(best.items())}


def _common_areas(
    colonies: Sequence[TrackedColony], alignment: Alignment, before_shape: tuple[int, int]
) -> np.ndarray:
    """Pixels of each after colony that fall inside the before image when carried back."""
    back = Alignment(np.linalg.inv(alignment.matrix), alignment.method)
    height, width = before_shape
    areas = np.zeros(len(colonies))
    for index, colony in enumerate(colonies):
        ys, xs = np.nonzero(colony.mask)
        points = back.map_points(np.stack([xs + colony.left, ys + colony.top], axis=1))
        areas[index] = np.count_nonzero(
            (points[:, 0] >= -0.5)
            & (points[:, 0] < width - 0.5)
            & (points[:, 1] >= -0.5)
            & (points[:, 1] < height - 0.5)
        )
    return areas
