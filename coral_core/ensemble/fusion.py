"""Merge the instance predictions of several models (result sets) into one set.

Result sets (:mod:`coral_core.ensemble.results`) may number their images and categories
differently; they are matched by name:

* images by file name: by base name (folders and ``\\``/``/`` ignored) when no source lists
  two images with the same base name, else by the whole relative path. The same file must
  have the same size in every source, as masks are merged pixel by pixel.
* categories by name, compared case-folded with runs of spaces collapsed
  (:func:`coral_core.labels.taxonomy.normalize_label`), after an optional label map
  (``{"acropora_branching": "Acropora"}``) and, when a taxonomy is given, after resolving
  through it (its classes and source labels; names it does not know are dropped).

Strategies (:data:`STRATEGIES`):

* ``weighted``: on each image, instances of all sources are clustered by mask IoU (below),
  whatever their labels; each cluster becomes one instance. Its score is the mean of the
  members' scores weighted by their sources' weights; its mask holds the pixels that at
  least half of the members' votes cover and its label is the one with the most votes, a
  member's vote being its source weight times its score (confident members count more).
* ``voting``: the same clusters; a cluster is kept only when at least ``min_votes`` sources
  have a member in it. Its label is the most frequent member label (ties: the larger sum of
  votes), its mask that of the member with the highest score, its score the weighted mean as
  in ``weighted``.
* ``nms``: all instances pooled, each score multiplied by its source's weight; greedy
  non-maximum suppression by mask IoU, within each category or across categories
  (``class_agnostic``). Survivors keep their own mask and label and the weighted score.

Clustering is greedy, like weighted boxes fusion: instances are taken by decreasing vote;
each joins the existing cluster whose first (strongest) member it overlaps most, if that
mask IoU is at least ``iou`` and the cluster has no member of its source yet (a model
never votes twice for one object), and otherwise starts a cluster. Only instances whose
boxes overlap are compared. Ties in the order go to the earlier source.

Weights are relative (scaled so the largest is 1); they do not change which instances
``weighted`` and ``voting`` keep, only scores and votes. The merged set reuses the first
source's image and category ids (put the predictions whose ground truth you evaluate
against first); images and categories it lacks get new ids after its largest.
"""

from __future__ import annotations

import math
from collections import Counter
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from numbers import Real
from pathlib import PurePosixPath
from types import MappingProxyType
from typing import Any

import numpy as np
from pycocotools import mask as mask_utils

from coral_core.ensemble.results import ResultSet
from coral_core.errors import CoralsegError
from coral_core.formats.coco import CocoResult, ImageId, ImageInfo
from coral_core.formats.rle import coco_rle_bbox
from coral_core.labels.taxonomy import Taxonomy, normalize_label, with_label_map

STRATEGIES = ("weighted", "voting", "nms")


@dataclass(frozen=True)
class EnsembleSettings:
    """How to merge result sets (see the module docstring for the strategies).

    Attributes:
        strategy: one of :data:`STRATEGIES`.
        weights: one positive number per source, relative; ``None`` gives every source 1.
        iou: mask IoU at or above which two instances are the same object, in ``(0, 1]``.
        min_votes: ``voting`` keeps clusters with members from at least this many sources.
        class_agnostic: ``nms`` suppresses across categories (only valid with ``nms``;
            the other strategies always cluster across categories and vote on the label).
        label_map: category name -> name it stands for, applied before matching.
        taxonomy: when given, category names resolve through it (after ``label_map``) and
            names it does not know are dropped.

    Raises:
        CoralsegError: an option is out of range; the message says which and why.
    """

    strategy: str = "weighted"
    weights: tuple[float, ...] | None = None
    iou: float = 0.5
    min_votes: int = 2
    class_agnostic: bool = False
    label_map: Mapping[str, str] = field(default_factory=dict)
    taxonomy: Taxonomy | None = None

    def __post_init__(self) -> None:
        if self.strategy not in STRATEGIES:
            raise CoralsegError(
                f"unknown strategy {self.strategy!r}; use one of {', '.join(STRATEGIES)}"
            )
        if self.weights is not None:
            weights = tuple(self.weights)
            if not all(_is_real(w) and math.isfinite(w) and w > 0 for w in weights):
                raise CoralsegError(
                    f"weights must be positive numbers, got {', '.join(map(str, weights))}; "
                    "leave a source out rather than giving it weight 0"
                )
            object.__setattr__(self, "weights", tuple(float(w) for w in weights))
        if not (_is_real(self.iou) and 0 < self.iou <= 1):
            raise CoralsegError(f"the IoU threshold must be in (0, 1], e.g. 0.5; got {self.iou}")
        if isinstance(self.min_votes, bool) or not isinstance(self.min_votes, int):
            raise CoralsegError(f"min_votes must be a whole number, got {self.min_votes!r}")
        if self.min_votes < 1:
            raise CoralsegError(f"min_votes must be at least 1, got {self.min_votes}")
        if self.class_agnostic and self.strategy != "nms":
            raise CoralsegError(
                "class-agnostic suppression only applies to the nms strategy; weighted and "
                "voting always cluster across categories and vote on the label"
            )
        object.__setattr__(self, "label_map", MappingProxyType(dict(self.label_map)))
        if self.taxonomy is not None:
            with_label_map(self.taxonomy, self.label_map)  # raises for targets it lacks


@dataclass(frozen=True)
class SourceReport:
    """What became of one source's predictions.

    Attributes:
        name: the source's name.
        weight: its weight as given.
        instances: its number of predictions.
        used: how many of them are in an output cluster (``weighted``, ``voting``) or
            survived suppression (``nms``).
        dropped: predictions left out before merging, by reason (``"empty mask"``,
            ``"category unknown to the taxonomy"``).
        unmatched_images: file names it has predictions on that no other source lists.
        unmatched_categories: category names its predictions use that no other source
            lists (after the label map and taxonomy).
        unknown_categories: with a taxonomy, its category names the taxonomy does not know.
    """

    name: str
    weight: float
    instances: int
    used: int
    dropped: Mapping[str, int]
    unmatched_images: tuple[str, ...]
    unmatched_categories: tuple[str, ...]
    unknown_categories: tuple[str, ...]


@dataclass(frozen=True)
class EnsembleResult:
    """The merged result set, the settings it was made with and one report per source."""

    merged: ResultSet
    settings: EnsembleSettings
    sources: tuple[SourceReport, ...]


def ensemble(
    sources: Sequence[ResultSet], settings: EnsembleSettings | None = None
) -> EnsembleResult:
    """Merge two or more result sets into one (see the module docstring).

    Args:
        sources: the result sets, in the order of ``settings.weights``; the first one's
            image and category ids are kept.
        settings: the strategy and its options; ``None``: weighted fusion, equal weights.

    Returns:
        The merged set (named ``"ensemble"``; on each image, instances by decreasing
        score) with a report per source.

    Raises:
        CoralsegError: fewer than two sources, a weight count that differs from the number
            of sources, ``min_votes`` above it, sources that share no image, or one image
            with different sizes in two sources.
    """
    sources = tuple(sources)
    settings = settings or EnsembleSettings()
    if len(sources) < 2:
        raise CoralsegError(f"an ensemble needs at least two result sets, got {len(sources)}")
    weights = settings.weights or (1.0,) * len(sources)
    if len(weights) != len(sources):
        raise CoralsegError(
            f"got {len(weights)} weights for {len(sources)} result sets; give one weight per "
            "result set, in the same order"
        )
    if settings.strategy == "voting" and settings.min_votes > len(sources):
        raise CoralsegError(
            f"min_votes {settings.min_votes} is more than the {len(sources)} result sets, "
            "so no instance could be kept; lower it"
        )
    image_keys = _image_keys(sources)
    category_keys, names, unknown = _category_keys(sources, settings)
    images = _merged_images(sources, image_keys)
    categories = _merged_categories(sources, category_keys, names)
    image_ids = {key: image.id for key, image in images.items()}
    category_ids = {key: category_id for category_id, key in categories.items()}
    largest = max(weights)

    pooled: dict[str, list[_Member]] = {key: [] for key in images}
    dropped = [Counter() for _ in sources]
    for s, source in enumerate(sources):
        for instance in source.instances:
            label = category_keys[s][instance.category_id]
            if label is None:
                dropped[s]["category unknown to the taxonomy"] += 1
                continue
            rle = {"size": list(instance.rle["size"]), "counts": instance.rle["counts"]}
            box = coco_rle_bbox(rle)
            if box[2] == 0:
                dropped[s]["empty mask"] += 1
                continue
            weight = weights[s] / largest
            key = image_keys[s][instance.image_id]
            pooled[key].append(_Member(s, label, instance.score, weight, rle, box))

    out: list[CocoResult] = []
    used = [0] * len(sources)
    for key, members in pooled.items():
        fused = _merge_image(members, settings)
        for member_group, label, score, rle in fused:
            for member in member_group:
                used[member.source] += 1
            out.append(CocoResult(image_ids[key], category_ids[label], score, rle))
    merged = ResultSet(
        "ensemble",
        {image.id: image for image in images.values()},
        {category_id: names[key] for category_id, key in categories.items()},
        tuple(out),
    )
    reports = tuple(
        SourceReport(
            name=source.name,
            weight=weights[s],
            instances=len(source.instances),
            used=used[s],
            dropped=MappingProxyType(dict(dropped[s])),
            unmatched_images=_unmatched_images(s, sources, image_keys),
            unmatched_categories=tuple(
                names[k] for k in _unmatched_categories(s, sources, category_keys)
            ),
            unknown_categories=unknown[s],
        )
        for s, source in enumerate(sources)
    )
    return EnsembleResult(merged, settings, reports)


def _is_real(value: object) -> bool:
    return isinstance(value, Real) and not isinstance(value, bool)


# --- Matching images and categories across sources ----------------------------------------


def _image_keys(sources: Sequence[ResultSet]) -> list[dict[ImageId, str]]:
    """Per source, image id -> the key images are matched by (module docstring)."""
    paths = [
        {i: _clean_path(image.file_name) for i, image in source.images.items()}
        for source in sources
    ]
    base_names_unique = all(
        len({PurePosixPath(p).name for p in set(keys.values())}) == len(set(keys.values()))
        for keys in paths
    )
    keys = (
        [{i: PurePosixPath(p).name for i, p in by_id.items()} for by_id in paths]
        if base_names_unique
        else paths
    )
    listed = [set(by_id.values()) for by_id in keys]
    shared = set().union(*(a & b for n, a in enumerate(listed) for b in listed[n + 1 :]))
    nonempty = [s for s, names in enumerate(listed) if names]
    if len(nonempty) >= 2 and not shared:
        first, second = nonempty[:2]
        raise CoralsegError(
            f"{sources[first].name} and the other result sets have no image in common (e.g. "
            f"{min(listed[first])!r} and {min(listed[second])!r}); images are matched by file "
            "name, so check that all predictions were made on the same images"
        )
    return keys


def _clean_path(file_name: str) -> str:
    path = file_name.replace("\\", "/")
    while path.startswith("./"):
        path = path[2:]
    return path


def _category_keys(
    sources: Sequence[ResultSet], settings: EnsembleSettings
) -> tuple[list[dict[int, str | None]], dict[str, str], list[tuple[str, ...]]]:
    """Per source, category id -> match key (None: unknown to the taxonomy); the output
    name of each key (its first spelling, in source order); per source, unknown names."""
    resolve = _name_resolver(settings)
    keys: list[dict[int, str | None]] = []
    names: dict[str, str] = {}
    unknown: list[tuple[str, ...]] = []
    for source in sources:
        by_id: dict[int, str | None] = {}
        missing: set[str] = set()
        for category_id, label in source.categories.items():
            resolved = resolve(label)
            if resolved is None:
                by_id[category_id] = None
                missing.add(label)
                continue
            key = normalize_label(resolved)
            by_id[category_id] = key
            names.setdefault(key, resolved)
        keys.append(by_id)
        unknown.append(tuple(sorted(missing)))
    return keys, names, unknown


def _name_resolver(settings: EnsembleSettings) -> Callable[[str], str | None]:
    if settings.taxonomy is not None:
        return with_label_map(settings.taxonomy, settings.label_map).resolve
    lookup = {normalize_label(k): v for k, v in settings.label_map.items()}
    return lambda label: lookup.get(normalize_label(label), label)


def _merged_images(
    sources: Sequence[ResultSet], image_keys: Sequence[Mapping[ImageId, str]]
) -> dict[str, ImageInfo]:
    """Match key -> output image: the first source's ids kept, new ids for the rest."""
    first: dict[str, tuple[int, ImageInfo]] = {}
    for s, source in enumerate(sources):
        for image_id, image in source.images.items():
            key = image_keys[s][image_id]
            if key not in first:
                first[key] = (s, image)
                continue
            other_source, other = first[key]
            if (other.width, other.height) != (image.width, image.height):
                raise CoralsegError(
                    f"image {key!r} is {other.width}x{other.height} in "
                    f"{sources[other_source].name} but {image.width}x{image.height} in "
                    f"{source.name}; masks can only be merged on images of the same size, so "
                    "give every result set the images at the size inference ran on"
                )
    next_id = 1 + max((i for i in sources[0].images if isinstance(i, int)), default=0)
    merged: dict[str, ImageInfo] = {}
    for key, (s, image) in first.items():
        if s == 0:
            merged[key] = image
        else:
            merged[key] = ImageInfo(next_id, image.file_name, image.width, image.height)
            next_id += 1
    return merged


def _merged_categories(
    sources: Sequence[ResultSet],
    category_keys: Sequence[Mapping[int, str | None]],
    names: Mapping[str, str],
) -> dict[int, str]:
    """Output category id -> match key: the first source's ids kept (the smallest where it
    maps several onto one name), new ids for the rest."""
    ids: dict[str, int] = {}
    for category_id in sorted(sources[0].categories):
        key = category_keys[0][category_id]
        if key is not None:
            ids.setdefault(key, category_id)
    next_id = 1 + max(sources[0].categories, default=0)
    for key in names:
        if key not in ids:
            ids[key] = next_id
            next_id += 1
    return {category_id: key for key, category_id in sorted(ids.items(), key=lambda kv: kv[1])}


def _unmatched_images(
    s: int, sources: Sequence[ResultSet], image_keys: Sequence[Mapping[ImageId, str]]
) -> tuple[str, ...]:
    others = set().union(*(set(keys.values()) for n, keys in enumerate(image_keys) if n != s))
    predicted = {image_keys[s][instance.image_id] for instance in sources[s].instances}
    return tuple(sorted(predicted - others))


def _unmatched_categories(
    s: int, sources: Sequence[ResultSet], category_keys: Sequence[Mapping[int, str | None]]
) -> list[str]:
    others = set().union(*(set(keys.values()) for n, keys in enumerate(category_keys) if n != s))
    used = {category_keys[s][instance.category_id] for instance in sources[s].instances}
    return sorted(k for k in used - others if k is not None)


# --- Merging the instances of one image ----------------------------------------------------


@dataclass(frozen=True, eq=False)
class _Member:
    """An instance in the pool of one image, with what merging needs of it."""

    source: int
    label: str  # match key of its category
    score: float
    weight: float  # its source's weight, scaled so the largest is 1
    rle: dict[str, Any]  # pycocotools takes plain dicts only
    box: tuple[float, float, float, float]  # COCO [x, y, w, h]

    @property
    def vote(self) -> float:
        return self.weight * self.score


_Fused = tuple[tuple[_Member, ...], str, float, dict[str, Any]]


def _merge_image(members: list[_Member], settings: EnsembleSettings) -> list[_Fused]:
    """``(members, label key, score, rle)`` of each output instance of one image."""
    if not members:
        return []
    # Strongest first; sorted() is stable, so ties keep source order.
    members = sorted(members, key=lambda m: (-m.vote, m.source))
    overlaps = _box_overlaps(np.array([m.box for m in members], dtype=np.float64))
    if settings.strategy == "nms":
        fused = [
            ((members[i],), members[i].label, members[i].vote, members[i].rle)
            for i in _nms(members, overlaps, settings.iou, settings.class_agnostic)
        ]
    else:
        clusters = _clusters(members, overlaps, settings.iou)
        if settings.strategy == "voting":
            fused = [_fuse_voting(c) for c in clusters if len(c) >= settings.min_votes]
        else:
            fused = [_fuse_weighted(c) for c in clusters]
    return sorted(fused, key=lambda f: -f[2])


def _box_overlaps(boxes: np.ndarray) -> np.ndarray:
    """``N x N`` bool: whether COCO boxes ``[x, y, w, h]`` share area (masks sharing a pixel
    have such boxes, so the rest need no mask IoU)."""
    x0, y0 = boxes[:, 0], boxes[:, 1]
    x1, y1 = x0 + boxes[:, 2], y0 + boxes[:, 3]
    return (
        (x0[:, None] < x1[None, :])
        & (x0[None, :] < x1[:, None])
        & (y0[:, None] < y1[None, :])
        & (y0[None, :] < y1[:, None])
    )


def _mask_ious(member: _Member, others: Sequence[_Member]) -> np.ndarray:
    return np.asarray(
        mask_utils.iou([member.rle], [o.rle for o in others], [0] * len(others))
    ).reshape(-1)


def _clusters(members: Sequence[_Member], overlaps: np.ndarray, iou: float) -> list[list[_Member]]:
    """Greedy clusters of ``members`` (strongest first), as the module docstring says."""
    leaders: list[int] = []
    clusters: list[list[_Member]] = []
    for i, member in enumerate(members):
        candidates: list[int] = []
        if leaders:
            candidates = [
                c
                for c in np.flatnonzero(overlaps[i, leaders]).tolist()
                if all(m.source != member.source for m in clusters[c])
            ]
        best = None
        if candidates:
            ious = _mask_ious(member, [members[leaders[c]] for c in candidates])
            j = int(np.argmax(ious))  # the first of equal IoUs: the earlier cluster
            if ious[j] >= iou:
                best = candidates[j]
        if best is None:
            leaders.append(i)
            clusters.append([member])
        else:
            clusters[best].append(member)
    return clusters


def _nms(members: Sequence[_Member], overlaps: np.ndarray, iou: float, agnostic: bool) -> list[int]:
    """Indices of the members greedy mask-IoU NMS keeps (``members`` strongest first)."""
    kept: list[int] = []
    for i, member in enumerate(members):
        rivals = [
            k for k in kept if overlaps[i, k] and (agnostic or members[k].label == member.label)
        ]
        if not rivals or _mask_ious(member, [members[k] for k in rivals]).max() < iou:
            kept.append(i)
    return kept


def _weighted_score(cluster: Sequence[_Member]) -> float:
    return sum(m.weight * m.score for m in cluster) / sum(m.weight for m in cluster)


def _fuse_weighted(cluster: Sequence[_Member]) -> _Fused:
    votes = [m.vote for m in cluster]
    if sum(votes) == 0:  # every member scored 0: let the source weights decide
        votes = [m.weight for m in cluster]
    by_label: dict[str, float] = {}
    for member, vote in zip(cluster, votes, strict=True):
        by_label[member.label] = by_label.get(member.label, 0.0) + vote
    # max() returns the first of equal totals: the label of the strongest such member.
    label = max(by_label, key=by_label.__getitem__)
    rle = cluster[0].rle if len(cluster) == 1 else _voted_mask(cluster, votes)
    return tuple(cluster), label, _weighted_score(cluster), rle


def _voted_mask(cluster: Sequence[_Member], votes: Sequence[float]) -> dict[str, Any]:
    """Pixels covered by at least half of the votes; the first member's mask if none is.

    Worked on the RLEs, never on whole-image arrays (a quadrat photo has ~12 million
    pixels): a pixel has half of the votes exactly when the members covering it include a
    set with half of the votes, so the mask is the union, over such sets, of the members'
    intersection. :func:`_winning_sets` lists enough of them.
    """
    # A relative tolerance, so that sums of equal halves count as reaching half.
    half = 0.5 * sum(votes) * (1 - 1e-9)
    intersections = [
        mask_utils.merge([cluster[i].rle for i in members], intersect=True)
        for members in _winning_sets(votes, half)
    ]
    fused = mask_utils.merge(intersections, intersect=False)
    if mask_utils.area(fused) == 0:  # possible with many members that overlap only the first
        return cluster[0].rle
    return {"size": list(cluster[0].rle["size"]), "counts": fused["counts"].decode()}


def _winning_sets(votes: Sequence[float], half: float) -> list[tuple[int, ...]]:
    """Index sets whose votes reach ``half``, each a superset-free prefix of a larger one.

    Every set of votes reaching ``half``, taken in index order, has a shortest prefix that
    reaches it; this lists those prefixes (at most ``C(k, k/2)`` of ``k`` members, and a
    cluster has at most one member per source). Their intersections cover the same pixels
    as those of all winning sets, since a prefix's intersection contains its set's.
    """
    found: list[tuple[int, ...]] = []
    stack: list[tuple[tuple[int, ...], float]] = [((), 0.0)]
    while stack:
        chosen, total = stack.pop()
        for i in range(chosen[-1] + 1 if chosen else 0, len(votes)):
            if total + votes[i] >= half:
                found.append((*chosen, i))
            else:
                stack.append(((*chosen, i), total + votes[i]))
    return found


def _fuse_voting(cluster: Sequence[_Member]) -> _Fused:
    counts = Counter(m.label for m in cluster)
    totals: dict[str, float] = {}
    for member in cluster:
        totals[member.label] = totals.get(member.label, 0.0) + member.vote
    label = max(totals, key=lambda k: (counts[k], totals[k]))
    best = max(cluster, key=lambda m: m.score)  # the first of equal scores: the strongest
    return tuple(cluster), label, _weighted_score(cluster), best.rle
