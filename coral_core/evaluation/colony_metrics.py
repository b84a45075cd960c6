"""Colonies judged as ecologists count them: panoptic quality, count error, size distributions.

The inputs are colonies as instance masks inside their boxes (any object with ``label``,
``bbox`` = COCO ``(x, y, w, h)`` and a box-local ``(h, w)`` bool ``mask``, such as
:class:`coral_core.inference.instances.CoralInstance`), predicted and true, per image.

* **Matching.** A predicted and a true colony of the same class match when their mask IoU is
  above ``0.5``; each colony matches at most once (pairs taken by decreasing IoU). When
  neither side overlaps itself (coralseg's colonies never do, :mod:`coral_core.ecology.colonies`
  annotated ones neither), an IoU above 0.5 makes the match unique, as in Kirillov et al.'s
  panoptic segmentation (CVPR 2019).
* **Panoptic quality** of a class: ``PQ = SQ x RQ``, ``SQ`` the mean IoU of the matched pairs
  (segmentation quality), ``RQ = TP / (TP + FP/2 + FN/2)`` (recognition quality, an F1 score).
  Over a dataset, a class's TP, FP, FN and IoU sum over its images; a dataset's or an image's
  PQ is the mean over the classes that have a colony there (predicted or true). A class with
  no colony on either side has no PQ (``nan``).
* **Count error** of an image (and class): ``predicted - true`` colonies; the dataset's figure
  is the mean absolute count error per image, and its relative form ``|predicted - true| /
  true`` per image.
* **Size distribution**: the two-sample Kolmogorov-Smirnov statistic ``D`` between the areas
  of predicted and true colonies of a class (0: same distribution, 1: disjoint), over all
  images; in cm² when every image has a scale, else in pixels.

Costs are proportional to the colonies' boxes, not the images.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Protocol

import numpy as np

MATCH_IOU = 0.5


class BoxMask(Protocol):
    """What the metrics read of a colony (e.g. a ``CoralInstance``)."""

    label: str
    bbox: tuple[int, int, int, int]
    mask: np.ndarray


@dataclass(frozen=True)
class ImageColonies:
    """The predicted and true colonies of one image.

    Attributes:
        name: the image's name, for tables.
        predicted, true: colonies inside their boxes (image pixel coordinates).
        pixels_per_cm: the image's scale, or None when unknown.
    """

    name: str
    predicted: Sequence[BoxMask]
    true: Sequence[BoxMask]
    pixels_per_cm: float | None = None


@dataclass
class Quality:
    """Matched pairs and misses of one class (or one image): PQ, SQ, RQ from them."""

    tp: int = 0
    fp: int = 0
    fn: int = 0
    iou_sum: float = 0.0

    def add(self, other: Quality) -> None:
        self.tp += other.tp
        self.fp += other.fp
        self.fn += other.fn
        self.iou_sum += other.iou_sum

    @property
    def sq(self) -> float:
        return self.iou_sum / self.tp if self.tp else (math.nan if self.empty else 0.0)

    @property
    def rq(self) -> float:
        denominator = self.tp + self.fp / 2 + self.fn / 2
        return self.tp / denominator if denominator else math.nan

    @property
    def pq(self) -> float:
        denominator = self.tp + self.fp / 2 + self.fn / 2
        return self.iou_sum / denominator if denominator else math.nan

    @property
    def empty(self) -> bool:
        return self.tp + self.fp + self.fn == 0


def mask_iou(a: BoxMask, b: BoxMask) -> float:
    """IoU of two box-local masks in image coordinates (cost ~ the boxes' overlap)."""
    ax, ay, aw, ah = (int(v) for v in a.bbox)
    bx, by, bw, bh = (int(v) for v in b.bbox)
    x0, y0 = max(ax, bx), max(ay, by)
    x1, y1 = min(ax + aw, bx + bw), min(ay + ah, by + bh)
    if x1 <= x0 or y1 <= y0:
        return 0.0
    window_a = np.asarray(a.mask, dtype=bool)[y0 - ay : y1 - ay, x0 - ax : x1 - ax]
    window_b = np.asarray(b.mask, dtype=bool)[y0 - by : y1 - by, x0 - bx : x1 - bx]
    intersection = int(np.count_nonzero(window_a & window_b))
    if intersection == 0:
        return 0.0
    union = int(np.count_nonzero(a.mask)) + int(np.count_nonzero(b.mask)) - intersection
    return intersection / union


def match_colonies(
    predicted: Sequence[BoxMask], true: Sequence[BoxMask], threshold: float = MATCH_IOU
) -> list[tuple[int, int, float]]:
    """One-to-one matches ``(predicted index, true index, IoU)`` of same-class colonies whose
    IoU exceeds ``threshold``, taken by decreasing IoU."""
    pairs = []
    for i, p in enumerate(predicted):
        for j, t in enumerate(true):
            if p.label == t.label:
                iou = mask_iou(p, t)
                if iou > threshold:
                    pairs.append((iou, i, j))
    pairs.sort(key=lambda pair: -pair[0])
    used_p, used_t, matches = set(), set(), []
    for iou, i, j in pairs:
        if i not in used_p and j not in used_t:
            used_p.add(i)
            used_t.add(j)
            matches.append((i, j, iou))
    return matches


def image_quality(
    predicted: Sequence[BoxMask], true: Sequence[BoxMask], threshold: float = MATCH_IOU
) -> dict[str, Quality]:
    """Class name -> :class:`Quality` of one image's colonies."""
    quality: dict[str, Quality] = {}
    for colony in (*predicted, *true):
        quality.setdefault(colony.label, Quality())
    matched_p, matched_t = set(), set()
    for i, j, iou in match_colonies(predicted, true, threshold):
        q = quality[predicted[i].label]
        q.tp += 1
        q.iou_sum += iou
        matched_p.add(i)
        matched_t.add(j)
    for i, colony in enumerate(predicted):
        if i not in matched_p:
            quality[colony.label].fp += 1
    for j, colony in enumerate(true):
        if j not in matched_t:
            quality[colony.label].fn += 1
    return quality


def ks_statistic(a: Sequence[float], b: Sequence[float]) -> float:
    """Two-sample Kolmogorov-Smirnov statistic ``max |F_a(x) - F_b(x)|`` of two samples;
    ``nan`` when either is empty."""
    a = np.sort(np.asarray(a, dtype=np.float64))
    b = np.sort(np.asarray(b, dtype=np.float64))
    if a.size == 0 or b.size == 0:
        return math.nan
    values = np.concatenate([a, b])
    cdf_a = np.searchsorted(a, values, side="right") / a.size
    cdf_b = np.searchsorted(b, values, side="right") / b.size
    return float(np.abs(cdf_a - cdf_b).max())


def _mean(values: Sequence[float]) -> float:
    kept = [v for v in values if not math.isnan(v)]
    return float(np.mean(kept)) if kept else math.nan


@dataclass(frozen=True)
class ImageColonyScores:
    """One image: PQ (mean over its classes), colony counts and their error per class."""

    name: str
    pq: float
    predicted: int
    true: int
    per_class: dict[str, Quality] = field(repr=False)
    predicted_per_class: dict[str, int] = field(repr=False)
    true_per_class: dict[str, int] = field(repr=False)

    @property
    def count_error(self) -> int:
        return self.predicted - self.true

    @property
    def relative_count_error(self) -> float:
        """``|predicted - true| / true`` (``nan`` when nothing is drawn)."""
        return abs(self.count_error) / self.true if self.true else math.nan


@dataclass(frozen=True)
class ColonyEvaluation:
    """Colony metrics of a set of images (see the module docstring).

    Attributes:
        classes: the class names, in the order given (or of first appearance).
        per_class: class -> :class:`Quality` summed over images.
        images: per-image scores, in input order.
        size_ks: class -> KS statistic of colony areas (``nan``: no colony on a side).
        area_unit: ``"cm2"`` or ``"px"``.
    """

    classes: tuple[str, ...]
    per_class: dict[str, Quality]
    images: tuple[ImageColonyScores, ...]
    size_ks: dict[str, float]
    area_unit: str

    @property
    def pq(self) -> float:
        return _mean([self.per_class[c].pq for c in self.classes])

    @property
    def sq(self) -> float:
        return _mean([self.per_class[c].sq for c in self.classes])

    @property
    def rq(self) -> float:
        return _mean([self.per_class[c].rq for c in self.classes])

    @property
    def mean_abs_count_error(self) -> float:
        """Mean over images of ``|predicted - true|`` colonies."""
        return _mean([abs(i.count_error) for i in self.images])

    @property
    def max_relative_count_error(self) -> float:
        return max((i.relative_count_error for i in self.images), default=math.nan)

    def class_count_error(self, name: str) -> float:
        """Mean over images of ``|predicted - true|`` colonies of one class."""
        return _mean(
            [
                abs(i.predicted_per_class.get(name, 0) - i.true_per_class.get(name, 0))
                for i in self.images
            ]
        )

    def rows(self) -> list[dict[str, object]]:
        """One dict per class and a last ``all`` row: ``class``, ``pq``, ``sq``, ``rq``
        (percent, 2 decimals; None = n/a), ``tp``, ``fp``, ``fn``, ``predicted``, ``true``
        (colonies), ``mean_abs_count_error`` (per image), ``size_ks``."""

        def percent(value: float) -> float | None:
            return None if math.isnan(value) else round(value * 100, 2)

        def rounded(value: float, digits: int = 3) -> float | None:
            return None if math.isnan(value) else round(value, digits)

        rows = []
        for name in self.classes:
            q = self.per_class[name]
            rows.append(
                {
                    "class": name,
                    "pq": percent(q.pq),
                    "sq": percent(q.sq),
                    "rq": percent(q.rq),
                    "tp": q.tp,
                    "fp": q.fp,
                    "fn": q.fn,
                    "predicted": q.tp + q.fp,
                    "true": q.tp + q.fn,
                    "mean_abs_count_error": rounded(self.class_count_error(name), 2),
                    "size_ks": rounded(self.size_ks.get(name, math.nan)),
                }
            )
        total = Quality()
        for name in self.classes:
            total.add(self.per_class[name])
        rows.append(
            {
                "class": "all",
                "pq": percent(self.pq),
                "sq": percent(self.sq),
                "rq": percent(self.rq),
                "tp": total.tp,
                "fp": total.fp,
                "fn": total.fn,
                "predicted": total.tp + total.fp,
                "true": total.tp + total.fn,
                "mean_abs_count_error": rounded(self.mean_abs_count_error, 2),
                "size_ks": rounded(_mean(list(self.size_ks.values()))),
            }
        )
        return rows

    def to_dict(self) -> dict[str, object]:
        """JSON-ready: the class rows and each image's counts and PQ."""
        return {
            "area_unit": self.area_unit,
            "per_class": self.rows(),
            "per_image": [
                {
                    "image": i.name,
                    "predicted": i.predicted,
                    "true": i.true,
                    "count_error": i.count_error,
                    "pq": None if math.isnan(i.pq) else round(i.pq * 100, 2),
                }
                for i in self.images
            ],
        }

    def format_table(self) -> str:
        """A plain-text table of :meth:`rows` (PQ/SQ/RQ in percent)."""
        header = ("Class", "PQ", "SQ", "RQ", "pred", "true", "|count err|", f"KS({self.area_unit})")
        lines = []
        for row in self.rows():
            cells = (
                str(row["class"]),
                *(_cell(row[k]) for k in ("pq", "sq", "rq")),
                str(row["predicted"]),
                str(row["true"]),
                _cell(row["mean_abs_count_error"]),
                _cell(row["size_ks"]),
            )
            lines.append(cells)
        widths = [max(len(h), *(len(line[i]) for line in lines)) for i, h in enumerate(header)]
        rule = "+" + "+".join("-" * (w + 2) for w in widths) + "+"

        def render(cells) -> str:
            return "| " + " | ".join(c.rjust(w) for c, w in zip(cells, widths, strict=True)) + " |"

        return "\n".join([rule, render(header), rule, *(render(line) for line in lines), rule])

    def summary_line(self) -> str:
        """One line: PQ, SQ, RQ, mean absolute count error per image, colonies on each side."""
        predicted = sum(i.predicted for i in self.images)
        true = sum(i.true for i in self.images)
        return (
            f"colony PQ {_cell(_percent(self.pq))} (SQ {_cell(_percent(self.sq))}, RQ "
            f"{_cell(_percent(self.rq))}); {predicted} colonies predicted, {true} drawn; count "
            f"error {_cell(self.mean_abs_count_error, 2)} colonies per image on average"
        )


def _percent(value: float) -> float:
    return value * 100


def _cell(value: float | None, digits: int = 2) -> str:
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return "n/a"
    return f"{value:.{digits}f}"


def evaluate_colonies(
    images: Sequence[ImageColonies],
    classes: Sequence[str] = (),
    threshold: float = MATCH_IOU,
) -> ColonyEvaluation:
    """Colony metrics of predicted against true colonies (see the module docstring).

    Args:
        images: each image's predicted and true colonies.
        classes: the colony classes, for the order of tables; classes met in ``images`` and
            not listed are appended in order of appearance.
        threshold: the IoU above which two colonies match.
    """
    if not 0 <= threshold < 1:
        raise ValueError(f"the matching IoU must be in [0, 1), got {threshold}")
    names = list(dict.fromkeys(classes))
    per_class: dict[str, Quality] = {}
    scored = []
    scaled = bool(images) and all(i.pixels_per_cm for i in images)
    areas: dict[str, tuple[list[float], list[float]]] = {}
    for image in images:
        quality = image_quality(image.predicted, image.true, threshold)
        for name, q in quality.items():
            if name not in names:
                names.append(name)
            per_class.setdefault(name, Quality()).add(q)
        predicted_counts: dict[str, int] = {}
        true_counts: dict[str, int] = {}
        for side, colonies, counts in (
            (0, image.predicted, predicted_counts),
            (1, image.true, true_counts),
        ):
            for colony in colonies:
                counts[colony.label] = counts.get(colony.label, 0) + 1
                area = float(np.count_nonzero(colony.mask))
                if scaled:
                    area /= image.pixels_per_cm**2
                areas.setdefault(colony.label, ([], []))[side].append(area)
        scored.append(
            ImageColonyScores(
                name=image.name,
                pq=_mean([q.pq for q in quality.values()]),
                predicted=len(image.predicted),
                true=len(image.true),
                per_class=quality,
                predicted_per_class=predicted_counts,
                true_per_class=true_counts,
            )
        )
    for name in names:
        per_class.setdefault(name, Quality())
    size_ks = {name: ks_statistic(*areas.get(name, ([], []))) for name in names}
    return ColonyEvaluation(
        classes=tuple(names),
        per_class=per_class,
        images=tuple(scored),
        size_ks=size_ks,
        area_unit="cm2" if scaled else "px",
    )
