"""``coralseg doctor``: check that the installed stack works together on this machine."""

from __future__ import annotations

import argparse
import importlib
import importlib.util
import time
import uuid
from collections.abc import Callable


def register(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser(
        "doctor",
        help="check the installed stack (torch, mmcv ops, MMSeg, SAM, FiftyOne database, ...)",
        description=(
            "Import every library coralseg needs, run a compiled mmcv op and torchvision's "
            "nms, and create and delete a FiftyOne dataset. Exits non-zero if anything fails."
        ),
    )
    parser.add_argument(
        "--skip-database",
        action="store_true",
        help="do not start FiftyOne's database (the slowest check)",
    )
    parser.add_argument(
        "--cluster",
        metavar="ADDRESS",
        help="also check that the Ray cluster at ADDRESS answers, as 'coralseg infer "
        "--cluster ADDRESS' would reach it (auto, HOST:PORT or ray://HOST:PORT)",
    )
    parser.set_defaults(run=run)


def _version(module_name: str) -> str:
    module = importlib.import_module(module_name)
    return str(getattr(module, "__version__", "ok"))


def _torch() -> str:
    import torch

    cuda = f"CUDA {torch.version.cuda}, GPU: {torch.cuda.is_available()}"
    return f"{torch.__version__} ({cuda})"


def _torchvision_nms() -> str:
    import torch
    import torchvision

    boxes = torch.tensor([[0.0, 0.0, 10.0, 10.0], [1.0, 1.0, 10.0, 10.0]])
    kept = torchvision.ops.nms(boxes, torch.tensor([0.9, 0.8]), iou_threshold=0.5)
    if kept.tolist() != [0]:
        raise RuntimeError(f"nms returned {kept.tolist()}, expected [0]")
    return torchvision.__version__


def _mmcv_ops() -> str:
    import mmcv
    import torch
    from mmcv.ops import roi_align

    features = torch.arange(16, dtype=torch.float32).reshape(1, 1, 4, 4)
    rois = torch.tensor([[0.0, 0.0, 0.0, 3.0, 3.0]])
    roi_align(features, rois, (2, 2), 1.0, 2, "avg", True)  # an autograd Function: positional
    return f"{mmcv.__version__} (compiled ops run)"


def _mmseg() -> str:
    import mmseg
    import mmseg.models

    return mmseg.__version__


def _fiftyone_database() -> str:
    import fiftyone as fo

    name = f"coralseg-doctor-{uuid.uuid4().hex[:8]}"
    dataset = fo.Dataset(name)
    try:
        dataset.add_sample(fo.Sample(filepath="/nonexistent/doctor.jpg"))
        count = len(dataset)
    finally:
        dataset.delete()
    if count != 1 or fo.dataset_exists(name):
        raise RuntimeError("dataset round trip failed")
    return f"{fo.__version__} (dataset created and deleted)"


def _ray_cluster(address: str | None) -> str:
    if address is None:
        if importlib.util.find_spec("ray") is None:
            return "Ray not installed (optional, for --cluster: pip install 'coralseg[ray]')"
        return f"Ray {_version('ray')} installed; --cluster ADDRESS checks a cluster"
    from coral_core.cluster import describe_cluster

    return f"reachable: {describe_cluster(address)}"


def run(args: argparse.Namespace) -> int:
    checks: list[tuple[str, Callable[[], str]]] = [
        ("torch", _torch),
        ("torchvision nms", _torchvision_nms),
        ("mmcv ops", _mmcv_ops),
        ("mmengine", lambda: _version("mmengine")),
        ("mmsegmentation", _mmseg),
        ("timm", lambda: _version("timm")),
        ("segment_anything", lambda: _version("segment_anything")),
        ("opencv", lambda: _version("cv2")),
        ("pycocotools", lambda: _version("pycocotools.mask")),
        ("cvat_sdk", lambda: _version("cvat_sdk")),
        ("nuclio_sdk", lambda: _version("nuclio_sdk")),
        ("fastapi", lambda: _version("fastapi")),
    ]
    if not args.skip_database:
        checks.append(("fiftyone database", _fiftyone_database))
    checks.append(("ray cluster", lambda: _ray_cluster(args.cluster)))
    failures = 0
    for label, check in checks:
        start = time.perf_counter()
        try:
            detail = check()
            status = "ok  "
        except Exception as err:  # report every broken piece, not just the first
            detail = f"{type(err).__name__}: {err}"
            status = "FAIL"
            failures += 1
        print(f"[{status}] {label:<18} {detail}  ({time.perf_counter() - start:.1f}s)")
    if failures:
        print(f"{failures} check(s) failed; rerun ./setup.sh, or see README 'Troubleshooting'.")
        return 1
    print("all checks passed")
    return 0
