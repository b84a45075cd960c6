"""Inference benchmark on a 1920x1920 reef image: the naive two-stage path against coralseg's.

The image is a 2x2 mosaic of quadrat photos from ../shared/data/quadrats. Both paths use the
same random weights: DINOv2 ViT-B/14 + SegFormer (the CRIOBE finegrained config) and SAM
ViT-B, in the same run.

* naive: MMSeg's ``inference_model`` in slide mode (518 windows, stride 259, fp32, one window
  at a time), then segment-anything's ``SamAutomaticMaskGenerator`` with its defaults on the
  whole image (a 32x32 point grid);
* coralseg: :class:`TwoStagePredictor`: batched windows without overlap (fp16 on a GPU), then
  SAM prompted with one box per coral region of the semantic map.

Random weights make the semantic map noise. So that the instance stage sees colony-like
regions, as a trained model's map has, its probabilities are smoothed with a 61 px box
filter before refinement (not timed), and the thresholds are set at quantiles of the coral
probability (30% not coral, 30% unsure, 40% coral); regions below ``--min-area`` (2000 px,
a small colony at this scale) are not prompted.

    .venv/bin/python bench/bench_infer.py [--device cuda]
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
from pathlib import Path

import cv2
import numpy as np
import torch
from PIL import Image

REPO = Path(__file__).resolve().parents[1]
CONFIG = REPO / "configs" / "dinov2-vitb14-segformer_150e_criobe-finegrained-518x518.py"
DEFAULT_DATA = REPO.parent / "shared" / "data" / "quadrats"


def mosaic(folder: Path, size: int = 1920) -> np.ndarray:
    photos = sorted(folder.glob("*.jpg"))[:4]
    if len(photos) < 4:
        raise SystemExit(f"need 4 quadrat photos in {folder}")
    half = size // 2
    tiles = [np.array(Image.open(p).convert("RGB").resize((half, half))) for p in photos]
    return np.concatenate(
        [np.concatenate(tiles[:2], axis=1), np.concatenate(tiles[2:], axis=1)], axis=0
    )


def timed(function, device: str):
    if device.startswith("cuda"):
        torch.cuda.synchronize()
    start = time.perf_counter()
    result = function()
    if device.startswith("cuda"):
        torch.cuda.synchronize()
    return result, time.perf_counter() - start


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--data", type=Path, default=DEFAULT_DATA, help="quadrat photos folder")
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--min-area", type=int, default=2000)
    args = parser.parse_args()
    if not args.data.is_dir():
        print(f"no quadrat photos at {args.data}; pass --data", file=sys.stderr)
        return 2

    from mmengine.config import Config
    from mmseg.apis import inference_model, init_model
    from segment_anything import SamAutomaticMaskGenerator, sam_model_registry

    from coral_core.inference.instances import RefineSettings, coral_probability, refine
    from coral_core.inference.semantic import load_semantic_model, predict, with_overlap
    from coral_core.models import build_segmentor
    from coral_core.sam_models import SamRunner, load_sam
    from coral_core.taxonomy import FINEGRAINED, MaskEncoding

    image = mosaic(args.data)
    with tempfile.TemporaryDirectory() as tmp:
        torch.manual_seed(0)
        cfg = Config.fromfile(str(CONFIG))
        cfg.model.backbone.checkpoint = None
        network = build_segmentor(cfg.model)
        network.init_weights()
        semantic_ckpt = Path(tmp) / "semantic.pth"
        encoding = MaskEncoding(FINEGRAINED).to_dict()
        meta = {"coralseg": {"encoding": encoding}}
        torch.save({"state_dict": network.state_dict(), "meta": meta}, semantic_ckpt)
        sam_ckpt = Path(tmp) / "sam_vit_b.pth"
        torch.save(sam_model_registry["vit_b"]().state_dict(), sam_ckpt)
        config = Path(tmp) / "config.py"
        cfg.dump(str(config))

        device_name = torch.cuda.get_device_name() if args.device.startswith("cuda") else "cpu"
        print(f"image {image.shape[1]}x{image.shape[0]}, device: {device_name}")

        reference = init_model(str(config), str(semantic_ckpt), device=args.device)
        _, naive_semantic = timed(
            lambda: inference_model(reference, image[:, :, ::-1]), args.device
        )
        sam = sam_model_registry["vit_b"](checkpoint=str(sam_ckpt)).to(args.device)
        generator = SamAutomaticMaskGenerator(sam)
        masks, naive_sam = timed(lambda: generator.generate(image), args.device)

        semantic = with_overlap(load_semantic_model(config, semantic_ckpt, args.device), 0.0)
        runner = SamRunner(load_sam(sam_ckpt, device=args.device)[0])
        prediction, ours_semantic = timed(lambda: predict(semantic, image), args.device)
        coherent = np.stack([cv2.blur(p, (61, 61)) for p in prediction.probabilities])
        coherent /= coherent.sum(axis=0, keepdims=True)
        coral = coral_probability(coherent, semantic.encoding)
        low, high = np.quantile(coral, [0.3, 0.6])
        settings = RefineSettings(float(low), float(high), min_area=args.min_area)

        def instance_stage():
            runner.set_image(image)
            return refine(coherent, semantic.encoding, runner, settings)

        result, ours_sam = timed(instance_stage, args.device)

    naive = naive_semantic + naive_sam
    ours = ours_semantic + ours_sam
    print(f"naive    : semantic {naive_semantic:6.1f}s + SAM automatic {naive_sam:6.1f}s "
          f"= {naive:6.1f}s per image ({len(masks)} masks)")  # fmt: skip
    print(f"coralseg : semantic {ours_semantic:6.1f}s + SAM prompted  {ours_sam:6.1f}s "
          f"= {ours:6.1f}s per image ({len(result.instances)} colonies)")  # fmt: skip
    print(f"speed-up : semantic {naive_semantic / ours_semantic:.1f}x, "
          f"instances {naive_sam / ours_sam:.1f}x, end to end {naive / ours:.1f}x")  # fmt: skip
    return 0


if __name__ == "__main__":
    sys.exit(main())
