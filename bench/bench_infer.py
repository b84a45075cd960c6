"""Inference benchmark, like for like: the naive two-stage path against coralseg's, same run.

One image (default: a 1920 x 1920 mosaic of four quadrat photos from ../shared/data/quadrats),
the same random-weight models for both paths: DINOv2 ViT-B/14 + SegFormer (the CRIOBE
finegrained config, 518 px windows) and SAM ViT-B.

* naive: MMSeg's ``inference_model`` in slide mode (one window at a time), then
  segment-anything's ``SamAutomaticMaskGenerator`` with its defaults on the whole image (a
  32 x 32 point grid);
* coralseg: ``TwoStagePredictor`` exactly as ``coralseg infer`` builds it: batched windows,
  then SAM prompted with one box per coral region of the semantic map.

What is equal on both sides:

* windows: the same size and the same overlap (``--overlap``, default: ``coralseg infer``'s
  default), so both visit the same windows (MMSeg's stride is set to coralseg's);
* precision: the one coralseg runs in on the device (fp32 on a CPU; fp16 on a GPU, where
  the naive semantic stage runs under ``torch.autocast`` to match), and the same float mode:
  coralseg flushes subnormal floats to zero on a CPU (``coral_core.inference.cpu_math``), a
  process-wide setting, so the naive path, in the same process, runs with it too;
* batch: each path's own (MMSeg's slide mode runs one window at a time; coralseg's default
  batch on a CPU is one ViT-B window too);
* thresholds and minimum colony area: ``coralseg infer``'s defaults, read from its parser;
* warm-up: each path runs once on a crop of the image before it is timed.

The benchmark checks that the two semantic maps agree (they must, up to float rounding, if
the comparison is like for like) and prints both paths' times and their ratios.

Random weights give a class map of per-token noise; so that the instance stage sees
colony-sized regions, as a trained model's map has, the decode head's logits are smoothed
and scaled inside the network (``_common.make_coherent``): both paths run that same network.

Quality trade-offs are printed separately (``--tradeoffs``): coralseg's semantic stage at
overlap 0 and 0.5, with their times and the fraction of pixels whose class agrees.

    .venv/bin/python bench/bench_infer.py [--device cuda] [--tradeoffs]
    .venv/bin/python bench/bench_infer.py --config tiny --size 448 --points-per-side 4  # runs?
"""

from __future__ import annotations

import argparse
import contextlib
import sys
import tempfile
from pathlib import Path

import numpy as np
import torch
from _common import (
    DATA,
    TINY_CONFIG,
    VITB_CONFIG,
    agreement,
    cli_defaults,
    device_description,
    make_coherent,
    quadrat_mosaic,
    random_sam_checkpoint,
    random_semantic_checkpoint,
    ratio,
    timed,
)


def main() -> int:
    defaults = cli_defaults("infer", "overlap", "min_threshold", "unsure_threshold", "min_area")
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--data", type=Path, default=DATA / "quadrats", help="quadrat photos")
    parser.add_argument("--size", type=int, default=1920, help="side of the test image")
    parser.add_argument("--config", choices=("vitb", "tiny"), default="vitb")
    parser.add_argument("--device", default="cpu")
    parser.add_argument(
        "--overlap",
        type=float,
        default=defaults.overlap,
        help=f"window overlap of both paths (default: coralseg infer's, {defaults.overlap})",
    )
    parser.add_argument(
        "--tradeoffs", action="store_true", help="also time coralseg at overlap 0 and 0.5"
    )
    parser.add_argument(
        "--points-per-side",
        type=int,
        default=32,
        help="the naive SAM grid (default: SAM's, 32); smaller only for a quick check that the "
        "script runs, which then is no like-for-like figure",
    )
    args = parser.parse_args()
    if not args.data.is_dir():
        print(f"no quadrat photos at {args.data}; pass --data", file=sys.stderr)
        return 2

    from mmengine.config import Config
    from mmseg.apis import inference_model, init_model
    from segment_anything import SamAutomaticMaskGenerator, sam_model_registry

    from coral_core.inference import pipeline
    from coral_core.inference.cpu_math import flush_subnormals
    from coral_core.inference.instances import RefineSettings
    from coral_core.inference.pipeline import TwoStagePredictor
    from coral_core.labels.taxonomy import EILAT, FINEGRAINED, MaskEncoding

    image = quadrat_mosaic(args.size, args.data)
    config_file, taxonomy = (VITB_CONFIG, FINEGRAINED) if args.config == "vitb" else (
        TINY_CONFIG, EILAT)  # fmt: skip
    settings = RefineSettings(
        min_threshold=defaults.min_threshold,
        unsure_threshold=defaults.unsure_threshold,
        min_area=defaults.min_area,
    )
    print(f"image {image.shape[1]}x{image.shape[0]}, {config_file.name}")
    print(f"device: {device_description(args.device)}")
    print(
        f"both paths: overlap {args.overlap}, thresholds {settings.min_threshold}/"
        f"{settings.unsure_threshold}, min area {settings.min_area} px (coralseg infer's "
        "defaults unless overridden), warm-up run first"
    )

    flush_subnormals(args.device)  # for both paths (coralseg's loaders set it anyway)
    with tempfile.TemporaryDirectory() as tmp:
        config, checkpoint = random_semantic_checkpoint(
            config_file, Path(tmp), MaskEncoding(taxonomy)
        )
        sam_checkpoint = random_sam_checkpoint(Path(tmp))

        ours = TwoStagePredictor.from_files(
            config, checkpoint, sam_checkpoint, args.device, settings, overlap=args.overlap
        )
        make_coherent(ours.semantic.network)
        window, stride = ours.semantic.window, ours.semantic.stride
        half = ours.semantic.half

        cfg = Config.fromfile(str(config))
        cfg.model.test_cfg.stride = (stride, stride)  # the windows coralseg visits
        cfg.dump(str(Path(tmp) / "naive.py"))
        reference = init_model(str(Path(tmp) / "naive.py"), str(checkpoint), device=args.device)
        make_coherent(reference)
        sam = sam_model_registry["vit_b"](checkpoint=str(sam_checkpoint)).to(args.device)
        generator = SamAutomaticMaskGenerator(sam, points_per_side=args.points_per_side)
        if args.points_per_side != 32:
            print(f"naive SAM grid {args.points_per_side}^2 points: a quick check, not a figure")
        precision = (
            torch.autocast("cuda", dtype=torch.float16) if half else contextlib.nullcontext()
        )

        def naive_semantic(rgb: np.ndarray) -> np.ndarray:
            with precision:
                result = inference_model(reference, np.ascontiguousarray(rgb[:, :, ::-1]))
            return result.pred_sem_seg.data[0].cpu().numpy().astype(np.uint8)

        semantic_clock = _SemanticClock(pipeline)
        crop = image[: window + window // 2, : window + window // 2]
        print(f"windows {window} px, stride {stride} px; warming up on a {crop.shape[1]} px crop")
        naive_semantic(crop)
        generator.generate(crop)
        ours(crop)

        naive_labels, naive_sem_s = timed(lambda: naive_semantic(image), args.device)
        masks, naive_sam_s = timed(lambda: generator.generate(image), args.device)
        semantic_clock.reset()
        result, ours_total_s = timed(lambda: ours(image), args.device)
        ours_sem_s = semantic_clock.seconds

        same = agreement(naive_labels, result.semantic_raw)
        colonies = len(result.instances.instances)
        naive_total_s = naive_sem_s + naive_sam_s
        print()
        print(f"{'':10}{'semantic':>10}{'instances':>11}{'total':>9}")
        print(
            f"{'naive':10}{naive_sem_s:9.1f}s{naive_sam_s:10.1f}s{naive_total_s:8.1f}s   "
            f"SAM automatic: {len(masks)} masks"
        )
        if ours_sem_s is not None:
            ours_inst_s = ours_total_s - ours_sem_s
            print(
                f"{'coralseg':10}{ours_sem_s:9.1f}s{ours_inst_s:10.1f}s{ours_total_s:8.1f}s   "
                f"SAM prompted: {colonies} colonies"
            )
            print(
                f"{'ratio':10}{ratio(naive_sem_s, ours_sem_s):>10}"
                f"{ratio(naive_sam_s, ours_inst_s):>11}{ratio(naive_total_s, ours_total_s):>9}"
                "   (naive time / coralseg time, same windows, precision and thresholds)"
            )
        else:
            print(f"{'coralseg':10}{'':>21}{ours_total_s:8.1f}s   {colonies} colonies")
            print(f"{'ratio':10}{'':>21}{ratio(naive_total_s, ours_total_s):>9}")
        print(f"semantic maps agree on {same:.4%} of pixels (like for like: ~100%)")

        if args.tradeoffs:
            _tradeoffs(ours, image, args.device)
    return 0


class _SemanticClock:
    """Times the semantic stage inside ``TwoStagePredictor.__call__`` (``pipeline.predict``)."""

    def __init__(self, pipeline_module) -> None:
        self.seconds: float | None = None
        original = getattr(pipeline_module, "predict", None)
        if original is None:  # the pipeline changed: only end-to-end times are reported
            return

        def clocked(*args, **kwargs):
            result, seconds = timed(lambda: original(*args, **kwargs), "cpu")
            self.seconds = (self.seconds or 0.0) + seconds
            return result

        pipeline_module.predict = clocked

    def reset(self) -> None:
        if self.seconds is not None:
            self.seconds = 0.0


def _tradeoffs(ours, image: np.ndarray, device: str) -> None:
    """coralseg's semantic stage at overlap 0 and 0.5: time and agreement of the class maps."""
    from coral_core.inference.semantic import predict, with_overlap

    print("\nquality trade-off, coralseg semantic stage only:")
    maps = {}
    for overlap in (0.0, 0.5):
        model = with_overlap(ours.semantic, overlap)
        prediction, seconds = timed(lambda m=model: predict(m, image), device)
        maps[overlap] = prediction.labels
        print(f"  overlap {overlap:3.1f}: {seconds:7.1f}s")
    same = agreement(maps[0.0], maps[0.5])
    print(f"  class maps at overlap 0 and 0.5 agree on {same:.4%} of pixels")


if __name__ == "__main__":
    sys.exit(main())
