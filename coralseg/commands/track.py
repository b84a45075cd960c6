"""``coralseg track BEFORE AFTER --out DIR``: colony fates between two visits of the plots."""

from __future__ import annotations

import argparse
from pathlib import Path

from coralseg.options import (
    add_colony_arguments,
    add_mask_meaning_arguments,
    add_scale_argument,
    mask_meaning,
    parse_scale_option,
)

DESCRIPTION = """\
What happened to each colony between two visits of the same plots: the two visits' images
are aligned (photos by matched features, orthomosaics by their geotransforms), their
colonies linked by overlap, and each link given a fate: persisted (with its growth in cm2
and percent), partial_mortality (lost over 30% of its area), death, recruitment, fusion,
fission, or out_of_view. A link between two genera is kept and flagged (genus_changed).

BEFORE and AFTER are each a folder of label masks, a 'coralseg prepare' folder or a
'coralseg infer' output (its colonies are the predicted instances). Images are paired by
name, by a filename pattern with a <plot> field, or by a CSV (before, after[, plot]).
With --dataset, BEFORE and AFTER are two saved views of that FiftyOne dataset: the shared
colony id and fate are written onto their colony labels, and the tables into --out.

Writes into --out:
  links.csv             one row per link: plot, colony_id (shared by both visits),
                        after_colony_id, fate, classes, genus_changed, iou, areas (px, cm2),
                        growth_cm2, growth_percent, centroids
  fates_per_class.csv   per class: links per fate, mean growth (% and cm2) with SE
  fates_per_plot.csv    per plot: the same
  alignment.csv         per plot: method, inliers, matches, reprojection error (px),
                        residual shift, the 3x3 matrix (before pixel -> after pixel)
  colonies.geojson      both visits' colonies with visit, colony_id and fate
  pictures/<plot>.png   the pair, one colour per colony id, fates marked
"""

EPILOG = """\
examples:
  coralseg track survey2023/ survey2024/ --out fates/
  coralseg track masks2023/ masks2024/ --before-images photos2023/ \\
      --after-images photos2024/ --pairs '<plot>_<year>' --scale 18.5 --out fates/
  coralseg track ortho2023_infer/ ortho2024_infer/ --scale geotransform --residual-shift \\
      --out fates/
  coralseg track year2023 year2024 --dataset reef-survey --labels-field coralseg_colonies \\
      --pair-by plot --out fates/
"""


def register(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser(
        "track",
        help="colony fates between two surveys: growth, mortality, recruitment, fusion, fission",
        description=DESCRIPTION,
        epilog=EPILOG,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("before", metavar="BEFORE", help="the first visit's masks or infer output")
    parser.add_argument("after", metavar="AFTER", help="the second visit's, of the same kind")
    parser.add_argument("--out", required=True, metavar="DIR", help="folder for the outputs")
    add_mask_meaning_arguments(parser)
    pairing = parser.add_argument_group("pairing and alignment")
    pairing.add_argument(
        "--pairs",
        metavar="PATTERN|CSV",
        help="a filename pattern with a <plot> field, e.g. '<plot>_<year>', or a CSV with "
        "columns before, after[, plot] (default: images of the same name)",
    )
    pairing.add_argument("--before-images", metavar="DIR", help="the first visit's photos")
    pairing.add_argument("--after-images", metavar="DIR", help="the second visit's photos")
    pairing.add_argument(
        "--align",
        choices=("auto", "features", "geotransform", "none"),
        default="auto",
        help="geotransform for georeferenced rasters, features for photos (SIFT + RANSAC), "
        "none when the masks share one pixel grid (default: auto)",
    )
    pairing.add_argument(
        "--residual-shift",
        action="store_true",
        help="after aligning, measure and remove a remaining shift (phase correlation)",
    )
    linking = add_colony_arguments(parser, "colonies and fates")
    linking.add_argument(
        "--min-overlap",
        type=float,
        default=0.3,
        metavar="F",
        help="shared pixels, as a share of the smaller colony, to link two colonies (0.3)",
    )
    linking.add_argument(
        "--partial-mortality",
        type=float,
        default=0.3,
        metavar="F",
        help="a linked colony that lost more than this share of its area: partial mortality",
    )
    add_scale_argument(linking)
    parser.add_argument("--no-pictures", action="store_true", help="skip pictures/<plot>.png")
    fiftyone = parser.add_argument_group("FiftyOne: BEFORE and AFTER are saved views")
    fiftyone.add_argument("--dataset", metavar="NAME", help="the FiftyOne dataset of both visits")
    fiftyone.add_argument(
        "--labels-field",
        default="coralseg_colonies",
        help="colony labels: Detections with masks or filled Polylines (coralseg_colonies)",
    )
    fiftyone.add_argument(
        "--pair-by", metavar="FIELD", help="a sample field naming the plot (default: file name)"
    )
    parser.set_defaults(run=run)


def run(args: argparse.Namespace) -> int:
    from coral_core.ecology.geojson import GeoJSONWriter
    from coral_core.ecology.sources import locate_masks
    from coral_core.ecology.tables import write_csv
    from coral_core.errors import CoralsegError
    from coral_core.tracking.pairs import pair_visits
    from coral_core.tracking.tables import LINK_COLUMNS, alignment_row, link_rows, summary_rows
    from coral_core.tracking.visits import TrackSettings, track_plot

    out = Path(args.out)
    if out.exists() and not out.is_dir():
        raise CoralsegError(f"--out {out} is a file; give a folder")
    if args.dataset:
        return _run_on_views(args, out)
    sources = (locate_masks(args.before, **mask_meaning(args)),
               locate_masks(args.after, **mask_meaning(args)))  # fmt: skip
    pairs = pair_visits(*sources, args.pairs)
    pixels_per_cm, by_image, from_geo = parse_scale_option(
        args.scale, [i.name for s in sources for i in s.items]
    )
    settings = TrackSettings(
        align=args.align,
        residual_shift=args.residual_shift,
        before_images=args.before_images,
        after_images=args.after_images,
        colonies_from=args.colonies_from,
        connectivity=args.connectivity,
        min_colony_area=args.min_colony_area,
        min_overlap=args.min_overlap,
        partial_mortality=args.partial_mortality,
        scale=pixels_per_cm,
        scales=by_image,
        scale_from_geotransform=from_geo,
    )
    print(f"coralseg track: {len(pairs)} plot(s): {sources[0].describe()}; {sources[1].describe()}")
    try:
        out.mkdir(parents=True, exist_ok=True)
    except OSError as err:
        raise CoralsegError(f"cannot create --out {out}: {err.strerror}") from None
    rows: list[dict[str, object]] = []
    alignment_rows = []
    with GeoJSONWriter(out / "colonies.geojson") as geojson:
        for pair in pairs:
            result = track_plot(pair, sources, settings)
            rows += link_rows(
                result.plot,
                (result.before.name, result.after.name),
                result.before.colonies,
                result.after.colonies,
                result.linking,
                result.fates,
                (result.before.pixels_per_cm, result.after.pixels_per_cm),
            )
            alignment_rows.append(
                alignment_row(result.plot, result.before.name, result.after.name, result.alignment)
            )
            _write_features(geojson, result)
            if not args.no_pictures:
                _write_picture(out, result)
            counts = ", ".join(f"{n} {fate}" for fate, n in result.fates.counts().items() if n)
            print(f"  {result.plot}: {result.alignment.describe()}; {counts or 'no colonies'}")
    written = [
        write_csv(out / "links.csv", rows, LINK_COLUMNS),
        write_csv(out / "fates_per_class.csv", summary_rows(rows, "class")),
        write_csv(out / "fates_per_plot.csv", summary_rows(rows, "plot")),
        write_csv(out / "alignment.csv", alignment_rows),
    ]
    print(f"wrote {', '.join(p.name for p in written)}, colonies.geojson"
          + ("" if args.no_pictures else " and pictures/") + f" to {out}")  # fmt: skip
    return 0


def _run_on_views(args: argparse.Namespace, out: Path) -> int:
    from coral_core.ecology.tables import write_csv
    from coral_core.errors import CoralsegError
    from coral_core.tracking.tables import LINK_COLUMNS, summary_rows
    from fiftyone_plugin.fiftyone_source import load_dataset
    from fiftyone_plugin.tracking import track_views

    dataset = load_dataset(args.dataset)
    views = []
    for name in (args.before, args.after):
        if name not in dataset.list_saved_views():
            saved = ", ".join(dataset.list_saved_views()) or "none"
            raise CoralsegError(
                f"dataset {args.dataset!r} has no saved view {name!r} (saved views: {saved}); "
                "save each visit as a view"
            )
        views.append(dataset.load_saved_view(name))
    summary = track_views(*views, args.labels_field, args.pair_by)
    out.mkdir(parents=True, exist_ok=True)
    rows = summary.link_rows
    write_csv(out / "links.csv", rows, LINK_COLUMNS)
    write_csv(out / "fates_per_class.csv", summary_rows(rows, "class"))
    write_csv(out / "fates_per_plot.csv", summary.plot_rows)
    print(
        f"coralseg track: {summary.pairs} plot(s) of {args.dataset}; {summary.labels} colony "
        f"labels of {args.labels_field} given a colony_id; wrote links.csv, "
        f"fates_per_class.csv, fates_per_plot.csv to {out}"
    )
    return 0


def _write_features(geojson, result) -> None:
    from coral_core.tracking.features import visit_features

    for visit_name, visit in (("before", result.before), ("after", result.after)):
        features = visit_features(
            result.plot,
            visit_name,
            visit.name,
            visit.colonies,
            result.fates,
            visit.geo,
            visit.pixels_per_cm,
        )
        crs = None if visit.geo is None else (visit.geo.crs or "")
        geojson.add(features, crs)


def _write_picture(out: Path, result) -> None:
    from PIL import Image

    from coral_core.atomic import atomic_path
    from coral_core.tracking.picture import pair_picture
    from coral_core.tracking.visits import background_of

    picture = pair_picture(
        background_of(result.before),
        background_of(result.after),
        result.before.colonies,
        result.after.colonies,
        result.fates,
        height=min(800, max(result.before.mask.shape[0], 300)),
    )
    with atomic_path(picture_path(out, result.plot)) as partial:
        Image.fromarray(picture).save(partial, format="PNG")


def picture_path(out: Path, plot: str) -> Path:
    """``out/pictures/<plot>.png``, the plot's name made safe as a file name."""
    safe = "".join(c if c.isalnum() or c in "-_." else "_" for c in plot)
    return out / "pictures" / f"{safe}.png"
