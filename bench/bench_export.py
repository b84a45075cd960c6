"""Export benchmark: `coralseg prepare`'s path against FiftyOne's own mask export.

Builds a FiftyOne dataset of dense polygons from EilatMixx (../shared/data/eilat_train:
every connected region of every class becomes a filled polyline with its holes, ~500 per
image), then, in the same run on the same dataset:

* coralseg: ``read_export_samples`` + ``export_mmseg_dataset`` (what ``coralseg prepare``
  runs), writing JPEGs and label PNGs;
* FiftyOne: ``fiftyone.utils.labels.objects_to_segmentations`` writing label PNGs to disk.

Prints images per second of each, their ratio, and how many labelled pixels agree with the
original masks (FiftyOne paints later polygons on top and casts coordinates to int, so its
masks differ a little where its rules differ from CVAT's).

    .venv/bin/python bench/bench_export.py --images 20
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
import time
from pathlib import Path

os.environ.setdefault("FIFTYONE_DATABASE_NAME", "coralseg-bench")
os.environ.setdefault("FIFTYONE_DO_NOT_TRACK", "true")

import cv2
import numpy as np

from coral_core.mmseg_export import export_mmseg_dataset
from coral_core.taxonomy import EILAT, MaskEncoding

DEFAULT_DATA = Path(__file__).resolve().parents[2] / "shared" / "data" / "eilat_train"


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--data", type=Path, default=DEFAULT_DATA, help="eilat_train folder")
    parser.add_argument("--images", type=int, default=20, help="images to use (max 91)")
    parser.add_argument("--workers", type=int, default=os.cpu_count(), help="coralseg processes")
    args = parser.parse_args()
    if not (args.data / "labels").is_dir():
        print(f"no EilatMixx data at {args.data}; pass --data", file=sys.stderr)
        return 2

    import fiftyone as fo
    import fiftyone.utils.labels as foul

    from fiftyone_plugin.fiftyone_labels import semantic_mask_to_polylines
    from fiftyone_plugin.fiftyone_source import read_export_samples

    label_paths = sorted((args.data / "labels").glob("*.png"))[: args.images]
    name = "coralseg-bench-export"
    if fo.dataset_exists(name):
        fo.delete_dataset(name)
    dataset = fo.Dataset(name)
    originals = {}
    build_start = time.perf_counter()
    for path in label_paths:
        mask = cv2.imread(str(path), cv2.IMREAD_UNCHANGED)
        originals[path.stem] = mask
        dataset.add_sample(
            fo.Sample(
                filepath=str(args.data / "images" / f"{path.stem}.jpg"),
                tags=["train"],
                gt_polylines=semantic_mask_to_polylines(mask, EILAT.classes),
            )
        )
    dataset.compute_metadata()
    polylines = dataset.count("gt_polylines.polylines")
    print(
        f"dataset: {len(dataset)} images, {polylines} polylines "
        f"({polylines / len(dataset):.0f}/image), built in {time.perf_counter() - build_start:.0f}s"
    )
    encoding = MaskEncoding(EILAT)  # background 0, classes 1..10: FiftyOne's convention too
    mask_targets = dict(enumerate(encoding.label_names))

    with tempfile.TemporaryDirectory() as tmp:
        start = time.perf_counter()
        samples, _ = read_export_samples(dataset, "gt_polylines")
        export_mmseg_dataset(
            samples, Path(tmp) / "coralseg", encoding, workers=args.workers, progress=False
        )
        coralseg_seconds = time.perf_counter() - start

        start = time.perf_counter()
        foul.objects_to_segmentations(
            dataset,
            "gt_polylines",
            "fo_segmentation",
            mask_targets=mask_targets,
            output_dir=str(Path(tmp) / "fiftyone"),
        )
        fiftyone_seconds = time.perf_counter() - start

        ours = _agreement(
            originals, lambda stem: Path(tmp) / "coralseg/train/labels" / f"{stem}.png"
        )
        mask_paths = dict(
            zip(
                (Path(p).stem for p in dataset.values("filepath")),
                dataset.values("fo_segmentation.mask_path"),
                strict=True,
            )
        )
        theirs = _agreement(originals, lambda stem: Path(mask_paths[stem]))
    fo.delete_dataset(name)

    n = len(label_paths)
    workers = f"{args.workers} workers"
    rate = n / coralseg_seconds
    print(f"coralseg prepare : {rate:7.2f} images/s ({coralseg_seconds:.1f}s, {workers})")
    print(f"FiftyOne export  : {n / fiftyone_seconds:7.2f} images/s ({fiftyone_seconds:.1f}s)")
    print(f"speed-up         : {fiftyone_seconds / coralseg_seconds:7.1f}x")
    print(
        f"labelled pixels equal to the original masks: coralseg {ours:.4%}, FiftyOne {theirs:.4%}"
    )
    return 0


def _agreement(originals: dict[str, np.ndarray], path_of) -> float:
    agree = total = 0
    for stem, original in originals.items():
        written = cv2.imread(str(path_of(stem)), cv2.IMREAD_UNCHANGED)
        keep = original != 255
        agree += int(np.count_nonzero(written[keep] == original[keep] + 1))
        total += int(np.count_nonzero(keep))
    return agree / total


if __name__ == "__main__":
    sys.exit(main())
