"""``coralseg import``: a CVAT XML, COCO, CoralNet CSV or CPCe export plus its images -> a
FiftyOne dataset."""

from __future__ import annotations

import argparse

DESCRIPTION = """\
Import annotations exported from CVAT (or any tool writing COCO) into a persistent FiftyOne
dataset, without a CVAT server: the same layout 'coralseg pull-cvat' makes, so 'coralseg
prepare' and the FiftyOne App work on it alike. Each image becomes a sample (the image stays
where it is), its polygons, polylines and masks the 'gt_polylines' field, and its CVAT subset
a train/val/test tag.

Formats: 'CVAT for images 1.1' (annotations.xml: polygons, polylines, masks) and 'COCO 1.0'
(instances_<subset>.json: polygons and RLE masks). Rectangles, points, ellipses, tags and
tracks are not colonies: they are counted and left out.

Point surveys: CoralNet's annotation CSV (Name, Row, Column, Label; other columns are kept)
and CPCe .cpc files become the 'gt_points' field (fo.Keypoints with the class). Their label
codes map to classes through --label-codes (a CSV 'code,class' or YAML 'code: class' file;
codes that are class names need no line). A photo in a polygon file and a point file gets
both. See docs/points.md.
"""

EPILOG = """\
examples:
  coralseg import annotations.xml --images images/ --dataset "Moorea 2025"
  coralseg import annotations/instances_Train.json annotations/instances_Validation.json \\
      --images images/ --dataset moorea --taxonomy finegrained
  coralseg import export.json --images photos/ --dataset quadrats --subset train --overwrite
  coralseg import annotations.csv --images photos/ --dataset survey --taxonomy eilat \\
      --label-codes codes.csv --subset train

Nothing is half-made: every check runs first, and the dataset appears only when complete.
"""


def register(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser(
        "import",
        help="import a CVAT XML or COCO export and its images into a FiftyOne dataset",
        description=DESCRIPTION,
        epilog=EPILOG,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument(
        "annotations",
        nargs="+",
        metavar="FILE",
        help="annotation files: CVAT for images 1.1 (.xml), COCO (.json), CoralNet "
        "annotation CSV (.csv) or CPCe (.cpc)",
    )
    parser.add_argument(
        "--images", required=True, metavar="DIR", help="the folder holding the images"
    )
    parser.add_argument(
        "--dataset", required=True, metavar="NAME", help="name of the FiftyOne dataset to create"
    )
    parser.add_argument(
        "--subset",
        metavar="NAME",
        help="subset (train, val, test, or any CVAT subset name) of images the files give "
        "none; COCO files named instances_<subset>.json give their own",
    )
    parser.add_argument(
        "--taxonomy",
        help="check that every label belongs to this taxonomy (a built-in name or a "
        ".yaml/.json file); without it any label is imported",
    )
    parser.add_argument(
        "--label-map",
        action="append",
        default=[],
        metavar="LABEL=CLASS",
        help="with --taxonomy: a label that stands for a class (repeatable; give the same "
        "to 'coralseg prepare')",
    )
    parser.add_argument(
        "--label-codes",
        metavar="FILE",
        help="point surveys: a file mapping label codes to classes (CSV 'code,class' rows or "
        "YAML 'code: class'); codes that are class names need none",
    )
    parser.add_argument(
        "--skip-missing",
        action="store_true",
        help="leave out annotated images that are not in --images instead of stopping",
    )
    parser.add_argument(
        "--mask-tolerance",
        type=float,
        default=None,
        metavar="PX",
        help="how far (pixels) mask outlines may move when turned into polygons; 0 keeps "
        "them exact (default: half a pixel)",
    )
    parser.add_argument("--overwrite", action="store_true", help="replace the dataset if it exists")
    parser.set_defaults(run=run)


def run(args: argparse.Namespace) -> int:
    from coral_core.errors import CoralsegError
    from coral_core.formats.annotations import read_label_codes
    from coral_core.formats.cvat_polylines import DEFAULT_MASK_TOLERANCE
    from coral_core.labels.taxonomy import get_taxonomy, parse_label_map, with_label_map
    from fiftyone_plugin.importing import import_annotations

    if args.label_map and not args.taxonomy:
        raise CoralsegError("--label-map needs --taxonomy (the labels are checked against it)")
    taxonomy = None
    if args.taxonomy:
        taxonomy = with_label_map(get_taxonomy(args.taxonomy), parse_label_map(args.label_map))
    tolerance = DEFAULT_MASK_TOLERANCE if args.mask_tolerance is None else args.mask_tolerance
    if not tolerance >= 0:
        raise CoralsegError(f"--mask-tolerance must be 0 or more pixels, got {tolerance}")
    report = import_annotations(
        args.dataset,
        args.annotations,
        args.images,
        subset=args.subset,
        taxonomy=taxonomy,
        skip_missing=args.skip_missing,
        overwrite=args.overwrite,
        tolerance=tolerance,
        label_codes=read_label_codes(args.label_codes) if args.label_codes else None,
    )
    print(report.summary())
    print(f"next: coralseg prepare {_quoted(args.dataset)} --taxonomy TAXONOMY --out data/NAME")
    return 0


def _quoted(name: str) -> str:
    import shlex

    return shlex.quote(name)
