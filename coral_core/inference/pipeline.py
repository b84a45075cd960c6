"""Two-stage inference of one image: semantic stage, then SAM-refined colonies.

The CLI, the CVAT bridge, the Nuclio function and the FiftyOne plugin all call
:class:`TwoStagePredictor`; they differ only in where images come from and results go. Built
by :meth:`TwoStagePredictor.from_files` or :meth:`TwoStagePredictor.from_models` with the same
defaults (sliding windows overlapping by :data:`DEFAULT_OVERLAP`, :class:`RefineSettings`),
``coralseg infer`` and the App's predict operator give the same pixels and colonies.
"""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path

import numpy as np

from coral_core.inference.instances import (
    RefineSettings,
    TwoStageResult,
    refine,
)
from coral_core.inference.semantic import (
    SemanticModel,
    load_semantic_model,
    photo_pixels_per_model_pixel,
    predict,
    with_overlap,
)
from coral_core.inference.tiled import TileGrid
from coral_core.labels.taxonomy import MaskEncoding

# Overlap of the sliding windows by default: 0 sees each pixel once, 3-4x less compute on
# large images than the configs' half-window stride (see semantic.with_overlap).
DEFAULT_OVERLAP = 0.0


class TwoStagePredictor:
    """A semantic model, optionally followed by SAM or CoralSCoP.

    Args:
        semantic: the loaded semantic model.
        sam: a :class:`coral_core.inference.sam_models.SamRunner`, or None for semantic
            regions only.
        settings: the instance-stage thresholds, sizes at the model's working scale (each
            photo gets them in its own pixels, :meth:`RefineSettings.at_photo_scale`).
        batch_size: sliding windows per forward pass (None: the model's default, see
            ``SemanticModel.default_batch_size``).
    """

    def __init__(
        self,
        semantic: SemanticModel,
        sam=None,
        settings: RefineSettings | None = None,
        batch_size: int | None = None,
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
        overlap: float | None = DEFAULT_OVERLAP,
    ) -> TwoStagePredictor:
        """Load both models; ``overlap`` of the sliding windows (None: the config's stride)."""
        settings = settings or RefineSettings()
        semantic = load_semantic_model(config, checkpoint, device=device)
        sam = None
        if sam_checkpoint:
            from coral_core.inference.sam_models import load_sam_runner

            sam = load_sam_runner(sam_checkpoint, device, settings.prompts_per_batch)
        return cls.from_models(semantic, sam, settings, overlap)

    @classmethod
    def from_models(
        cls,
        semantic: SemanticModel,
        sam=None,
        settings: RefineSettings | None = None,
        overlap: float | None = DEFAULT_OVERLAP,
    ) -> TwoStagePredictor:
        """A predictor of loaded models, windows overlapping by ``overlap`` (None: the
        config's stride): what every caller that loads its models itself uses."""
        if overlap is not None:
            semantic = with_overlap(semantic, overlap)
        return cls(semantic, sam, settings)

    @property
    def encoding(self) -> MaskEncoding:
        return self.semantic.encoding

    def __call__(self, image: np.ndarray) -> TwoStageResult:
        """Run both stages on an ``(H, W, 3)`` uint8 RGB photo (at the model's scale)."""
        return self._run(self.semantic, image)

    def tile_grid(self, height: int, width: int, tile: int = 2048) -> TileGrid:
        """The tiling of a ``height x width`` image of any size (see :mod:`.tiled`): cores of
        ``tile`` pixels, each refined with a margin of context of at least one window."""
        return TileGrid(height, width, tile, margin=max(self.semantic.window, 256))

    def refine_tile(self, source, grid: TileGrid, row: int, column: int) -> TwoStageResult:
        """Both stages on the region of tile ``(row, column)`` of an opened
        :class:`coral_core.formats.raster_io.ImageSource`, at the image's own pixel size; the result
        is in the region's coordinates (:func:`.tiled.tile_pieces` clips it to the core)."""
        native = replace(self.semantic, resize=None, long_side=None)  # their own pixel size
        return self._run(native, source.read(grid.region(row, column)))

    def photo_settings(self, semantic: SemanticModel, image: np.ndarray) -> RefineSettings:
        """:attr:`settings` (sizes at the model's working scale) in ``image``'s pixels."""
        scale = photo_pixels_per_model_pixel(semantic, *image.shape[:2])
        return self.settings.at_photo_scale(scale)

    def _run(self, semantic: SemanticModel, image: np.ndarray) -> TwoStageResult:
        prediction = predict(semantic, image, self.batch_size)
        if self.sam is not None:
            self.sam.set_image(image)
        try:
            result = refine(
                prediction, self.encoding, self.sam, self.photo_settings(semantic, image)
            )
        finally:
            if self.sam is not None:
                self.sam.reset_image()
        return TwoStageResult(prediction.labels, result)
