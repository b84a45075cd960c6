"""``coralseg infer``: two-stage inference over a folder of images."""

from __future__ import annotations

import argparse

from coral_core.inference.instances import (
    DEFAULT_MIN_AREA,
    DEFAULT_MIN_THICKNESS,
    DEFAULT_MIN_THRESHOLD,
    DEFAULT_NECK_RATIO,
    DEFAULT_UNSURE_THRESHOLD,
)

DESCRIPTION = """\
Segment every image of --input-dir with a trained semantic model, refine the result into
coral colonies with SAM or CoralSCoP (--sam-checkpoint; without it, colonies are the
semantic regions), and write to --output-dir:

  visualizations/<image>.jpg        colours per class, colony outlines, a legend
  masks/<image>/instance_NNN.png    one binary mask per colony
  semantic/<image>.png              refined semantic mask (pixel value = class, see classes.txt)
  semantic_raw/<image>.png          the semantic model's own argmax
  predictions.json                  COCO instances (RLE masks, scores; pycocotools-readable)
  inference_log.txt                 what happened to each image

Images are seen at the scale the model was trained for (its config's test Resize), like
'coralseg test'. Only colony classes make colonies; cover-only classes (bare substrate,
sand, ...) stay in the semantic masks. A pixel's coral probability is the summed
probability of the colony classes: below --min-threshold it is not coral; between
--min-threshold and --unsure-threshold it is unsure, and SAM's colony mask decides it;
above, it is coral. Images over 8192 px (orthomosaics, BigTIFF) are processed tile by tile
at native resolution: semantic maps as tiled GeoTIFFs with their geotransform, colonies
merged across tiles into predictions.json. Images already done are skipped unless --redo.

Example:
  coralseg infer --input-dir photos/ --output-dir predictions/ \\
      --segformer-config configs/dinov2-vitb14-segformer_150e_criobe-finegrained-518x518.py \\
      --segformer-weights work_dirs/finegrained/best_mIoU_epoch_140.pth \\
      --sam-checkpoint checkpoints/vit_b_coralscop.pth --device cuda
"""


def register(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser(
        "infer",
        help="two-stage inference (semantic model + SAM/CoralSCoP) over a folder of images",
        description=DESCRIPTION,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument(
        "--input-dir", required=True, help="folder of images (searched recursively)"
    )
    parser.add_argument("--output-dir", required=True, help="where results go")
    parser.add_argument("--segformer-config", required=True, help="MMSeg config of the model")
    parser.add_argument("--segformer-weights", required=True, help="its checkpoint (.pth)")
    parser.add_argument(
        "--sam-checkpoint",
        help="SAM (sam_vit_b/l/h) or CoralSCoP (vit_b_coralscop.pth) checkpoint; type detected",
    )
    parser.add_argument("--device", default="cpu", help="cpu, cuda or cuda:N (default: cpu)")
    parser.add_argument(
        "--min-threshold",
        type=float,
        default=DEFAULT_MIN_THRESHOLD,
        help=f"below: not coral (default {DEFAULT_MIN_THRESHOLD})",
    )
    parser.add_argument(
        "--unsure-threshold",
        type=float,
        default=DEFAULT_UNSURE_THRESHOLD,
        help=f"below (and above --min-threshold): SAM decides (default {DEFAULT_UNSURE_THRESHOLD})",
    )
    parser.add_argument(
        "--min-area",
        type=int,
        default=DEFAULT_MIN_AREA,
        help=f"smallest colony in pixels at the model's working scale (default {DEFAULT_MIN_AREA})",
    )
    parser.add_argument(
        "--min-thickness",
        type=float,
        default=DEFAULT_MIN_THICKNESS,
        help="thinner regions are slivers, not colonies: pixels at the model's working scale "
        f"(default {DEFAULT_MIN_THICKNESS})",
    )
    parser.add_argument(
        "--neck-ratio",
        type=float,
        default=DEFAULT_NECK_RATIO,
        help="touching colonies of one genus split where the neck is narrower than this times "
        f"the thinner lobe, 0 never (default {DEFAULT_NECK_RATIO})",
    )
    parser.add_argument(
        "--overlap",
        type=float,
        default=0.0,
        help="overlap of the sliding windows, 0 to <1 (default 0: each pixel seen once; 0.5 is "
        "the config's test setting, about 3-4x slower on large images)",
    )
    parser.add_argument("--redo", action="store_true", help="process images already done again")
    parser.set_defaults(run=run)


def run(args: argparse.Namespace) -> int:
    from pathlib import Path

    from coral_core.inference.instances import RefineSettings
    from coral_core.inference.pipeline import TwoStagePredictor
    from coralseg.infer_folder import infer_folder

    settings = RefineSettings(
        min_threshold=args.min_threshold,
        unsure_threshold=args.unsure_threshold,
        min_area=args.min_area,
        min_thickness=args.min_thickness,
        neck_ratio=args.neck_ratio,
    )
    predictor = TwoStagePredictor.from_files(
        args.segformer_config,
        args.segformer_weights,
        sam_checkpoint=args.sam_checkpoint,
        device=args.device,
        settings=settings,
        overlap=args.overlap,
    )
    summary = infer_folder(predictor, Path(args.input_dir), Path(args.output_dir), redo=args.redo)
    print(summary.describe())
    return 0
