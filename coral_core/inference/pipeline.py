"""Two-stage inference of one image: semantic probabilities, then SAM-refined instances.

The CLI, the CVAT bridge, the Nuclio function and the FiftyOne plugin all call
:class:`TwoStagePredictor`; they differ only in where images come from and results go.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np

from coral_core.inference.instances import InstanceResult, RefineSettings, refine
from coral_core.inference.semantic import (
    SemanticModel,
    load_semantic_model,
    predict,
    with_overlap,
)
from coral_core.taxonomy import MaskEncoding


@dataclass(frozen=True)
class TwoStageResult:
    """Everything inference says about one image.

    Attributes:
        semantic_raw: ``(H, W)`` uint8 argmax of the semantic model.
        instances: the refined result (instances + refined semantic mask + zones).
    """

    semantic_raw: np.ndarray
    instances: InstanceResult


class TwoStagePredictor:
    """A semantic model, optionally followed by SAM or CoralSCoP.

    Args:
        semantic: the loaded semantic model.
        sam: a :class:`coral_core.sam_models.SamRunner`, or None for semantic regions only.
        settings: the instance-stage thresholds.
        batch_size: sliding windows per forward pass.
    """

    def __init__(
        self,
        semantic: SemanticModel,
        sam=None,
        settings: RefineSettings | None = None,
        batch_size: int = 8,
    ) -> None:
        self.semantic = semantic
        self.sam = sam
        self.settings = settings or RefineSettings()
        self.batch_size = batch_size

    @classmethod
    def from_files(
        cls,
        config: str | Path,
        checkpoint: str | Path,
        sam_checkpoint: str | Path | None = None,
        device: str = "cpu",
        settings: RefineSettings | None = None,
        overlap: float | None = None,
    ) -> TwoStagePredictor:
        """Load both models; ``overlap`` of the sliding windows (None: the config's stride)."""
        settings = settings or RefineSettings()
        semantic = load_semantic_model(config, checkpoint, device=device)
        if overlap is not None:
            semantic = with_overlap(semantic, overlap)
        sam = None
        if sam_checkpoint:
            from coral_core.sam_models import SamRunner, load_sam

            model, _ = load_sam(sam_checkpoint, device=device)
            sam = SamRunner(model, prompts_per_batch=settings.prompts_per_batch)
        return cls(semantic, sam, settings)

    @property
    def encoding(self) -> MaskEncoding:
        return self.semantic.encoding

    def __call__(self, image: np.ndarray) -> TwoStageResult:
        """Run both stages on an ``(H, W, 3)`` uint8 RGB image."""
        prediction = predict(self.semantic, image, self.batch_size)
        if self.sam is not None:
            self.sam.set_image(image)
        try:
            result = refine(prediction.probabilities, self.encoding, self.sam, self.settings)
        finally:
            if self.sam is not None:
                self.sam.reset_image()
        return TwoStageResult(prediction.labels, result)
