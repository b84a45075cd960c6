"""Evaluating a trained checkpoint with MMEngine's test loop and :class:`CoralIoUMetric`.

One pass over the split gives the per-class scores, the confusion matrix (PNG and CSV) and,
optionally, coloured prediction overlays.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np
from mmengine.config import Config

from coral_core.checkpoint import load_checkpoint_file, load_weights_strictly
from coral_core.errors import CoralsegError
from coral_core.evaluation.metrics import SegmentationScores
from coral_core.formats.dataset_manifest import read_dataset_manifest
from coral_core.labels.taxonomy import MaskEncoding
from coral_core.training.mmseg_config import use_prepared_dataset
from coral_core.training.runner import load_config


@dataclass(frozen=True)
class EvaluationResult:
    """Scores of one evaluation run and where its reports went."""

    scores: SegmentationScores
    confusion: np.ndarray  # (N, N) int64, rows = ground truth, columns = prediction
    output_dir: Path | None


def prepare_test_config(
    config_path: str | Path,
    checkpoint: str | Path,
    work_dir: str | Path,
    split: str = "test",
    data_dir: str | Path | None = None,
    tta: bool = False,
    show_dir: str | Path | None = None,
    output_dir: str | Path | None = None,
    cfg_options: dict | None = None,
) -> Config:
    """The config of a test run: the checkpoint's weights on ``split`` of the config's data."""
    if split not in ("val", "test"):
        raise CoralsegError(f"the split must be val or test, got {split!r}", settings=["split"])
    state = load_checkpoint_file(checkpoint)  # a clear error for a missing or unreadable file
    cfg = load_config(config_path)
    cfg.work_dir = str(Path(work_dir).resolve())
    cfg.load_from = str(checkpoint)
    cfg.model.backbone.checkpoint = None  # the checkpoint holds the whole model
    if data_dir:
        data_encoding = use_prepared_dataset(cfg, data_dir)
        splits = read_dataset_manifest(data_dir).splits
        if split not in splits:
            raise CoralsegError(
                f"{data_dir} has no {split} split (it has {', '.join(sorted(splits))}); "
                f"evaluate on {'val' if 'val' in splits else 'test'} instead, or tag samples "
                f"'{split}' and prepare the data folder again",
                settings=["split"],
            )
        _check_taxonomy(state, data_encoding, checkpoint)
    if split == "val":
        if cfg.get("val_dataloader") is None:
            raise CoralsegError("this dataset has no val split")
        cfg.test_dataloader = cfg.val_dataloader
    _check_weights_fit(cfg, state, checkpoint, config_path)
    cfg.test_evaluator = {
        "type": "CoralIoUMetric",
        "output_dir": str(output_dir) if output_dir else None,
    }
    if tta:
        if "tta_model" not in cfg or "tta_pipeline" not in cfg:
            raise CoralsegError("this config defines no tta_model / tta_pipeline")
        cfg.test_dataloader.dataset.pipeline = cfg.tta_pipeline
        cfg.tta_model.module = cfg.model
        cfg.model = cfg.tta_model
    if show_dir:
        hooks = cfg.default_hooks
        hooks.visualization = {"type": "SegVisualizationHook", "draw": True, "interval": 1}
        cfg.visualizer.save_dir = str(show_dir)
    if cfg_options:
        cfg.merge_from_dict(cfg_options)
    cfg.test_dataloader.persistent_workers = False  # one pass: no workers to keep alive
    return cfg


def _check_taxonomy(state: dict, data: MaskEncoding, checkpoint: str | Path) -> None:
    """Refuse data whose classes are not the ones the checkpoint was trained on."""
    stored = state.get("meta", {}).get("coralseg", {}).get("encoding")
    if not stored:
        return  # an MMSeg checkpoint without coralseg metadata: the weight check decides
    trained = MaskEncoding.from_dict(stored)
    if trained.label_names != data.label_names:
        raise CoralsegError(
            f"{checkpoint} was trained on the classes {', '.join(trained.label_names)}, but the "
            f"data has {', '.join(data.label_names)}; prepare the data with the checkpoint's "
            f"taxonomy ({trained.taxonomy.name}) and background setting"
        )


def _check_weights_fit(
    cfg: Config, state: dict, checkpoint: str | Path, config: str | Path
) -> None:
    """Build the config's network and load the checkpoint strictly (MMEngine's test loop
    would load it leniently, leaving a random head with only a warning)."""
    from coral_core.models import build_segmentor

    network = build_segmentor(cfg.model)
    load_weights_strictly(network, state, checkpoint, Path(config).name)


def evaluate(cfg: Config) -> EvaluationResult:
    """Run the test loop of a config from :func:`prepare_test_config`."""
    from mmengine.runner import Runner

    import coral_core.models  # noqa: F401  (registers the backbone, metric and hooks)

    runner = Runner.from_cfg(cfg)
    runner.test()
    metric = runner.test_evaluator.metrics[0]
    output_dir = cfg.test_evaluator.get("output_dir")
    return EvaluationResult(
        scores=metric.last_scores,
        confusion=metric.last_confusion,
        output_dir=Path(output_dir) if output_dir else None,
    )
