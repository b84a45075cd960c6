"""How far predicted cover is from annotated cover: errors in percentage points.

For each image present in both tables (and annotated in both) and each class:
``error = predicted cover - annotated cover`` in percentage points (pp), and its absolute
value. Classes are matched by name; a class only one side has counts as 0% on the other.

Summaries:

* per class, over images: ``mean_abs_error_pp`` (the figure to quote: how wrong one
  quadrat's cover is on average), ``mean_error_pp`` (bias: positive = over-predicted) and
  ``rmse_pp``; the row ``"all classes"`` averages over every image and class;
* per group and class: the mean annotated and mean predicted cover over the group's images,
  ``error_of_means_pp`` (how wrong the group's reported mean cover is; per-image errors of
  opposite sign cancel in it) and ``mean_abs_error_pp`` over its images.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass

import numpy as np

from coral_core.ecology.cover import CoverTable
from coral_core.ecology.groups import Grouping
from coral_core.ecology.tables import csv_number

ALL_CLASSES = "all classes"


@dataclass(frozen=True, eq=False)
class CoverAgreement:
    """Annotated and predicted cover of the same images.

    Attributes:
        images: images annotated in both, the annotated table's order.
        classes: the union of both tables' classes (annotated order first).
        annotated, predicted: ``(I, C)`` float64 percent cover.
        only_annotated, only_predicted: image names one side lacks (or has nothing
            annotated in), left out.
    """

    images: tuple[str, ...]
    classes: tuple[str, ...]
    annotated: np.ndarray
    predicted: np.ndarray
    only_annotated: tuple[str, ...] = ()
    only_predicted: tuple[str, ...] = ()

    @property
    def error(self) -> np.ndarray:
        """``(I, C)`` predicted minus annotated cover, percentage points."""
        return self.predicted - self.annotated

    def mean_abs_error(self) -> np.ndarray:
        """``(C,)`` mean absolute error per class over images, pp (NaN without images)."""
        if not self.images:
            return np.full(len(self.classes), np.nan)
        return np.abs(self.error).mean(axis=0)

    def image_rows(
        self,
        fields: Mapping[str, Mapping[str, str]] | None = None,
        field_names: Sequence[str] = (),
    ) -> list[dict[str, object]]:
        """One row per image and class: ``image``, group fields, ``class``,
        ``annotated_cover_percent``, ``predicted_cover_percent``, ``error_pp``,
        ``abs_error_pp``."""
        error = self.error
        out = []
        for i, image in enumerate(self.images):
            image_fields = (fields or {}).get(image, {})
            for c, name in enumerate(self.classes):
                row: dict[str, object] = {"image": image}
                row.update({f: image_fields.get(f, "") for f in field_names})
                row |= {
                    "class": name,
                    "annotated_cover_percent": float(self.annotated[i, c]),
                    "predicted_cover_percent": float(self.predicted[i, c]),
                    "error_pp": float(error[i, c]),
                    "abs_error_pp": float(abs(error[i, c])),
                }
                out.append(row)
        return out

    def class_rows(self) -> list[dict[str, object]]:
        """One row per class and an ``"all classes"`` row: ``class``, ``n_images``,
        ``mean_annotated_cover_percent``, ``mean_predicted_cover_percent``,
        ``mean_error_pp``, ``mean_abs_error_pp``, ``rmse_pp``."""
        error = self.error
        n = len(self.images)
        out = []
        columns = [(name, np.s_[:, c]) for c, name in enumerate(self.classes)]
        for name, part in [*columns, (ALL_CLASSES, np.s_[:, :])]:
            values = error[part]
            out.append(
                {
                    "class": name,
                    "n_images": n,
                    "mean_annotated_cover_percent": _mean(self.annotated[part]),
                    "mean_predicted_cover_percent": _mean(self.predicted[part]),
                    "mean_error_pp": _mean(values),
                    "mean_abs_error_pp": _mean(np.abs(values)),
                    "rmse_pp": csv_number(float(np.sqrt((values**2).mean())) if n else None),
                }
            )
        return out

    def group_rows(self, grouping: Grouping) -> list[dict[str, object]]:
        """One row per group and class: ``group``, group fields, ``class``, ``n_images``,
        ``annotated_mean_cover_percent``, ``predicted_mean_cover_percent``,
        ``error_of_means_pp``, ``mean_abs_error_pp``.

        ``grouping`` must group :attr:`images` (same order)."""
        if len(grouping.index) != len(self.images):
            raise ValueError(
                f"the grouping has {len(grouping.index)} images, the agreement {len(self.images)}"
            )
        out = []
        for g in range(len(grouping.keys)):
            members = grouping.index == g
            n = int(members.sum())
            for c, name in enumerate(self.classes):
                annotated = self.annotated[members, c]
                predicted = self.predicted[members, c]
                out.append(
                    grouping.key_columns(g)
                    | {
                        "class": name,
                        "n_images": n,
                        "annotated_mean_cover_percent": _mean(annotated),
                        "predicted_mean_cover_percent": _mean(predicted),
                        "error_of_means_pp": csv_number(
                            float(predicted.mean() - annotated.mean()) if n else None
                        ),
                        "mean_abs_error_pp": _mean(np.abs(predicted - annotated)),
                    }
                )
        return out


def _mean(values: np.ndarray) -> float | str:
    return csv_number(float(values.mean()) if values.size else None)


def cover_agreement(annotated: CoverTable, predicted: CoverTable) -> CoverAgreement:
    """Match two cover tables by image name and class name.

    Images annotated in one table only, or with no annotated pixel on either side, are
    left out and listed.
    """
    classes = tuple(annotated.classes) + tuple(
        c for c in predicted.classes if c not in annotated.classes
    )
    a_table = annotated.with_classes(classes)
    p_table = predicted.with_classes(classes)
    a_has = {n for n, px in zip(a_table.images, a_table.annotated_pixels, strict=True) if px > 0}
    p_has = {n for n, px in zip(p_table.images, p_table.annotated_pixels, strict=True) if px > 0}
    both = [n for n in a_table.images if n in a_has and n in p_has]
    a = a_table.subset(both).cover_percent
    p = p_table.subset(both).cover_percent
    return CoverAgreement(
        images=tuple(both),
        classes=classes,
        annotated=a.reshape(len(both), len(classes)),
        predicted=p.reshape(len(both), len(classes)),
        only_annotated=tuple(n for n in a_table.images if n not in both),
        only_predicted=tuple(n for n in p_table.images if n not in both),
    )
