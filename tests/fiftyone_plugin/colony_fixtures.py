"""A reef dataset with predicted colonies whose scores are known: the colony evaluation tests
(test_colonies.py) and the App's Model Evaluation panel (test_app_colony_panel.py) read it."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from coral_core.ecology.colonies import annotated_colonies
from coral_core.inference.instances import CoralInstance
from coral_core.labels.rasterize import LabeledPolyline, polyline_regions
from fiftyone_plugin.prediction import to_detection
from tests.fiftyone_plugin.conftest import COLORS, SIZE, make_reef

PREDICTED_FIELD = "coralseg_colonies"


def drawn(sample, size: int = SIZE) -> list[CoralInstance]:
    """The annotated colonies of a reef sample, by the documented rule (one per polygon)."""
    polylines = [
        LabeledPolyline(p.label, tuple(np.asarray(ring) for ring in p.points))
        for p in sample["gt_polylines"].polylines
    ]
    values = {label: index + 1 for index, label in enumerate(COLORS)}
    regions, _ = polyline_regions(polylines, size, size, values)
    return annotated_colonies(regions)


def square(label: str, x: int, y: int) -> CoralInstance:
    """A 4 x 4 colony at ``(x, y)``, score 0.3."""
    return CoralInstance(label, 0, 0.3, (x, y, 4, 4), np.ones((4, 4), bool), 16)


def reef_with_colony_guesses(fo, folder: Path):
    """A two-image reef (:func:`make_reef`) whose ``coralseg_colonies`` are every drawn colony
    but the Acropora one, plus two false Montipora squares in free corners per image: per
    image Porites PQ 1, Acropora 0, Montipora 1 TP and 2 FP, so the mAP lies strictly
    between 0 and 1. The caller deletes it."""
    dataset = make_reef(fo, folder, count=2)
    guesses = []
    for sample in dataset:
        kept = [c for c in drawn(sample) if c.label != "Acropora"]
        kept += [square("Montipora", 0, 0), square("Montipora", SIZE - 4, SIZE - 4)]
        guesses.append(fo.Detections(detections=[to_detection(c, SIZE, SIZE) for c in kept]))
    dataset.set_values(PREDICTED_FIELD, guesses)
    return dataset
