"""``coralseg prepare DATASET``: FiftyOne polylines -> an MMSegmentation training folder."""

from __future__ import annotations

import argparse

from coralseg.env import env_default, env_help

DESCRIPTION = """\
Rasterize the polygons of a FiftyOne dataset into label masks and write the folder layout
MMSegmentation trains on: <out>/{train,val,test}/{data,labels}, classes.txt, palette.txt,
dataset_info.py (import it from an MMSeg config) and manifest.json.

Splits come from sample tags (train, val/validation, test). Where colonies overlap, the
smaller stays on top; holes are kept; parts outside the image are clipped; degenerate
polygons are dropped and counted. Label masks: 0 = background, 1..N = classes, 255 = ignore
(with --background ignore: 0..N-1 = classes, 255 = background).

Point labels (a CoralNet CSV or CPCe files brought in by 'coralseg import', in the
'gt_points' field) are used when the dataset has them: a photo labelled by points only
gets a mask that is 255 except at its points (--points sparse) or over the superpixels
around them (--points superpixels); a photo with polygons and points keeps its polygons'
mask with the points on top. Train such folders with the point-label loss (the
configs/_base_/losses/point_labels.py layer, e.g.
configs/dinov2-vits14-segformer_tiny-cpu_eilat-points-224x224.py).
"""

EPILOG = """\
example:
  coralseg prepare criobe_quadrats --taxonomy families --out data/criobe_families --size 1024

Options can also come from CORALSEG_* environment variables or a ./.env file; flags win.
"""


def register(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser(
        "prepare",
        help="export FiftyOne polylines as an MMSegmentation dataset (masks + config)",
        description=DESCRIPTION,
        epilog=EPILOG,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument(
        "dataset",
        nargs="?",
        default=env_default("DATASET"),
        help="FiftyOne dataset name" + env_help("DATASET"),
    )
    parser.add_argument(
        "--field",
        default=env_default("FIELD", "gt_polylines"),
        help="fo.Polylines field to export (default: gt_polylines)" + env_help("FIELD"),
    )
    parser.add_argument(
        "--taxonomy",
        default=env_default("TAXONOMY", "finegrained"),
        help="finegrained, extended, families, agnostic, eilat, or a taxonomy .yaml/.json file "
        "(default: finegrained)" + env_help("TAXONOMY"),
    )
    parser.add_argument(
        "--label-map",
        action="append",
        default=[m for m in (env_default("LABEL_MAP") or "").split(";") if m],
        metavar="LABEL=CLASS",
        help="map a CVAT label onto a taxonomy class (repeatable), or a YAML file of such "
        "pairs" + env_help("LABEL_MAP") + " (';'-separated)",
    )
    parser.add_argument(
        "--skip-unknown",
        action="store_true",
        default=env_default("SKIP_UNKNOWN", "") in {"1", "true", "yes"},
        help="drop polygons whose label the taxonomy does not know, instead of stopping"
        + env_help("SKIP_UNKNOWN"),
    )
    parser.add_argument(
        "--out",
        default=env_default("OUT"),
        help="output folder (default: data/<dataset>-<taxonomy>)" + env_help("OUT"),
    )
    parser.add_argument(
        "--size",
        type=int,
        default=_int_or_none(env_default("SIZE")),
        help="resize so the long side has SIZE pixels (default: keep)" + env_help("SIZE"),
    )
    parser.add_argument(
        "--background",
        choices=("class", "ignore"),
        default=env_default("BACKGROUND", "class"),
        help="background as class 0 (default) or as ignore (255)" + env_help("BACKGROUND"),
    )
    parser.add_argument(
        "--split",
        metavar="TRAIN,VAL[,TEST]",
        default=env_default("SPLIT"),
        help="split samples without a split tag reproducibly with these ratios, e.g. "
        "0.8,0.1,0.1 (default: leave them out)" + env_help("SPLIT"),
    )
    parser.add_argument("--seed", type=int, default=0, help="seed of --split (default: 0)")
    parser.add_argument(
        "--points",
        choices=("sparse", "superpixels", "none"),
        default="sparse",
        help="how point labels become masks: sparse (labels only at the points), "
        "superpixels (each point's class spread over similar pixels around it), or none "
        "(leave them out) (default: sparse)",
    )
    parser.add_argument(
        "--points-field",
        default="gt_points",
        metavar="FIELD",
        help="fo.Keypoints field of point labels, used when the dataset has it "
        "(default: gt_points)",
    )
    parser.add_argument(
        "--point-radius",
        type=int,
        default=None,
        metavar="PX",
        help="radius in pixels of the disc each point labels in the written mask (default: 2)",
    )
    parser.add_argument(
        "--overwrite", action="store_true", help="replace the output folder if it exists"
    )
    parser.add_argument(
        "--workers",
        type=int,
        default=_int_or_none(env_default("WORKERS")),
        help="parallel processes (default: all CPUs)" + env_help("WORKERS"),
    )
    parser.set_defaults(run=run)


def _int_or_none(text: str | None) -> int | None:
    return int(text) if text else None


def run(args: argparse.Namespace) -> int:
    from pathlib import Path

    from coral_core.errors import CoralsegError
    from coral_core.labels.point_labels import DEFAULT_POINT_RADIUS
    from coral_core.labels.taxonomy import get_taxonomy, parse_label_map, with_label_map
    from coral_core.training.mmseg_export import PointMasks
    from coral_core.training.splits import parse_ratios
    from fiftyone_plugin.fiftyone_source import keypoints_fields, load_dataset
    from fiftyone_plugin.mask_export import export_masks

    if not args.dataset:
        raise CoralsegError("name the FiftyOne dataset to export (or set CORALSEG_DATASET)")
    taxonomy = with_label_map(get_taxonomy(args.taxonomy), parse_label_map(args.label_map))
    ratios = parse_ratios(args.split) if args.split else None
    out = Path(args.out or f"data/{args.dataset}-{taxonomy.name}")
    dataset = load_dataset(args.dataset)
    points_field = None
    asked_for_points = (
        args.points == "superpixels"
        or args.point_radius is not None
        or args.points_field != "gt_points"
    )
    if args.points != "none" and args.points_field in keypoints_fields(dataset):
        points_field = args.points_field
    elif args.points != "none" and asked_for_points:
        raise CoralsegError(
            f"the dataset has no point labels in {args.points_field!r}; import them with "
            "'coralseg import' (a CoralNet CSV or CPCe files), or drop the point options"
        )
    radius = DEFAULT_POINT_RADIUS if args.point_radius is None else args.point_radius
    point_masks = PointMasks("sparse" if args.points == "none" else args.points, radius)
    result = export_masks(
        dataset,
        out,
        taxonomy,
        field=args.field,
        background_is_ignore=args.background == "ignore",
        split_ratios=ratios,
        seed=args.seed,
        size=args.size,
        overwrite=args.overwrite,
        skip_unknown=args.skip_unknown,
        workers=args.workers,
        progress=True,
        points_field=points_field,
        points=point_masks,
    )
    if result.source.without_split:
        print(
            f"note: {len(result.source.without_split)} sample(s) have no train/val/test tag and "
            "were left out (tag them, or pass --split 0.8,0.1,0.1), e.g. "
            f"{result.source.without_split[0]}"
        )
    print("\n".join(line for line in result.lines() if "without a train/val/test" not in line))
    print(f"train with: _base_ = ['{result.summary.out_dir / 'dataset_info.py'}']")
    if sum(result.summary.point_samples.values()):
        print(
            "  point labels: train with the point-label loss, e.g. coralseg train "
            "configs/dinov2-vits14-segformer_tiny-cpu_eilat-points-224x224.py --data "
            f"{result.summary.out_dir}"
        )
    return 0
