"""``coralseg ensemble PRED.json PRED.json ...``: merge COCO instance predictions of models."""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from coral_core.ensemble import EnsembleResult

DESCRIPTION = """\
Merge the instance predictions of several models (e.g. a YOLO segmentation model and
coralseg's own) made on the same images into one COCO file.

Prediction files: a COCO file with "images", "categories" and "annotations" (each with a
"score"), or a COCO results list [{image_id, category_id, segmentation, score}, ...] whose
images and categories come from --images / --categories (a COCO file such as the one
inference ran on, or a JSON list of image or category records). Segmentations are RLEs or
polygons. Images are matched by file name (base name, unless a file repeats one), categories
by name ignoring case and spacing, after --label-map and --taxonomy.

Strategies:
  weighted  cluster overlapping instances of all sources (mask IoU >= --iou, at most one
            per source); each cluster gives one instance: score = weighted mean of the
            members' scores, mask = pixels with at least half of the votes, label = most
            votes (a vote = source weight x score)
  voting    the same clusters, kept when at least --min-votes sources agree; majority label,
            the mask of the highest-scoring member, the weighted mean score
  nms       all instances, scores times source weights, greedy mask-IoU suppression per
            category (or across categories with --class-agnostic)

The output reuses the first file's image and category ids: put the predictions whose
ground truth you evaluate against first. It loads with pycocotools (COCO(path), and its
"annotations" with loadRes).
"""

EPILOG = """\
example:
  coralseg ensemble coralseg_preds.json yolo_preds.json --images test.json \\
      --weights 1,0.7 --label-map acropora_tabular=Acropora --out merged.json
"""


def register(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser(
        "ensemble",
        help="merge COCO instance predictions of several models (weighted fusion, voting, NMS)",
        description=DESCRIPTION,
        epilog=EPILOG,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument(
        "predictions", nargs="+", metavar="PRED.json", help="two or more prediction files"
    )
    parser.add_argument("--out", required=True, metavar="FILE", help="the merged COCO file")
    parser.add_argument(
        "--strategy",
        choices=("weighted", "voting", "nms"),
        default="weighted",
        help="how to merge (default: weighted)",
    )
    parser.add_argument(
        "--weights",
        metavar="W1,W2,...",
        help="one positive weight per prediction file, in order (default: all 1)",
    )
    parser.add_argument(
        "--iou",
        type=float,
        default=0.5,
        help="mask IoU at which two instances are the same object (default: 0.5)",
    )
    parser.add_argument(
        "--min-votes",
        type=int,
        default=2,
        help="voting: keep objects predicted by at least this many files (default: 2)",
    )
    parser.add_argument(
        "--class-agnostic",
        action="store_true",
        help="nms: suppress overlapping instances whatever their categories",
    )
    parser.add_argument(
        "--label-map",
        action="append",
        default=[],
        metavar="LABEL=CLASS",
        help="treat category LABEL as CLASS (repeatable), or a YAML/JSON file of such pairs",
    )
    parser.add_argument(
        "--taxonomy",
        help="resolve category names through a taxonomy (a built-in name or a .yaml/.json "
        "file); categories it does not know are dropped",
    )
    parser.add_argument(
        "--images",
        action="append",
        default=[],
        metavar="FILE",
        help="images of the results lists: one file for all, or one per results list in order",
    )
    parser.add_argument(
        "--categories",
        action="append",
        default=[],
        metavar="FILE",
        help="categories of the results lists, as --images (default: from the images file)",
    )
    parser.set_defaults(run=run)


def _parse_weights(text: str) -> tuple[float, ...]:
    from coral_core.errors import CoralsegError

    try:
        return tuple(float(part) for part in text.split(","))
    except ValueError:
        raise CoralsegError(
            f"--weights must be numbers separated by commas, one per prediction file, e.g. "
            f"1,0.5; got {text!r}"
        ) from None


def run(args: argparse.Namespace) -> int:
    from coral_core.ensemble import EnsembleSettings, ensemble
    from coral_core.ensemble.prediction_files import read_prediction_files, write_result_set
    from coral_core.errors import CoralsegError
    from coral_core.labels.taxonomy import get_taxonomy, parse_label_map

    out = Path(args.out)
    if any(out.resolve() == Path(p).resolve() for p in args.predictions):
        raise CoralsegError(f"--out {out} is one of the prediction files; choose another name")
    settings = EnsembleSettings(
        strategy=args.strategy,
        weights=_parse_weights(args.weights) if args.weights else None,
        iou=args.iou,
        min_votes=args.min_votes,
        class_agnostic=args.class_agnostic,
        label_map=parse_label_map(args.label_map),
        taxonomy=get_taxonomy(args.taxonomy) if args.taxonomy else None,
    )
    sources = read_prediction_files(args.predictions, args.images, args.categories)
    result = ensemble(sources, settings)
    write_result_set(
        out,
        result.merged,
        info={
            "description": f"coralseg ensemble ({settings.strategy})",
            "sources": [s.name for s in result.sources],
            "weights": [s.weight for s in result.sources],
            "strategy": settings.strategy,
            "iou": settings.iou,
            **({"min_votes": settings.min_votes} if settings.strategy == "voting" else {}),
            **({"class_agnostic": settings.class_agnostic} if settings.strategy == "nms" else {}),
        },
    )
    _print_summary(result, out)
    return 0


def _print_summary(result: EnsembleResult, out: Path) -> None:
    settings = result.settings
    merged = result.merged
    print(
        f"{settings.strategy} ensemble (mask IoU >= {settings.iou:g}) of {len(result.sources)} "
        f"files -> {out}"
    )
    width = max(len(s.name) for s in result.sources)
    print(f"  {'file':<{width}}  weight  instances  used")
    for source in result.sources:
        print(
            f"  {source.name:<{width}}  {source.weight:>6g}  {source.instances:>9}  "
            f"{source.used:>4}"
        )
    print(
        f"  merged: {len(merged.instances)} instances on {len(merged.images)} images, "
        f"{len(merged.categories)} categories"
    )
    for source in result.sources:
        for reason, count in source.dropped.items():
            print(f"note: {source.name}: dropped {count} prediction(s): {reason}")
        if source.unknown_categories:
            print(
                f"note: {source.name}: categories unknown to the taxonomy (dropped): "
                f"{', '.join(source.unknown_categories)}"
            )
        if source.unmatched_categories:
            print(
                f"note: {source.name}: categories no other file has: "
                f"{', '.join(source.unmatched_categories)}"
            )
        if source.unmatched_images:
            names = source.unmatched_images
            shown = ", ".join(names[:5]) + (", ..." if len(names) > 5 else "")
            print(f"note: {source.name}: {len(names)} image(s) no other file has: {shown}")
