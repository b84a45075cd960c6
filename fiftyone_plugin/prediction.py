"""Two-stage predictions onto FiftyOne samples: colonies as detections, refined genus masks.

:func:`predict_samples` is what the ``predict_colonies`` operator and ``coralseg demo`` call.
Per sample it writes

* ``instances_field``: ``fo.Detections``, one ``fo.Detection`` per colony: ``label`` = genus,
  ``confidence`` = score, ``bounding_box`` = the colony's box in FiftyOne's relative
  ``[x, y, w, h]``, ``mask`` = the colony's ``(h, w)`` bool mask inside that box (exactly
  :class:`coral_core.inference.instances.CoralInstance`'s box-local mask), plus ``genus``,
  ``score`` and ``area`` (pixels) attributes;
* ``semantic_field``: ``fo.Segmentation`` of the refined semantic mask (PNG on disk,
  ``mask_targets`` from the checkpoint's taxonomy).

The predictor is :func:`.models.two_stage_predictor`, built as ``coralseg infer`` builds its
own, so both give the same colonies.

:func:`predict_through_runner` writes the same fields through ``coralseg infer``'s runner
(:mod:`coral_core.inference.batch_runner`): the photos become units of work done here or on
the workers of a Ray cluster, each leaving its files and its record in an output folder (a
rerun skips finished photos; an unreadable photo is reported and the rest completes), and the
fields are then filled from the records. That is what the operator runs, delegated, when a
cluster is given. Being instance labels, the colonies can be judged with
FiftyOne's ``evaluate_detections(use_masks=True)``
(:func:`fiftyone_plugin.evaluation.evaluate_colonies`); :func:`from_detection` reads one back.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from coral_core.cluster import ClusterOptions
from coral_core.errors import CoralsegError
from coral_core.formats.raster_io import open_image
from coral_core.inference.instances import CoralInstance, RefineSettings

from .masks import default_mask_root, read_mask, set_segmentation_targets, write_mask
from .models import check_config, resolve_file, two_stage_predictor

DEFAULT_INSTANCES_FIELD = "coralseg_colonies"
DEFAULT_SEMANTIC_FIELD = "coralseg_refined"


@dataclass(frozen=True)
class PredictionSummary:
    """What :func:`predict_samples` (or :func:`predict_through_runner`) wrote: sample and
    colony counts, colonies per genus; through the runner also its output folder, the photos
    already done before this run, and the failed ones (``"<photo>: <why>"`` each)."""

    samples: int
    per_genus: dict[str, int]
    instances_field: str
    semantic_field: str
    output_dir: str | None = None
    skipped: int = 0
    failed: tuple[str, ...] = ()

    @property
    def colonies(self) -> int:
        return sum(self.per_genus.values())


def _colonies_per_genus(detections: Iterable[Any]) -> dict[str, int]:
    """Genus -> colony count over ``fo.Detections`` (None: a sample without any), by name."""
    counts = Counter(d.label for found in detections if found for d in found.detections)
    return dict(sorted(counts.items()))


def to_detection(instance: CoralInstance, height: int, width: int):
    """An ``fo.Detection`` of a colony in an image of ``height x width`` pixels."""
    import fiftyone as fo

    x, y, w, h = instance.bbox
    return fo.Detection(
        label=instance.label,
        bounding_box=[x / width, y / height, w / width, h / height],
        mask=instance.mask.astype(bool),
        confidence=float(instance.score),
        genus=instance.label,
        score=float(instance.score),
        area=int(instance.area),
    )


def from_detection(detection, height: int, width: int) -> CoralInstance:
    """The colony of an ``fo.Detection`` with a mask (as :func:`to_detection` writes it, or
    any instance mask) in an image of ``height x width`` pixels.

    A mask whose size differs from its box in pixels (another tool's) is resized to the box
    by nearest neighbour; a detection without a mask is its whole box.
    """
    import cv2

    bx, by, bw, bh = detection.bounding_box
    x, y = round(bx * width), round(by * height)
    w = max(1, min(round(bw * width), width - x))
    h = max(1, min(round(bh * height), height - y))
    mask = getattr(detection, "mask", None)
    if mask is None:
        mask = np.ones((h, w), dtype=bool)
    else:
        mask = np.asarray(mask).astype(bool)
        if mask.shape != (h, w):
            mask = cv2.resize(mask.view(np.uint8), (w, h), interpolation=cv2.INTER_NEAREST)
            mask = mask.astype(bool)
    score = detection.confidence if detection.confidence is not None else 1.0
    return CoralInstance(detection.label, 0, float(score), (x, y, w, h), mask, int(mask.sum()))


def predict_samples(
    samples,
    config: str | Path,
    checkpoint: str | Path,
    sam_checkpoint: str | Path | None = None,
    *,
    instances_field: str = DEFAULT_INSTANCES_FIELD,
    semantic_field: str = DEFAULT_SEMANTIC_FIELD,
    settings: RefineSettings | None = None,
    mask_dir: str | Path | None = None,
    device: str = "cpu",
    progress: Callable[[float, str], Any] | None = None,
) -> PredictionSummary:
    """Run the two-stage model on every sample and store its output (module docstring).

    Args:
        samples: a FiftyOne dataset or view.
        config, checkpoint: the semantic model.
        sam_checkpoint: SAM or CoralSCoP weights; None keeps the semantic regions as colonies.
        instances_field, semantic_field: output fields (replaced if there).
        settings: thresholds of the instance stage (default: ``RefineSettings()``).
        mask_dir: folder for the refined-mask PNGs (default: :func:`.masks.default_mask_root`).
        device: ``cpu`` or ``cuda``.
        progress: called with (fraction done, label).
    """
    import fiftyone as fo

    if instances_field == semantic_field:
        raise CoralsegError("the colonies and the refined mask need two different fields")
    predictor = two_stage_predictor(config, checkpoint, sam_checkpoint, device, settings)
    ids, paths = samples.values(["id", "filepath"])
    if not ids:
        raise CoralsegError("there are no samples to predict")
    root = Path(mask_dir) if mask_dir else default_mask_root(samples._dataset)
    detections, masks = [], []
    for index, (sample_id, path) in enumerate(zip(ids, paths, strict=True)):
        if progress is not None:
            progress(index / len(ids), f"image {index + 1}/{len(ids)}")
        image = open_image(path).read()
        height, width = image.shape[:2]
        result = predictor(image).instances
        found = [to_detection(instance, height, width) for instance in result.instances]
        detections.append(fo.Detections(detections=found))
        path_out = write_mask(root / semantic_field, sample_id, result.semantic)
        masks.append(fo.Segmentation(mask_path=path_out))
    samples.set_values(instances_field, detections)
    samples.set_values(semantic_field, masks)
    set_segmentation_targets(samples._dataset, [semantic_field], predictor.encoding)
    summary = PredictionSummary(
        samples=len(ids),
        per_genus=_colonies_per_genus(detections),
        instances_field=instances_field,
        semantic_field=semantic_field,
    )
    if progress is not None:
        progress(1.0, f"{summary.colonies} colonies in {len(ids)} images")
    return summary


def default_runner_output(dataset) -> Path:
    """Where :func:`predict_through_runner` writes by default: ``inference`` beside the
    dataset's masks (:func:`.masks.default_mask_root`)."""
    return default_mask_root(dataset).parent / "inference"


def predict_through_runner(
    samples,
    config: str | Path,
    checkpoint: str | Path,
    sam_checkpoint: str | Path | None = None,
    *,
    cluster: ClusterOptions | None,
    output_dir: str | Path | None = None,
    redo: bool = False,
    instances_field: str = DEFAULT_INSTANCES_FIELD,
    semantic_field: str = DEFAULT_SEMANTIC_FIELD,
    settings: RefineSettings | None = None,
    mask_dir: str | Path | None = None,
    device: str = "cpu",
    progress: Callable[[float, str], Any] | None = None,
) -> PredictionSummary:
    """:func:`predict_samples`' fields, made by ``coralseg infer``'s runner (module docstring).

    Each photo's outputs go to ``output_dir`` as ``coralseg infer`` writes them, named
    ``<photo name>-<sample id>``; then each sample gets its colonies from its record and its
    refined mask from ``semantic/``. A failed photo's sample gets no colonies and no mask.

    Args:
        cluster: where the photos are done (None: in this process). The output folder and the
            photos must be at the same paths on every node of a cluster.
        output_dir: the runner's folder (default: :func:`default_runner_output`).
        redo: do photos already done there again.
        progress: called with (fraction of units done, label).
        others: as :func:`predict_samples`.

    Raises:
        CoralsegError: no samples, unusable model files, results of another model in
            ``output_dir`` (unless ``redo``), or a cluster that cannot be reached.
    """
    from coral_core.inference.batch_runner import BatchImage, infer_images
    from coral_core.inference.batch_units import ModelSpec

    if instances_field == semantic_field:
        raise CoralsegError("the colonies and the refined mask need two different fields")
    ids, paths = samples.values(["id", "filepath"])
    if not ids:
        raise CoralsegError("there are no samples to predict")
    dataset = samples._dataset
    out = Path(output_dir) if output_dir else default_runner_output(dataset)
    spec = ModelSpec(
        check_config(str(config)),
        resolve_file(str(checkpoint), "checkpoint", (".pth", ".pt")),
        sam_checkpoint=(
            resolve_file(str(sam_checkpoint), "SAM checkpoint", (".pth", ".pt"))
            if sam_checkpoint
            else None
        ),
        device=device,
        settings=settings or RefineSettings(),
    )
    images = [
        BatchImage(Path(path), f"{Path(path).stem}-{sample_id}", path)
        for sample_id, path in zip(ids, paths, strict=True)
    ]

    failures = 0

    def report(state) -> None:
        nonlocal failures
        failures += state.failure is not None
        label = f"{state.done}/{state.total} units (photos or tiles) done"
        if failures:
            label += f", {failures} failed"
        progress(state.done / state.total if state.total else 1.0, label)

    where = "a FiftyOne view" if cluster is None else f"a FiftyOne view, sent to {cluster.address}"
    summary = infer_images(
        spec,
        images,
        out,
        source=f"{where} of dataset {dataset.name}",
        redo=redo,
        cluster=cluster,
        progress=report if progress is not None else None,
    )
    encoding = spec.encoding()
    root = Path(mask_dir) if mask_dir else default_mask_root(dataset)
    finished = set(summary.done) | set(summary.skipped)
    detections: dict[str, Any] = {}
    masks: dict[str, Any] = {}
    for sample_id, image in zip(ids, images, strict=True):
        detections[sample_id], masks[sample_id] = None, None
        if image.stem in finished:
            found, mask_path = _from_runner_output(
                out, image.stem, root / semantic_field, sample_id
            )
            detections[sample_id], masks[sample_id] = found, mask_path
    samples.set_values(instances_field, detections, key_field="id")
    samples.set_values(semantic_field, masks, key_field="id")
    set_segmentation_targets(dataset, [semantic_field], encoding)
    return PredictionSummary(
        samples=len(finished),
        per_genus=_colonies_per_genus(detections.values()),
        instances_field=instances_field,
        semantic_field=semantic_field,
        output_dir=str(out),
        skipped=len(summary.skipped),
        failed=tuple(f"{name}: {reason}" for name, reason in summary.failed),
    )


def _from_runner_output(out: Path, stem: str, mask_folder: Path, sample_id: str):
    """A photo's ``fo.Detections`` (from its record) and ``fo.Segmentation`` (its refined
    mask copied into ``mask_folder``) from a runner's output folder."""
    import fiftyone as fo

    from coral_core.inference.batch_units import record_path
    from coral_core.inference.instance_records import read_instance_record

    record = read_instance_record(record_path(out, stem))
    found = [to_detection(i, record.height, record.width) for i in record.instances]
    suffix = ".tif" if record.tiled else ".png"
    refined = read_mask(out / "semantic" / f"{stem}{suffix}")
    path = write_mask(mask_folder, sample_id, refined)
    return fo.Detections(detections=found), fo.Segmentation(mask_path=path)
