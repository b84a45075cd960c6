"""The installed stack works together: what setup.sh promises."""

from __future__ import annotations

import importlib

import pytest


@pytest.mark.parametrize(
    ("module", "entry_point"),
    [
        ("mmseg.models", "EncoderDecoder"),
        ("segment_anything", "SamPredictor"),
        ("timm", "create_model"),
        ("cvat_sdk", "make_client"),
        ("nuclio_sdk", "Event"),
        ("pycocotools.mask", "encode"),
        ("cv2", "connectedComponentsWithStats"),
    ],
)
def test_imports(module: str, entry_point: str) -> None:
    """Each package imports and has the entry point coralseg calls (a broken or stub
    install imports but lacks it)."""
    assert callable(getattr(importlib.import_module(module), entry_point))


def test_mmcv_compiled_op_runs() -> None:
    import torch
    from mmcv.ops import roi_align

    features = torch.arange(16, dtype=torch.float32).reshape(1, 1, 4, 4)
    rois = torch.tensor([[0.0, 0.0, 0.0, 4.0, 4.0]])
    # aligned: sample points at pixel centres, so a 4x4 average of a linear ramp is its mean
    pooled = roi_align(features, rois, (1, 1), 1.0, 4, "avg", True)
    assert pooled.shape == (1, 1, 1, 1)
    assert pooled.item() == pytest.approx(features.mean().item(), abs=1e-5)


def test_torchvision_nms_runs() -> None:
    import torch
    import torchvision

    boxes = torch.tensor([[0.0, 0.0, 10.0, 10.0], [1.0, 1.0, 10.0, 10.0], [20.0, 20, 30, 30]])
    kept = torchvision.ops.nms(boxes, torch.tensor([0.9, 0.8, 0.7]), iou_threshold=0.5)
    assert kept.tolist() == [0, 2]


def test_mmseg_accepts_installed_mmcv() -> None:
    import mmcv
    import mmseg

    assert mmseg.__version__ == "1.2.2"
    assert mmcv.__version__.startswith("2.1")


def test_fiftyone_dataset_create_and_delete(fiftyone) -> None:
    fo = fiftyone
    dataset = fo.Dataset("coralseg-stack-check")
    dataset.add_sample(fo.Sample(filepath="/tmp/quadrat.jpg", tags=["train"]))
    assert fo.load_dataset("coralseg-stack-check").count() == 1
    dataset.delete()
    assert not fo.dataset_exists("coralseg-stack-check")


def test_fiftyone_uses_the_isolated_database(fiftyone) -> None:
    import os

    assert fiftyone.config.database_uri == os.environ["FIFTYONE_DATABASE_URI"]
    assert "127.0.0.1" in fiftyone.config.database_uri
