"""Predicted colonies against annotated ones, over the images two mask sources share.

Colony PQ, count error and size KS (:mod:`coral_core.evaluation.colony_metrics`) of the predicted
colonies (a ``coralseg infer`` output's instance records, else the connected regions of its
masks) against the annotated ones (drawn polygons where given, else the connected regions
of the annotated masks), and the same for colonies taken as the connected regions of the
predicted masks (what the instance stage buys). Measured over whole images (no region of
interest); areas in cm² where every image has a scale.
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path

import numpy as np

from coral_core.ecology.colonies import component_instances
from coral_core.ecology.drawn_colonies import DrawnImage, drawn_colonies
from coral_core.ecology.sources import MaskItem, MaskSource, item_instances
from coral_core.ecology.tables import write_csv
from coral_core.errors import CoralsegError
from coral_core.evaluation.colony_metrics import ColonyEvaluation, ImageColonies, evaluate_colonies
from coral_core.formats.label_rasters import read_label_mask
from coral_core.inference.instances import CoralInstance

PER_CLASS_CSV = "colony_metrics_per_class.csv"
PER_IMAGE_CSV = "colony_metrics_per_image.csv"


def _predicted_instances(
    item: MaskItem, source: MaskSource, mask: np.ndarray
) -> list[CoralInstance]:
    legend = source.legend
    if item.record is None:
        return component_instances(mask, {v: legend.name_of(v) for v in legend.colony_values})
    colony_values = set(legend.colony_values)
    return [c for c in item_instances(item) if c.value in colony_values]


def compare_colonies(
    annotated: MaskSource,
    predicted: MaskSource,
    polygons: Mapping[str, DrawnImage] | None = None,
    pixels_per_cm: Mapping[str, float] | None = None,
) -> tuple[ColonyEvaluation, ColonyEvaluation]:
    """Colony metrics of the predictions of the images both sources have: of the predicted
    colonies, and of the connected regions of the predicted masks (the ablation).

    Raises:
        CoralsegError: a predicted mask is not the size of its annotated one.
    """
    legend = annotated.legend
    predictions = {item.name: item for item in predicted.items}
    colonies, regions = [], []
    for item in annotated.items:
        guess = predictions.get(item.name)
        if guess is None:
            continue
        truth_mask, _ = read_label_mask(item.path)
        if polygons is not None and item.name in polygons:
            truth = drawn_colonies(polygons[item.name], truth_mask.shape, legend)
        else:
            truth = component_instances(
                truth_mask, {v: legend.name_of(v) for v in legend.colony_values}
            )
        predicted_mask, _ = read_label_mask(guess.path)
        if predicted_mask.shape != truth_mask.shape:
            raise CoralsegError(
                f"{item.name}: the predicted mask is {predicted_mask.shape[1]}x"
                f"{predicted_mask.shape[0]} px, the annotated one {truth_mask.shape[1]}x"
                f"{truth_mask.shape[0]}; compare predictions made at the annotations' size"
            )
        scale = (pixels_per_cm or {}).get(item.name)
        instances = _predicted_instances(guess, predicted, predicted_mask)
        colonies.append(ImageColonies(item.name, instances, truth, scale))
        names = {v: predicted.legend.name_of(v) for v in predicted.legend.colony_values}
        regions.append(
            ImageColonies(item.name, component_instances(predicted_mask, names), truth, scale)
        )
    classes = [legend.name_of(v) for v in legend.colony_values]
    return evaluate_colonies(colonies, classes), evaluate_colonies(regions, classes)


def write_colony_metrics(
    out: Path, colonies: ColonyEvaluation, regions: ColonyEvaluation
) -> list[Path]:
    """``colony_metrics_per_class.csv`` (one row per class and ``all``, for the predicted
    colonies and, ``colonies_from`` = ``regions``, for connected regions of the predicted
    masks) and ``colony_metrics_per_image.csv``."""
    rows = [{"colonies_from": "instances", **row} for row in colonies.rows()]
    rows += [{"colonies_from": "regions", **row} for row in regions.rows()]
    images = colonies.to_dict()["per_image"]
    return [write_csv(out / PER_CLASS_CSV, rows), write_csv(out / PER_IMAGE_CSV, images)]


def comparison_lines(colonies: ColonyEvaluation, regions: ColonyEvaluation) -> list[str]:
    """Two lines for a terminal: the colony metrics of both ways of finding colonies."""
    return [
        f"  colonies vs the annotations: {colonies.summary_line()}",
        f"  (connected regions of the predicted masks instead: {regions.summary_line()})",
    ]
