"""Evaluate a trained model on FiftyOne samples, as a FiftyOne evaluation with IoU fields.

:func:`evaluate_samples` is what the ``evaluate_model`` operator calls; it is two steps that
can also run apart, so that maps computed elsewhere (``coralseg demo``'s two-stage pass) are
evaluated without predicting them again:

1. :func:`predict_semantic`: the model's semantic masks go into ``pred_field``
   (``fo.Segmentation``, PNGs on disk, ``mask_targets`` = the checkpoint's taxonomy,
   colours = its palette), written by :func:`store_semantic_maps`, which also stores maps
   predicted by other means;
2. :func:`evaluate_predictions`: a ground-truth polylines field is rasterized with the same
   encoding (:mod:`coral_core.labels.rasterize`) into ``<gt_field>_mask``, the size of each stored
   map; a ground-truth ``fo.Segmentation`` field is used as it is;
3. FiftyOne's own segmentation evaluation runs under ``eval_key``, so the App's Model
   Evaluation panel shows it with its confusion matrix;
4. ``<eval_key>_miou`` and ``<eval_key>_iou_<class>`` per sample (:mod:`.iou_fields`), through
   the plugin's ``segmentation_iou`` evaluation metric when FiftyOne has the plugin, so that
   ``dataset.delete_evaluation(eval_key)`` removes them;
5. the dataset-level per-class IoU / Acc come back in :class:`EvaluationSummary`, with the
   colony evaluation (:func:`evaluate_colonies`) when the samples have predicted colonies.

The semantic masks are those ``coralseg infer`` and the predict operator compute (same
sliding windows, :data:`coral_core.inference.pipeline.DEFAULT_OVERLAP`).

:func:`evaluate_colonies` judges predicted colonies (the predict operator's ``fo.Detections``
with masks) against the annotated polygons: FiftyOne's own detection evaluation with masks
(mAP, PR curves, confusion matrix in the App's Model Evaluation panel) and the colony metrics
ecologists read (:mod:`coral_core.evaluation.colony_metrics`: panoptic quality, count error, size
distribution), with an ablation against colonies taken as connected regions of the semantic
maps.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from coral_core.ecology.colonies import annotated_colonies, component_instances
from coral_core.ecology.cover import value_counts
from coral_core.errors import CoralsegError
from coral_core.evaluation.colony_metrics import ColonyEvaluation, ImageColonies
from coral_core.evaluation.colony_metrics import evaluate_colonies as colony_metrics
from coral_core.evaluation.metrics import SegmentationScores, scores_from_confusion
from coral_core.formats.raster_io import open_image
from coral_core.labels.rasterize import polyline_regions, rasterize_polylines
from coral_core.labels.taxonomy import IGNORE_INDEX, MaskEncoding

from .fiftyone_source import labeled_polylines
from .iou_fields import (
    IOU_METRIC_NAME,
    class_iou_field,
    iou_fields,
    miou_field,
    write_iou_fields,
)
from .masks import (
    default_mask_root,
    field_encoding,
    mask_targets,
    read_mask,
    set_segmentation_targets,
    write_mask,
)
from .models import semantic_model
from .prediction import (
    DEFAULT_INSTANCES_FIELD,
    DEFAULT_SEMANTIC_FIELD,
    from_detection,
    to_detection,
)

DEFAULT_GT_FIELD = "gt_polylines"
DEFAULT_PRED_FIELD = "coralseg_semantic"
DEFAULT_EVAL_KEY = "coralseg_eval"
PLUGIN_NAME = "@coralseg/coralseg"

Progress = Callable[[float, str], Any]


@dataclass(frozen=True)
class EvaluationSummary:
    """What :func:`evaluate_samples` did.

    Attributes:
        eval_key: the FiftyOne evaluation key.
        pred_field, gt_field: the compared ``fo.Segmentation`` fields.
        samples: how many samples were evaluated.
        scores: dataset-level scores (per-class IoU, Acc, ...; fractions in [0, 1]).
        miou_field: per-sample mIoU field; ``class_fields``: class name -> per-sample IoU field.
        cover_error: class name -> mean over images of |predicted - annotated| percent cover
            (percentage points, cover over each image's annotated pixels), the accuracy
            figure ecologists read beside IoU.
        colonies: the colony evaluation (:func:`evaluate_colonies`) when every evaluated
            sample has predicted colonies, else None.
    """

    eval_key: str
    pred_field: str
    gt_field: str
    samples: int
    scores: SegmentationScores
    miou_field: str
    class_fields: dict[str, str]
    cover_error: dict[str, float]
    colonies: ColonySummary | None = None

    def rows(self) -> list[dict[str, Any]]:
        """One dict per class: ``class``, ``iou``, ``acc`` (percent, 2 decimals, None = n/a)
        and ``cover_error`` (percentage points)."""

        def percent(value: float) -> float | None:
            return None if np.isnan(value) else round(float(value) * 100, 2)

        return [
            {
                "class": name,
                "iou": percent(self.scores.iou[i]),
                "acc": percent(self.scores.acc[i]),
                "cover_error": self.cover_error.get(name),
            }
            for i, name in enumerate(self.scores.class_names)
        ]

    def format_table(self) -> str:
        return self.scores.format_table()


def _schema_type(samples, field: str):
    field_obj = samples.get_field_schema(flat=True).get(field)
    return getattr(field_obj, "document_type", None) if field_obj is not None else None


def check_gt_field(samples, gt_field: str) -> str:
    """``"polylines"`` or ``"segmentation"``: the kind of ground-truth field, else an error."""
    import fiftyone as fo

    kind = _schema_type(samples, gt_field)
    if kind is fo.Polylines:
        return "polylines"
    if kind is fo.Segmentation:
        return "segmentation"
    usable = sorted(
        name
        for name, f in samples.get_field_schema(flat=True).items()
        if getattr(f, "document_type", None) in (fo.Polylines, fo.Segmentation)
    )
    raise CoralsegError(
        f"ground truth {gt_field!r} is not a polylines or segmentation field of this dataset "
        f"(usable fields: {', '.join(usable) or 'none'})"
    )


def check_gt_labels(samples, gt_field: str, encoding) -> None:
    """Raise when ground-truth polylines carry labels the model's taxonomy does not know."""
    labels = samples.distinct(f"{gt_field}.polylines.label")
    _, unknown = encoding.value_lookup(labels)
    if unknown:
        raise CoralsegError(
            f"labels in {gt_field!r} that the model's taxonomy "
            f"({encoding.taxonomy.name}) does not know: {', '.join(unknown)}; evaluate a "
            "model trained on this taxonomy, or map the labels when preparing the data"
        )


def iou_metric_available() -> bool:
    """Whether FiftyOne has this plugin's ``segmentation_iou`` metric registered."""
    import fiftyone.operators as foo

    try:
        foo.get_operator(f"{PLUGIN_NAME}/{IOU_METRIC_NAME}")
    except ValueError:
        return False
    return True


def evaluate_samples(
    samples,
    config: str | Path,
    checkpoint: str | Path,
    *,
    gt_field: str = DEFAULT_GT_FIELD,
    pred_field: str = DEFAULT_PRED_FIELD,
    eval_key: str = DEFAULT_EVAL_KEY,
    mask_dir: str | Path | None = None,
    device: str = "cpu",
    progress: Progress | None = None,
) -> EvaluationSummary:
    """Predict, store and evaluate (see the module docstring): :func:`predict_semantic`, then
    :func:`evaluate_predictions`.

    Args:
        samples: a FiftyOne dataset or view (e.g. ``dataset.match_tags("test")``).
        config, checkpoint: the model (``coralseg train``'s config and a checkpoint of it).
        gt_field: ground truth, an ``fo.Polylines`` field (e.g. ``gt_polylines`` from
            ``coralseg pull-cvat``) or an ``fo.Segmentation`` field in the model's encoding.
        pred_field: where the predicted ``fo.Segmentation`` goes (replaced if there).
        eval_key: the evaluation's key; an existing evaluation of that key is replaced.
        mask_dir: folder for the mask PNGs (default: :func:`.masks.default_mask_root`).
        device: ``cpu`` or ``cuda``.
        progress: called with (fraction done, label).

    Raises:
        CoralsegError: a bad model file, a missing ground-truth field, labels the model's
            taxonomy does not know, or an unreadable image.
    """
    report = progress or (lambda fraction, label: None)
    check_gt_field(samples, gt_field)  # before loading the model: the cheap mistake first
    # refused before any prediction is written; the model is loaded once (models' cache)
    check_evaluable(samples, gt_field, semantic_model(config, checkpoint, device).encoding)
    predict_semantic(
        samples,
        config,
        checkpoint,
        pred_field=pred_field,
        mask_dir=mask_dir,
        device=device,
        progress=lambda fraction, label: report(fraction * 0.8, label),
    )
    return evaluate_predictions(
        samples,
        gt_field=gt_field,
        pred_field=pred_field,
        eval_key=eval_key,
        mask_dir=mask_dir,
        progress=lambda fraction, label: report(0.8 + fraction * 0.2, label),
    )


def check_evaluable(samples, gt_field: str, encoding: MaskEncoding) -> str:
    """The kind of ground truth (:func:`check_gt_field`) when ``samples`` can be evaluated in
    ``encoding``: some samples, and no polyline label the encoding does not know."""
    gt_kind = check_gt_field(samples, gt_field)
    if gt_kind == "polylines":
        check_gt_labels(samples, gt_field, encoding)
    if len(samples) == 0:
        raise CoralsegError("there are no samples to evaluate")
    return gt_kind


def predict_semantic(
    samples,
    config: str | Path,
    checkpoint: str | Path,
    *,
    pred_field: str = DEFAULT_PRED_FIELD,
    mask_dir: str | Path | None = None,
    device: str = "cpu",
    progress: Progress | None = None,
) -> MaskEncoding:
    """The model's semantic map of each sample into ``pred_field`` (:func:`store_semantic_maps`),
    with the windows ``coralseg infer`` and the predict operator use
    (:data:`coral_core.inference.pipeline.DEFAULT_OVERLAP`); returns the model's encoding.

    Raises:
        CoralsegError: a bad model file or an unreadable image.
    """
    from coral_core.inference.pipeline import DEFAULT_OVERLAP
    from coral_core.inference.semantic import predict, with_overlap

    report = progress or (lambda fraction, label: None)
    model = with_overlap(semantic_model(config, checkpoint, device), DEFAULT_OVERLAP)
    ids, paths = samples.values(["id", "filepath"])

    def maps():
        for index, (sample_id, path) in enumerate(zip(ids, paths, strict=True)):
            report(index / len(ids), f"predicting image {index + 1}/{len(ids)}")
            yield sample_id, predict(model, open_image(path).read()).labels

    store_semantic_maps(samples, maps(), model.encoding, pred_field, mask_dir)
    report(1.0, f"predicted {len(ids)} image(s)")
    return model.encoding


def store_semantic_maps(
    samples,
    maps: Iterable[tuple[str, np.ndarray]],
    encoding: MaskEncoding,
    field: str,
    mask_dir: str | Path | None = None,
) -> None:
    """Each ``(sample id, (H, W) uint8 label map in encoding)`` of ``samples`` as a mask PNG
    in ``field`` (``fo.Segmentation``, replaced if there), named and coloured by
    ``encoding``; the maps are written one at a time as they come."""
    import fiftyone as fo

    dataset = samples._dataset
    folder = (Path(mask_dir) if mask_dir else default_mask_root(dataset)) / field
    stored = {
        sample_id: fo.Segmentation(mask_path=write_mask(folder, sample_id, labels))
        for sample_id, labels in maps
    }
    dataset.set_values(field, stored, key_field="id")
    set_segmentation_targets(dataset, [field], encoding)


def evaluate_predictions(
    samples,
    *,
    gt_field: str = DEFAULT_GT_FIELD,
    pred_field: str = DEFAULT_PRED_FIELD,
    eval_key: str = DEFAULT_EVAL_KEY,
    mask_dir: str | Path | None = None,
    colonies_field: str | None = DEFAULT_INSTANCES_FIELD,
    progress: Progress | None = None,
) -> EvaluationSummary:
    """Evaluate the semantic maps stored in ``pred_field`` (:func:`predict_semantic`,
    :func:`store_semantic_maps`) against ``gt_field``: steps 2 to 5 of the module docstring.

    Args:
        colonies_field: predicted colonies judged as well (:func:`evaluate_colonies`) when
            every sample has them; None: never.
        gt_field, pred_field, eval_key, mask_dir, progress: as :func:`evaluate_samples`.

    Raises:
        CoralsegError: a sample without a stored map, a missing ground-truth field or labels
            the maps' taxonomy does not know.
    """
    report = progress or (lambda fraction, label: None)
    dataset = samples._dataset
    encoding = field_encoding(dataset, pred_field)
    if encoding is None:
        raise CoralsegError(
            f"{pred_field!r} holds no semantic maps coralseg predicted; predict them first "
            "(the evaluate_model operator does both)"
        )
    gt_kind = check_evaluable(samples, gt_field, encoding)
    unpredicted = samples.exists(pred_field, False)
    if len(unpredicted):
        raise CoralsegError(
            f"{len(unpredicted)} of the {len(samples)} samples have no semantic map in "
            f"{pred_field!r}; predict them first (the evaluate_model operator does both)"
        )
    gt_mask_field = gt_field
    cover_errors: list[np.ndarray | None] = []
    if gt_kind == "polylines":
        gt_mask_field = f"{gt_field}_mask"
        cover_errors = _rasterize_ground_truth(
            samples, gt_field, pred_field, gt_mask_field, encoding, mask_dir, report
        )
    set_segmentation_targets(dataset, [gt_mask_field], encoding)

    report(0.5, "FiftyOne segmentation evaluation")
    if eval_key in dataset.list_evaluations():
        dataset.delete_evaluation(eval_key)
    targets = mask_targets(encoding)
    with_metric = iou_metric_available()
    results = samples.evaluate_segmentations(
        pred_field,
        gt_field=gt_mask_field,
        eval_key=eval_key,
        mask_targets=targets,
        custom_metrics=[f"{PLUGIN_NAME}/{IOU_METRIC_NAME}"] if with_metric else None,
        progress=False,
    )
    if not with_metric:
        write_iou_fields(samples, eval_key, pred_field, gt_mask_field, targets)
        samples._add_paths_to_sidebar_group(iou_fields(samples, eval_key), eval_key)
    names = [targets[v] for v in sorted(targets)]
    scores = scores_from_confusion(np.asarray(results.pixel_confusion_matrix, np.int64), names)
    colonies = None
    if gt_kind == "polylines" and colonies_field and _has_colonies(samples, colonies_field):
        report(0.75, "colony evaluation")
        colonies = evaluate_colonies(
            samples, pred_field=colonies_field, gt_field=gt_field, eval_key=eval_key
        )
    report(1.0, f"mIoU {scores.miou * 100:.2f}")
    return EvaluationSummary(
        eval_key=eval_key,
        pred_field=pred_field,
        gt_field=gt_mask_field,
        samples=len(samples),
        scores=scores,
        miou_field=miou_field(eval_key),
        class_fields={name: class_iou_field(eval_key, name) for name in names},
        cover_error=_mean_cover_error(cover_errors, encoding.label_names),
        colonies=colonies,
    )


def _rasterize_ground_truth(
    samples, gt_field, pred_field, gt_mask_field, encoding, mask_dir, report
) -> list[np.ndarray | None]:
    """The polygons of ``gt_field`` as masks in ``gt_mask_field``, each the size of the
    sample's stored map; returns each image's cover error (:func:`_cover_error`)."""
    import fiftyone as fo

    ids, predicted = samples.values(["id", f"{pred_field}.mask_path"])
    polylines = labeled_polylines(samples, gt_field)
    values, _ = encoding.value_lookup({p.label for sample in polylines for p in sample})
    folder = (Path(mask_dir) if mask_dir else default_mask_root(samples._dataset)) / gt_mask_field
    ground_truth, cover_errors = [], []
    for index, (sample_id, path) in enumerate(zip(ids, predicted, strict=True)):
        report(0.5 * index / len(ids), f"ground truth of image {index + 1}/{len(ids)}")
        labels = read_mask(path)
        height, width = labels.shape
        gt, _ = rasterize_polylines(
            polylines[index], height, width, values, encoding.background_value, "skip"
        )
        ground_truth.append(fo.Segmentation(mask_path=write_mask(folder, sample_id, gt)))
        cover_errors.append(_cover_error(labels, gt, encoding.num_labels))
    samples.set_values(gt_mask_field, ground_truth)
    return cover_errors


def _has_colonies(samples, field: str) -> bool:
    """Whether every sample has predicted colonies in ``field`` (``fo.Detections``)."""
    import fiftyone as fo

    if _schema_type(samples, field) is not fo.Detections:
        return False
    return samples.exists(field, False).count() == 0


def _cover_error(predicted: np.ndarray, annotated: np.ndarray, labels: int) -> np.ndarray | None:
    """``(labels,)`` |predicted - annotated| percent cover of one image over its annotated
    pixels (ignore excluded), or None when nothing is annotated."""
    inside = annotated != IGNORE_INDEX
    total = int(inside.sum())
    if total == 0:
        return None
    predicted_cover = value_counts(predicted, inside)[:labels] / total * 100
    annotated_cover = value_counts(annotated, inside)[:labels] / total * 100
    return np.abs(predicted_cover - annotated_cover)


def _mean_cover_error(errors: list[np.ndarray | None], names: tuple[str, ...]) -> dict[str, float]:
    kept = [e for e in errors if e is not None]
    if not kept:
        return {}
    mean = np.mean(kept, axis=0)
    return {name: round(float(mean[value]), 2) for value, name in enumerate(names)}


COLONY_EVAL_SUFFIX = "_colonies"
PQ_FIELD_SUFFIX = "_colony_pq"
COUNT_ERROR_FIELD_SUFFIX = "_colony_count_error"


@dataclass(frozen=True)
class ColonySummary:
    """What :func:`evaluate_colonies` measured.

    Attributes:
        eval_key: the FiftyOne detection evaluation's key (``<eval_key>_colonies``), which the
            App's Model Evaluation panel shows with mAP, PR curves and a confusion matrix.
        pred_field: the predicted colonies; ``gt_field``: the annotated ones (Detections with
            masks, one per polygon).
        samples: how many samples were compared.
        mean_ap: FiftyOne's COCO-style mask mAP (0-1), None when it could not be computed.
        colonies: PQ, counts and size distributions of the predicted colonies.
        components: the ablation: field name -> the same metrics for colonies taken as the
            connected regions of that semantic map (raw or refined), for each one present.
    """

    eval_key: str
    pred_field: str
    gt_field: str
    samples: int
    mean_ap: float | None
    colonies: ColonyEvaluation
    components: dict[str, ColonyEvaluation]

    def report_lines(self) -> list[str]:
        """What ``coralseg demo`` and the operator print: the per-class table, one line with
        PQ, mAP and count error, then the ablation."""
        mean_ap = "n/a" if self.mean_ap is None else f"{self.mean_ap * 100:.2f}"
        lines = [
            f"Colonies on {self.samples} image(s) against the drawn polygons "
            f"(FiftyOne evaluation {self.eval_key}):",
            *self.colonies.format_table().splitlines(),
            f"{self.colonies.summary_line()}; mask mAP {mean_ap}",
        ]
        if self.components:
            lines.append("What the second stage buys (same metrics, colonies taken as):")
            lines.append(f"  two-stage colonies ({self.pred_field}): {_short(self.colonies)}")
            for name, evaluation in self.components.items():
                lines.append(f"  connected regions of {name}: {_short(evaluation)}")
        return lines


def _short(evaluation: ColonyEvaluation) -> str:
    predicted = sum(i.predicted for i in evaluation.images)
    true = sum(i.true for i in evaluation.images)
    pq = "n/a" if np.isnan(evaluation.pq) else f"{evaluation.pq * 100:.2f}"
    return (
        f"PQ {pq}, {predicted} colonies for {true} drawn, count error "
        f"{evaluation.mean_abs_count_error:.2f} per image"
    )


def evaluate_colonies(
    samples,
    *,
    pred_field: str = DEFAULT_INSTANCES_FIELD,
    gt_field: str = DEFAULT_GT_FIELD,
    eval_key: str = DEFAULT_EVAL_KEY,
    component_fields: tuple[str, ...] = (DEFAULT_PRED_FIELD, DEFAULT_SEMANTIC_FIELD),
) -> ColonySummary:
    """Judge predicted colonies against the annotated polygons, as FiftyOne and ecologists do.

    1. The annotated colonies are the polygons of ``gt_field``
       (:func:`coral_core.ecology.colonies.annotated_colonies`: one per polygon, each pixel in
       at most one), written as ``fo.Detections`` with masks to ``<gt_field>_colonies``;
    2. FiftyOne's COCO-style detection evaluation with masks runs on ``pred_field`` (colonies
       as :func:`fiftyone_plugin.prediction.predict_samples` writes them) under
       ``<eval_key>_colonies``, with mAP;
    3. colony PQ, counts and size KS (:mod:`coral_core.evaluation.colony_metrics`) overall, per
       class and per image; each sample gets ``<eval_key>_colony_pq`` (percent) and
       ``<eval_key>_colony_count_error`` (predicted - drawn);
    4. the same metrics for colonies taken as the connected regions of each semantic map of
       ``component_fields`` present on every sample (the ablation).

    Raises:
        CoralsegError: no samples, or ``pred_field`` / ``gt_field`` of the wrong kind.
    """
    import fiftyone as fo

    if len(samples) == 0:
        raise CoralsegError("there are no samples whose colonies to evaluate")
    if _schema_type(samples, pred_field) is not fo.Detections:
        raise CoralsegError(
            f"{pred_field!r} holds no predicted colonies (fo.Detections with masks); predict "
            "colonies first (the predict_colonies operator or coralseg demo)"
        )
    if check_gt_field(samples, gt_field) != "polylines":
        raise CoralsegError(f"colonies are judged against polygons; {gt_field!r} holds masks")
    dataset = samples._dataset
    samples.compute_metadata(progress=False)
    ids, heights, widths, predicted = samples.values(
        ["id", "metadata.height", "metadata.width", f"{pred_field}.detections"]
    )
    polylines = labeled_polylines(samples, gt_field)
    labels = sorted({p.label for sample in polylines for p in sample})
    values = {label: index + 1 for index, label in enumerate(labels)}
    gt_colonies_field = f"{gt_field}{COLONY_EVAL_SUFFIX}"
    truth, guesses, detections = [], [], []
    for index, (height, width) in enumerate(zip(heights, widths, strict=True)):
        regions, _ = polyline_regions(polylines[index], height, width, values, "skip")
        drawn = annotated_colonies(regions)
        truth.append(drawn)
        guesses.append([from_detection(d, height, width) for d in predicted[index] or ()])
        detections.append(fo.Detections(detections=[to_detection(c, height, width) for c in drawn]))
    samples.set_values(gt_colonies_field, detections)

    key = f"{eval_key}{COLONY_EVAL_SUFFIX}"
    if key in dataset.list_evaluations():
        dataset.delete_evaluation(key)
    results = samples.evaluate_detections(
        pred_field,
        gt_field=gt_colonies_field,
        eval_key=key,
        use_masks=True,
        compute_mAP=True,
        progress=False,
    )
    try:
        mean_ap = float(results.mAP())
    except ValueError:  # FiftyOne could not compute it (e.g. no colony of any class)
        mean_ap = None
    if mean_ap is not None and mean_ap < 0:  # FiftyOne's "no class had a colony"
        mean_ap = None
    colonies = _colony_metrics(ids, guesses, truth, labels)
    samples.set_values(
        f"{eval_key}{PQ_FIELD_SUFFIX}",
        [None if np.isnan(i.pq) else round(i.pq * 100, 2) for i in colonies.images],
    )
    samples.set_values(
        f"{eval_key}{COUNT_ERROR_FIELD_SUFFIX}", [i.count_error for i in colonies.images]
    )
    components = {}
    for name in component_fields:
        encoding = field_encoding(dataset, name)
        paths = samples.values(f"{name}.mask_path") if encoding else []
        if not encoding or not all(paths):
            continue
        colony_names = {v: encoding.label_names[v] for v in encoding.colony_values}
        regions = [component_instances(read_mask(path), colony_names) for path in paths]
        components[name] = _colony_metrics(ids, regions, truth, labels)
    return ColonySummary(
        eval_key=key,
        pred_field=pred_field,
        gt_field=gt_colonies_field,
        samples=len(ids),
        mean_ap=mean_ap,
        colonies=colonies,
        components=components,
    )


def _colony_metrics(ids, predicted, true, labels) -> ColonyEvaluation:
    return colony_metrics(
        [ImageColonies(i, p, t) for i, p, t in zip(ids, predicted, true, strict=True)],
        classes=labels,
    )
