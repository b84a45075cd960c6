"""Colony quality of the instance stage on a finished ``coralseg demo`` (not a test).

The demo's sample is drawn, so its colonies are known: one polygon each in
``sample/annotations.xml``. For every photo of a split, the demo's model predicts once and
the instance stage runs with each rule set on that prediction:

* ``regions``: connected regions of the raw semantic map (the first stage alone);
* ``before``: the instance stage without this version's rules (no split of touching colonies,
  no sliver rule) on the config's half-window stride: what the demo gave before them;
* ``rules``: the default :class:`RefineSettings` on that same prediction (the rules alone);
* ``after``: the default :class:`RefineSettings` on the default windows
  (:data:`coral_core.inference.pipeline.DEFAULT_OVERLAP`), what every path gives now.

Sizes are at the model's working scale, converted to each photo's pixels as
:class:`coral_core.inference.pipeline.TwoStagePredictor` does. It prints colony PQ, count
error (mean absolute per image, largest relative) and the smallest predicted colony next to
the smallest drawn one, per rule set, then per image.

    .venv/bin/python bench/bench_colonies.py --demo-dir coralseg-demo [--split Test]
"""

from __future__ import annotations

import argparse
import sys
from dataclasses import replace
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from coral_core.ecology.colonies import component_instances  # noqa: E402
from coral_core.ecology.legend import ClassLegend  # noqa: E402
from coral_core.evaluation.colony_metrics import ImageColonies, evaluate_colonies  # noqa: E402
from coral_core.formats.raster_io import open_image  # noqa: E402
from coral_core.inference.instances import RefineSettings, refine  # noqa: E402

TINY_CONFIG = REPO / "configs" / "dinov2-vits14-segformer_tiny-cpu_eilat-224x224.py"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--demo-dir", required=True, type=Path)
    parser.add_argument("--split", default="Test", help="CVAT subset of the sample (Test)")
    parser.add_argument("--checkpoint", type=Path, help="default: the demo's last checkpoint")
    parser.add_argument("--min-area", type=int, help="min_area of every rule set (model pixels)")
    parser.add_argument(
        "--min-thickness", type=float, help="min_thickness of the new rules (model pixels)"
    )
    parser.add_argument("--neck-ratio", type=float, help="neck_ratio of the new rules")
    args = parser.parse_args()

    from coral_core.ecology.drawn_colonies import drawn_colonies, read_drawn_polygons
    from coral_core.formats.annotations import read_annotations
    from coral_core.inference.pipeline import DEFAULT_OVERLAP
    from coral_core.inference.semantic import (
        load_semantic_model,
        photo_pixels_per_model_pixel,
        predict,
        with_overlap,
    )

    sample = args.demo_dir / "sample"
    checkpoint = args.checkpoint or max(
        (args.demo_dir / "train").glob("iter_*.pth"), key=lambda p: int(p.stem.split("_")[1])
    )
    strided = load_semantic_model(TINY_CONFIG, checkpoint)
    model = with_overlap(strided, DEFAULT_OVERLAP)
    encoding = model.encoding
    legend = ClassLegend.from_encoding(encoding)
    names = {v: encoding.label_names[v] for v in encoding.colony_values}
    polygons = read_drawn_polygons(sample / "annotations.xml")
    images = [i for i in read_annotations(sample / "annotations.xml").images]
    images = [i for i in images if (i.subset or "").lower() == args.split.lower()]
    defaults = RefineSettings()
    if args.min_area:
        defaults = replace(defaults, min_area=args.min_area)
    if args.min_thickness is not None:
        defaults = replace(defaults, min_thickness=args.min_thickness)
    if args.neck_ratio is not None:
        defaults = replace(defaults, neck_ratio=args.neck_ratio)
    old_rules = replace(defaults, min_thickness=0, neck_ratio=0)
    rule_sets = {"before": (True, old_rules), "rules": (True, defaults), "after": (False, defaults)}
    scored = {name: [] for name in ("regions", *rule_sets)}
    smallest_drawn = None
    for image in images:
        pixels = open_image(sample / "images" / image.name).read()
        prediction = predict(model, pixels)
        by_stride = predict(strided, pixels)
        stem = Path(image.name).stem
        truth = drawn_colonies(polygons[stem], prediction.shape, legend)
        smallest_drawn = min([smallest_drawn or 10**9, *(c.area for c in truth)])
        regions = component_instances(prediction.labels, names)
        scored["regions"].append(ImageColonies(stem, regions, truth))
        for name, (stride, settings) in rule_sets.items():
            in_photo = settings.at_photo_scale(
                photo_pixels_per_model_pixel(model, *pixels.shape[:2])
            )
            found = refine(by_stride if stride else prediction, encoding, None, in_photo).instances
            scored[name].append(ImageColonies(stem, found, truth))
    print(f"{len(images)} {args.split} photos of {sample}, model {checkpoint}")
    print(f"smallest drawn colony: {smallest_drawn} px")
    classes = [names[v] for v in sorted(names)]
    for name, per_image in scored.items():
        result = evaluate_colonies(per_image, classes)
        smallest = min((int(c.mask.sum()) for i in per_image for c in i.predicted), default=0)
        print(
            f"{name:>8}: {result.summary_line()}; largest relative count error "
            f"{result.max_relative_count_error * 100:.0f}%; smallest colony {smallest} px"
        )
    print("per image (predicted / drawn):")
    for index, image in enumerate(scored["after"]):
        counts = ", ".join(f"{name} {scored[name][index].predicted.__len__()}" for name in scored)
        print(f"  {image.name}: {counts} / drawn {len(image.true)}")


if __name__ == "__main__":
    main()
