"""``coralseg cover``'s colonies as drawn, and ``--compare``'s colony metrics.

* ``--annotations FILE`` (a CVAT for images 1.1 XML or COCO instances JSON of the annotated
  images): the annotated colonies are its polygons, one colony per polygon
  (:func:`coral_core.ecology.colonies.annotated_colonies`; where polygons overlap, the
  smaller one is on top, as ``coralseg prepare`` rasterizes them), not the connected regions
  of the masks, which merge touching colonies of one genus and split a colony cut by another.
  Images are matched by name without extension (folders joined by ``__``).
* ``--compare PRED_DIR``: colony PQ, count error and size KS
  (:mod:`coral_core.evaluation.colony_metrics`) of the predicted colonies (a ``coralseg infer``
  output's instance records, else the connected regions of its masks) against the annotated ones,
  and the same for colonies taken as the connected regions of the predicted masks (what the
  instance stage buys). Measured over whole images (the region of interest does not apply);
  areas in cm² where every image has a scale.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from coral_core.ecology.colonies import annotated_colonies, component_instances
from coral_core.ecology.legend import ClassLegend
from coral_core.ecology.tables import write_csv
from coral_core.errors import CoralsegError
from coral_core.evaluation.colony_metrics import ColonyEvaluation, ImageColonies, evaluate_colonies
from coral_core.inference.instances import CoralInstance
from coral_core.labels.rasterize import LabeledPolyline, polyline_regions
from coralseg.cover_inputs import CoverSource, read_instances, read_mask


@dataclass(frozen=True)
class DrawnImage:
    """One annotated image's polygons, in coordinates normalised by its size."""

    polylines: tuple[LabeledPolyline, ...]


def read_polygons(path: str | Path) -> dict[str, DrawnImage]:
    """Image name (without extension, folders joined by ``__``) -> its polygons.

    Raises:
        CoralsegError: the file is missing or not an annotation file coralseg reads.
    """
    from coral_core.formats.annotations import read_annotations, shape_polylines

    annotations = read_annotations(path)
    drawn = {}
    for image in annotations.images:
        polylines = []
        for shape in image.shapes:
            for spec in shape_polylines(shape, image.width, image.height):
                rings = tuple(np.asarray(ring, dtype=np.float64) for ring in spec.points)
                polylines.append(LabeledPolyline(spec.label, rings, spec.closed))
        name = str(Path(image.name).with_suffix("")).replace("/", "__").replace("\\", "__")
        drawn[name] = DrawnImage(tuple(polylines))
    if not drawn:
        raise CoralsegError(f"{path} annotates no image")
    return drawn


def drawn_colonies(drawn: DrawnImage, shape: tuple[int, int], legend: ClassLegend) -> list:
    """The annotated colonies of one image at its mask's size, as colony-class instances
    (labels that are not colony classes of the legend make no colony)."""
    values = {legend.name_of(v): v for v in legend.colony_values}
    kept = [p for p in drawn.polylines if p.label in values]
    regions, _ = polyline_regions(kept, *shape, values)
    return annotated_colonies(regions)


def _predicted_instances(item, source: CoverSource, mask: np.ndarray) -> list[CoralInstance]:
    legend = source.legend
    if item.record is None:
        return component_instances(mask, {v: legend.name_of(v) for v in legend.colony_values})
    colony_values = set(legend.colony_values)
    return [c for c in read_instances(item) if c.value in colony_values]


def compare_colonies(
    annotated: CoverSource,
    predicted: CoverSource,
    polygons: Mapping[str, DrawnImage] | None = None,
    pixels_per_cm: Mapping[str, float] | None = None,
) -> tuple[ColonyEvaluation, ColonyEvaluation]:
    """Colony metrics of the predictions of the images both sources have: of the predicted
    colonies, and of the connected regions of the predicted masks (the ablation)."""
    legend = annotated.legend
    predictions = {item.name: item for item in predicted.items}
    colonies, regions = [], []
    for item in annotated.items:
        guess = predictions.get(item.name)
        if guess is None:
            continue
        truth_mask, _ = read_mask(item.path)
        if polygons is not None and item.name in polygons:
            truth = drawn_colonies(polygons[item.name], truth_mask.shape, legend)
        else:
            truth = component_instances(
                truth_mask, {v: legend.name_of(v) for v in legend.colony_values}
            )
        predicted_mask, _ = read_mask(guess.path)
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
    return [
        write_csv(out / "colony_metrics_per_class.csv", rows),
        write_csv(out / "colony_metrics_per_image.csv", images),
    ]


def summary_lines(colonies: ColonyEvaluation, regions: ColonyEvaluation) -> list[str]:
    """Printed by ``coralseg cover --compare``."""
    return [
        f"  colonies vs the annotations: {colonies.summary_line()}",
        f"  (connected regions of the predicted masks instead: {regions.summary_line()})",
    ]


def without_polygons(polygons: Mapping[str, DrawnImage], names: Sequence[str]) -> list[str]:
    """The image names that have no polygons in the annotation file."""
    return [name for name in names if name not in polygons]
