"""Tiny random-weight checkpoints in coralseg's exact layout, made by the tests themselves
(no weights are downloaded): the tiny config's ViT-S/14 + SegFormer with a taxonomy's classes,
saved as ``coralseg train`` saves them, so the real loading code loads them strictly."""

from __future__ import annotations

import uuid
from pathlib import Path

import torch
from mmengine.config import Config

from coral_core.labels.taxonomy import MaskEncoding

REPO = Path(__file__).resolve().parents[1]
TINY = REPO / "configs" / "dinov2-vits14-segformer_tiny-cpu_eilat-224x224.py"


def save_tiny_checkpoint(
    path: Path,
    encoding: MaskEncoding,
    native_resolution: bool = False,
    seed: int = 0,
    config: Path = TINY,
) -> Path:
    """Write a random tiny model for ``encoding`` to ``path`` and return the path.

    ``native_resolution`` records "no test-time resize", so small test images stay one
    window instead of being blown up to the tiny config's 460 px.
    """
    from mmengine.logging import MMLogger

    from coral_core.models import build_segmentor

    cfg = Config.fromfile(str(config))
    cfg.model.decode_head.num_classes = encoding.num_labels
    torch.manual_seed(seed)
    network = build_segmentor(cfg.model)
    # init_weights logs to MMEngine's current logger; after a training run in the same
    # process that one holds a closed log file, so give it a fresh one.
    MMLogger.get_instance(f"coralseg-test-model-{uuid.uuid4().hex}")
    network.init_weights()
    meta = {"encoding": encoding.to_dict()}
    if native_resolution:
        meta["inference_resize"] = None
    torch.save({"state_dict": network.state_dict(), "meta": {"coralseg": meta}}, path)
    return path
