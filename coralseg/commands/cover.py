"""``coralseg cover INPUT --out DIR``: percent cover, colonies and cover error: tables, plots."""

from __future__ import annotations

import argparse
import os
from pathlib import Path

from coralseg.options import (
    add_colony_arguments,
    add_mask_meaning_arguments,
    add_scale_argument,
    mask_meaning,
    parse_scale_option,
)

DESCRIPTION = """\
Percent cover per class, colony counts and sizes, per image and per group of images (site,
year, ...), from label masks: a folder of masks, a 'coralseg prepare' folder or a
'coralseg infer' output (its colonies are the predicted instances). With --compare, how far
predicted cover is from annotated cover, in percentage points.

Cover is over the annotated area: pixels valued 255 (ignore) count in no class, and the
annotated fraction of the image (or region of interest) is reported beside it. Background
(value 0 of masks whose classes are 1..N) is reported as the class "background" unless
--exclude-background. Only colony classes have colonies; cover-only classes (a taxonomy's
`cover: true` classes, e.g. bare substrate) have cover only.

Writes into --out:
  cover_per_image.csv    image, group fields, class, pixels, cover_percent,
                         annotated_fraction, annotated_pixels, roi_pixels[, area_cm2]
  cover_per_group.csv    group, group fields, class, n_images, mean/sd/se/pooled cover
  colonies.csv           one row per colony: class, area, perimeter, max diameter,
                         centroid, bbox, touches_edge, score (px, and cm with a scale)
  colonies_per_group.csv colony counts and size distribution per group and class
  colonies.geojson       colony outlines (map coordinates where the image has a geotransform)
  cover_by_group.png     stacked mean cover per group, colony_sizes.png: size histograms
  with --compare: cover_error_per_image.csv, cover_error_per_class.csv,
  cover_error_per_group.csv, cover_agreement.png (predicted vs annotated, 1:1 line),
                         colony_metrics_per_class.csv, colony_metrics_per_image.csv
                         (colony PQ, count error, size KS; see docs/evaluation.md)
  skipped_masks.csv      masks that could not be read (file, reason), if any: the rest
                         is measured and the command exits with status 1
"""

EPILOG = """\
examples:
  coralseg cover data/eilat/train/labels --taxonomy eilat --background ignore --out cover/
  coralseg cover data/criobe_finegrained --groups '<site>_<year>_*' --quadrat-size-cm 100 \\
      --roi-margin 3% --out cover/
  coralseg cover data/criobe_finegrained --compare predictions/ --groups sites.csv \\
      --group-by site,year --out cover/

--groups takes a filename pattern (<field> captures text, * skips text; matched against
the image name without extension) or a CSV with an image column (image, filename, file,
path or name) and one column per field. --group-by picks the fields that form groups
(default: all of them).
"""


def register(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser(
        "cover",
        help="percent cover, colony counts and sizes, cover error: tidy CSVs, GeoJSON, plots",
        description=DESCRIPTION,
        epilog=EPILOG,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument(
        "input",
        metavar="INPUT",
        help="folder of label masks, a 'coralseg prepare' folder or a 'coralseg infer' output",
    )
    parser.add_argument("--out", required=True, metavar="DIR", help="folder for the outputs")
    meaning = add_mask_meaning_arguments(parser)
    meaning.add_argument(
        "--exclude-background",
        action="store_true",
        help="leave background out of the annotated area (cover over labelled classes only)",
    )
    groups = parser.add_argument_group("groups")
    groups.add_argument(
        "--groups",
        metavar="PATTERN|CSV",
        help="image fields from a filename pattern such as '<site>_<year>_<quadrat>' or "
        "from a CSV of image metadata",
    )
    groups.add_argument(
        "--group-by", metavar="FIELD[,FIELD]", help="fields that form groups (default: all)"
    )
    groups.add_argument(
        "--image-column", metavar="NAME", help="the image column of the --groups CSV"
    )
    area = parser.add_argument_group("region of interest and scale")
    area.add_argument(
        "--roi-margin",
        metavar="N|N%",
        help="measure inside the quadrat frame: cut N pixels (or N%% of each side) off every side",
    )
    area.add_argument(
        "--roi-polygon",
        metavar="'X,Y X,Y X,Y ...'",
        help="measure inside this polygon (pixel corners, the same for every image), or a "
        "CSV with columns image, roi_polygon: one polygon per image",
    )
    add_scale_argument(area)
    area.add_argument(
        "--quadrat-size-cm",
        metavar="SIDE|WxH",
        help="the region of interest (or whole image) is a quadrat of this size, e.g. 100 "
        "for CRIOBE's 1 m frame: gives each image's scale",
    )
    colonies = add_colony_arguments(parser, "colonies")
    colonies.add_argument(
        "--no-geojson", action="store_true", help="skip colonies.geojson (tracing outlines)"
    )
    colonies.add_argument(
        "--no-colonies",
        action="store_true",
        help="cover only: no colonies.csv, colonies_per_group.csv, GeoJSON or size plot",
    )
    colonies.add_argument(
        "--annotations",
        metavar="FILE",
        help="the CVAT XML or COCO JSON the masks were made from: annotated colonies are its "
        "polygons, one colony per polygon, not connected regions of the masks",
    )
    parser.add_argument(
        "--compare",
        metavar="PRED_DIR",
        help="predictions of the same images (e.g. a 'coralseg infer' output): cover error, "
        "and colony PQ, count error and size KS against the annotated colonies",
    )
    survey = parser.add_argument_group("point-count emulation (see docs/points.md)")
    survey.add_argument(
        "--point-survey",
        type=int,
        nargs="+",
        metavar="N",
        help="also estimate each image's cover as a survey of N points would (several N "
        "allowed), with its standard error over repeated draws: point_survey.csv",
    )
    survey.add_argument(
        "--survey-method",
        choices=("random", "stratified"),
        default="random",
        help="points uniform over the photo, or one in each cell of a grid (default: random)",
    )
    survey.add_argument(
        "--survey-draws",
        type=int,
        default=200,
        metavar="R",
        help="surveys drawn per image and N, for the standard error (default: 200)",
    )
    parser.set_defaults(run=run)


def _cover_settings(args: argparse.Namespace, names: list[str]):
    """The measuring settings the options give, and notes to print."""
    from coral_core.ecology.image_settings import read_roi_csv
    from coral_core.ecology.measure import CoverSettings
    from coral_core.ecology.roi import parse_roi_margin, parse_roi_polygon
    from coral_core.ecology.scale import parse_quadrat_size

    notes = []
    margin, unit = parse_roi_margin(args.roi_margin) if args.roi_margin else (None, "px")
    polygon, polygons = None, None
    if args.roi_polygon and Path(args.roi_polygon).is_file():
        polygons, missing = read_roi_csv(args.roi_polygon, names)
        if missing:
            notes.append(
                f"{len(missing)} image(s) have no polygon in {args.roi_polygon} and are "
                f"measured whole, e.g. {missing[0]}"
            )
    elif args.roi_polygon:
        polygon = parse_roi_polygon(args.roi_polygon)
    pixels_per_cm, by_image, from_geo = parse_scale_option(args.scale, names)
    settings = CoverSettings(
        roi_margin=margin,
        roi_margin_unit=unit,
        roi_polygon=polygon,
        roi_polygon_by_image=polygons,
        pixels_per_cm=pixels_per_cm,
        scale_by_image=by_image,
        quadrat_cm=parse_quadrat_size(args.quadrat_size_cm) if args.quadrat_size_cm else None,
        scale_from_geotransform=from_geo,
        colonies_from=args.colonies_from,
        min_colony_area=args.min_colony_area,
        connectivity=args.connectivity,
    )
    return settings, notes


def run(args: argparse.Namespace) -> int:
    from contextlib import nullcontext
    from dataclasses import replace

    from coral_core.ecology.colony_comparison import (
        compare_colonies,
        comparison_lines,
        write_colony_metrics,
    )
    from coral_core.ecology.drawn_colonies import images_without_polygons, read_drawn_polygons
    from coral_core.ecology.geojson import GeoJSONWriter
    from coral_core.ecology.image_fields import image_fields
    from coral_core.ecology.measure import measure_source
    from coral_core.ecology.report import (
        SKIPPED_CSV,
        summary_lines,
        write_cover_report,
        write_point_survey,
    )
    from coral_core.ecology.sources import locate_masks
    from coral_core.errors import CoralsegError

    out = Path(args.out)
    if args.point_survey and (min(args.point_survey) < 1 or args.survey_draws < 2):
        raise CoralsegError("--point-survey needs 1 or more points and --survey-draws 2 or more")
    if out.exists() and not out.is_dir():
        raise CoralsegError(f"--out {out} is a file; give a folder")
    located = dict(mask_meaning(args), exclude_background=args.exclude_background)
    source = locate_masks(args.input, **located)
    prediction_source = locate_masks(args.compare, **located) if args.compare else None
    names = [item.name for item in source.items]
    if prediction_source is not None:
        seen = set(names)
        names += [i.name for i in prediction_source.items if i.name not in seen]
    settings, notes = _cover_settings(args, names)
    group_by = None
    if args.group_by:
        group_by = [f.strip() for f in args.group_by.split(",") if f.strip()]
    described = image_fields(
        [source] + ([prediction_source] if prediction_source else []),
        names,
        args.groups,
        args.image_column,
        group_by,
    )
    fields, field_names = described.fields, described.field_names
    for note in notes + described.notes:
        print(f"note: {note}")

    try:
        out.mkdir(parents=True, exist_ok=True)
    except OSError as err:
        raise CoralsegError(f"cannot create --out {out}: {err.strerror}") from None
    if not os.access(out, os.W_OK):
        raise CoralsegError(f"cannot write into --out {out}; choose a folder you can write to")
    geojson_path = out / "colonies.geojson"
    # The GeoJSON is streamed while measuring and appears only if everything succeeds.
    no_geojson = args.no_geojson or args.no_colonies
    polygons = read_drawn_polygons(args.annotations) if args.annotations else None
    if polygons is not None:
        missing = images_without_polygons(polygons, [item.name for item in source.items])
        if missing:
            print(
                f"note: {len(missing)} image(s) have no polygons in {args.annotations}; their "
                f"colonies are connected regions of the masks, e.g. {missing[0]}"
            )
    with nullcontext() if no_geojson else GeoJSONWriter(geojson_path) as writer:
        measured = measure_source(
            source,
            settings,
            not args.no_colonies,
            writer,
            fields,
            field_names,
            "annotations",
            polygons,
        )
        predicted = None
        if prediction_source is not None:
            predicted = measure_source(
                prediction_source, settings, False, description="predictions"
            )
        report = write_cover_report(
            out, measured, fields, field_names, described.group_by, predicted
        )
        surveyed = []
        if args.point_survey:
            surveyed.append(
                write_point_survey(
                    out, source, settings, args.point_survey, args.survey_method, args.survey_draws
                )
            )

    for line in summary_lines(measured):
        print(line)
    if report.agreement is not None:
        agreement = report.agreement
        mae = agreement.class_rows()[-1]["mean_abs_error_pp"]
        print(
            f"  cover error vs {args.compare}: {len(agreement.images)} image(s), mean absolute "
            f"error {mae:.2f} percentage points over all classes"
        )
        if agreement.only_annotated:
            print(
                f"note: {len(agreement.only_annotated)} annotated image(s) have no prediction "
                f"(or nothing annotated) and are left out, e.g. {agreement.only_annotated[0]}"
            )
    if prediction_source is not None and not args.no_colonies:
        colonies, regions = compare_colonies(
            source, prediction_source, polygons, measured.pixels_per_cm
        )
        report = replace(
            report, written=(*report.written, *write_colony_metrics(out, colonies, regions))
        )
        for line in comparison_lines(colonies, regions):
            print(line)
    if writer is not None and writer.mixed:
        print(
            "note: colonies.geojson mixes map and pixel coordinates (some images lack a "
            "geotransform)"
        )
    written = [*report.written, *surveyed] + ([geojson_path] if writer is not None else [])
    print(f"wrote {len(written)} files to {out}: {', '.join(p.name for p in written)}")
    skipped = len(measured.skipped) + (len(predicted.skipped) if predicted is not None else 0)
    if skipped:
        if predicted is not None and predicted.skipped:
            print(f"  skipped {len(predicted.skipped)} unreadable prediction mask(s):")
            print("\n".join(f"    {path}: {reason}" for path, reason in predicted.skipped))
        print(f"{skipped} mask(s) could not be read and were left out (see {SKIPPED_CSV})")
        return 1
    return 0
