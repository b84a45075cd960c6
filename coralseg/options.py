"""Command-line options shared by several commands."""

from __future__ import annotations

import argparse


def add_cfg_options_argument(parser: argparse.ArgumentParser) -> None:
    """``--cfg-options key=value ...``: override config entries, as MMSeg's tools do."""
    from mmengine.config import DictAction

    parser.add_argument(
        "--cfg-options",
        nargs="+",
        action=DictAction,
        metavar="KEY=VALUE",
        help="override config entries, e.g. train_dataloader.batch_size=2 "
        "model.backbone.frozen=False",
    )


def add_evaluation_arguments(parser: argparse.ArgumentParser) -> None:
    """CONFIG CHECKPOINT and the options every evaluation command shares."""
    parser.add_argument("config", help="the MMSeg config the checkpoint was trained with")
    parser.add_argument("checkpoint", help="a .pth checkpoint, e.g. WORK_DIR/best_mIoU_epoch_N.pth")
    parser.add_argument(
        "--split", choices=("val", "test"), default="test", help="which split (default: test)"
    )
    parser.add_argument("--data", metavar="DIR", help="a 'coralseg prepare' folder to test on")
    parser.add_argument("--work-dir", help="keep the run's logs here (default: a temp folder)")


def run_evaluation(args: argparse.Namespace, **settings):
    """Evaluate ``args.checkpoint`` as the evaluation arguments say; ``settings`` go to
    :func:`coral_core.evaluation.runner.prepare_test_config` (``tta``, ``show_dir``,
    ``output_dir``).
    """
    import tempfile

    from coral_core.evaluation.runner import evaluate, prepare_test_config

    with tempfile.TemporaryDirectory(prefix="coralseg-eval-") as work_dir:
        cfg = prepare_test_config(
            args.config,
            args.checkpoint,
            work_dir=args.work_dir or work_dir,
            split=args.split,
            data_dir=args.data,
            cfg_options=args.cfg_options,
            **settings,
        )
        return evaluate(cfg)


# --- label masks: what their values mean, their colonies, their scale (cover and track) -----

GEOTRANSFORM = "geotransform"  # --scale geotransform: from each GeoTIFF's pixel size


def add_mask_meaning_arguments(parser: argparse.ArgumentParser) -> argparse._ArgumentGroup:
    """--taxonomy, --classes, --background: what the values of label masks mean."""
    meaning = parser.add_argument_group("what the mask values mean")
    meaning.add_argument(
        "--taxonomy",
        help="finegrained, extended, families, agnostic, eilat, or a taxonomy .yaml/.json "
        "file (default: from manifest.json or classes.txt)",
    )
    meaning.add_argument(
        "--classes", metavar="FILE", help="a classes.txt: line i names pixel value i"
    )
    meaning.add_argument(
        "--background",
        choices=("class", "ignore"),
        default="class",
        help="with --taxonomy: masks with 0 = background, 1..N = classes (class, the default) "
        "or 0..N-1 = classes, 255 = background (ignore), as 'coralseg prepare --background'",
    )
    return meaning


def mask_meaning(args: argparse.Namespace) -> dict[str, object]:
    """The keyword arguments of :func:`coral_core.ecology.sources.locate_masks` that
    :func:`add_mask_meaning_arguments` gives."""
    return {"taxonomy": args.taxonomy, "classes_file": args.classes, "background": args.background}


def add_colony_arguments(parser: argparse.ArgumentParser, title: str) -> argparse._ArgumentGroup:
    """--colonies-from, --min-colony-area, --connectivity: how colonies are found."""
    colonies = parser.add_argument_group(title)
    colonies.add_argument(
        "--colonies-from",
        choices=("auto", "labels", "instances"),
        default="auto",
        help="connected regions of each colony class (labels) or predicted instances "
        "(default: instances for 'coralseg infer' outputs, labels otherwise)",
    )
    colonies.add_argument(
        "--min-colony-area",
        type=int,
        default=1,
        metavar="PX",
        help="leave out colonies of fewer pixels (default: 1)",
    )
    colonies.add_argument(
        "--connectivity",
        type=int,
        choices=(4, 8),
        default=8,
        help="pixels touching at a corner belong to one colony (8, default) or not (4)",
    )
    return colonies


def add_scale_argument(group: argparse._ArgumentGroup) -> None:
    """--scale: pixels per cm, a scale CSV, or 'geotransform'."""
    group.add_argument(
        "--scale",
        metavar="PX_PER_CM|CSV|geotransform",
        help="pixels per cm of every image, a CSV with columns image, pixels_per_cm, or "
        "'geotransform': from each GeoTIFF mask's (or photo's) pixel size in a metric CRS",
    )


def parse_scale_option(
    text: str | None, names: list[str]
) -> tuple[float | None, dict[str, float] | None, bool]:
    """``--scale`` as ``(pixels per cm, {image name: pixels per cm}, from geotransforms)``."""
    from coral_core.ecology.image_settings import parse_scale

    if not text:
        return None, None, False
    if text.strip().lower() == GEOTRANSFORM:
        return None, None, True
    pixels_per_cm, by_image = parse_scale(text, names)
    return pixels_per_cm, by_image, False
