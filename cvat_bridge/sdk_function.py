"""A cvat-sdk auto-annotation function: the coralseg model on your own machine, no Nuclio.

``cvat-cli`` loads this module, calls :func:`create` with the ``-p`` parameters, and runs
:meth:`CoralsegFunction.detect` on every frame of a task, uploading the shapes::

    CONFIG=configs/dinov2-vitb14-segformer_150e_criobe-finegrained-518x518.py
    cvat-cli --server-host https://cvat.example.org --auth me \\
        task auto-annotate 42 --function-module cvat_bridge.sdk_function \\
        -p segformer_config=str:$CONFIG \\
        -p segformer_weights=str:work_dirs/finegrained/best_mIoU_epoch_140.pth \\
        -p sam_checkpoint=str:checkpoints/vit_b_coralscop.pth -p device=str:cuda

The model, the thresholds and the shapes are those of the Nuclio function: one mask (or,
with ``--conv-mask-to-poly``, one polygon) per colony, labelled by the colony's class, for
colonies scoring at least ``--conf-threshold``. The task's labels must carry the model's
class names, with type ``mask``, ``polygon`` (with ``--conv-mask-to-poly``) or ``any``.
"""

from __future__ import annotations

import PIL.Image
from cvat_sdk import auto_annotation as cvataa
from cvat_sdk import models

from coral_core.formats.cvat_shapes import cvat_shapes, label_spec
from coral_core.formats.raster_io import pillow_image_to_rgb
from coral_core.inference.instances import (
    DEFAULT_MIN_AREA,
    DEFAULT_MIN_THRESHOLD,
    DEFAULT_UNSURE_THRESHOLD,
    RefineSettings,
)
from coral_core.inference.pipeline import TwoStagePredictor

SHAPE_MAKERS = {"mask": cvataa.mask, "polygon": cvataa.polygon}


class CoralsegFunction:
    """A :class:`cvat_sdk.auto_annotation.DetectionFunction` over a :class:`TwoStagePredictor`.

    ``spec`` declares the model's colony classes (ids = their pixel values, type ``mask``).
    """

    def __init__(self, predictor: TwoStagePredictor) -> None:
        self._predictor = predictor
        labels = label_spec(predictor.encoding)
        self._label_ids = {label["name"]: label["id"] for label in labels}
        self.spec = cvataa.DetectionFunctionSpec(
            labels=[cvataa.label_spec(label["name"], label["id"], type="mask") for label in labels]
        )

    def detect(
        self, context: cvataa.DetectionFunctionContext, image: PIL.Image.Image
    ) -> list[models.LabeledShapeRequest]:
        """One shape per colony of ``image`` scoring at least ``context.conf_threshold``,
        encoded by :func:`coral_core.formats.cvat_shapes.cvat_shapes` (as the bridge and the Nuclio
        function encode them), with the colony's score in the shape's ``score``: cvat-sdk
        leaves a shape's score as the function sets it (else CVAT stores 1.0)."""
        result = self._predictor(pillow_image_to_rgb(image))
        shapes = cvat_shapes(
            result,
            conv_mask_to_poly=bool(getattr(context, "conv_mask_to_poly", False)),
            threshold=getattr(context, "conf_threshold", None),
        )
        return [
            SHAPE_MAKERS[shape.type](
                self._label_ids[shape.label], shape.points, score=round(float(shape.score), 4)
            )
            for shape in shapes
            if shape.label in self._label_ids
        ]


def create(
    segformer_config: str,
    segformer_weights: str,
    sam_checkpoint: str = "",
    device: str = "cpu",
    min_threshold: float = DEFAULT_MIN_THRESHOLD,
    unsure_threshold: float = DEFAULT_UNSURE_THRESHOLD,
    min_area: int = DEFAULT_MIN_AREA,
    overlap: float = -1.0,
) -> CoralsegFunction:
    """The function for ``cvat-cli task auto-annotate --function-module cvat_bridge.sdk_function``.

    Args:
        segformer_config, segformer_weights: the trained semantic model.
        sam_checkpoint: SAM or CoralSCoP weights; empty for colonies = semantic regions.
        device: ``cpu``, ``cuda`` or ``cuda:N``.
        min_threshold, unsure_threshold, min_area: the instance stage, as in
            ``coralseg infer``.
        overlap: sliding-window overlap in [0, 1); negative for the config's own.
    """
    settings = RefineSettings(
        min_threshold=float(min_threshold),
        unsure_threshold=float(unsure_threshold),
        min_area=int(min_area),
    )
    predictor = TwoStagePredictor.from_files(
        segformer_config,
        segformer_weights,
        sam_checkpoint=sam_checkpoint or None,
        device=device,
        settings=settings,
        overlap=None if float(overlap) < 0 else float(overlap),
    )
    return CoralsegFunction(predictor)
