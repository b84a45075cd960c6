"""Export benchmark: `coralseg prepare`'s path against FiftyOne's own mask export, same cores.

Builds a FiftyOne dataset of dense polygons from EilatMixx (../shared/data/eilat_train:
every connected region of every class becomes a filled polyline with its holes, ~500 per
image), then, in the same run on the same dataset:

* coralseg: ``read_export_samples`` + ``export_mmseg_dataset`` (what ``coralseg prepare``
  runs), writing label PNGs and the images (JPEGs copied): more work than FiftyOne's;
* FiftyOne: ``fiftyone.utils.labels.objects_to_segmentations`` writing label PNGs to disk.

Like for like: both run pinned to the same CPU core (``os.sched_setaffinity``), coralseg
with one worker process, after a warm-up of each on two images. FiftyOne's function has no
parallel option; coralseg's processes are timed separately (``--workers``, on that many
cores, FiftyOne again on the same cores), and labelled as such.

Prints images per second of each, their ratio, and how many labelled pixels agree with the
original masks (FiftyOne paints later polygons on top and casts coordinates to int, so its
masks differ a little where its rules differ from CVAT's).

    .venv/bin/python bench/bench_export.py --images 20 [--workers 2]
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
from _common import DATA, ratio

from coral_core.labels.taxonomy import EILAT, MaskEncoding
from coral_core.training.mmseg_export import export_mmseg_dataset


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--data", type=Path, default=DATA / "eilat_train", help="eilat_train")
    parser.add_argument("--images", type=int, default=20, help="images to use (max 91)")
    parser.add_argument(
        "--workers", type=int, default=0, help="also time coralseg with N processes on N cores"
    )
    args = parser.parse_args()
    if not (args.data / "labels").is_dir():
        print(f"no EilatMixx data at {args.data}; pass --data", file=sys.stderr)
        return 2

    import fiftyone as fo

    from fiftyone_plugin.fiftyone_labels import semantic_mask_to_polylines

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
    cores = sorted(os.sched_getaffinity(0))
    n = len(label_paths)
    try:
        with tempfile.TemporaryDirectory() as tmp:
            tmp = Path(tmp)
            os.sched_setaffinity(0, {cores[0]})
            _coralseg(dataset.limit(2), tmp / "warm-coralseg", 1)  # warm-up, not timed
            _fiftyone(dataset.limit(2), tmp / "warm-fiftyone", "fo_warmup")
            ours_s = _coralseg(dataset, tmp / "coralseg", 1)
            theirs_s = _fiftyone(dataset, tmp / "fiftyone", "fo_segmentation")
            print(f"\nsame core (cpu {cores[0]}), one process each:")
            print(f"  coralseg prepare : {n / ours_s:7.2f} images/s ({ours_s:.1f}s)")
            print(f"  FiftyOne export  : {n / theirs_s:7.2f} images/s ({theirs_s:.1f}s)")
            print(f"  ratio            : {ratio(theirs_s, ours_s):>7} (FiftyOne time / coralseg)")
            ours = _agreement(originals, lambda s: tmp / "coralseg/train/labels" / f"{s}.png")
            paths = dict(
                zip(
                    (Path(p).stem for p in dataset.values("filepath")),
                    dataset.values("fo_segmentation.mask_path"),
                    strict=True,
                )
            )
            theirs = _agreement(originals, lambda stem: Path(paths[stem]))
            print(
                f"  labelled pixels equal to the original masks: coralseg {ours:.4%}, "
                f"FiftyOne {theirs:.4%}"
            )

            if args.workers > 1:
                used = set(cores[: args.workers])
                os.sched_setaffinity(0, used)
                workers = len(used)
                parallel_s = _coralseg(dataset, tmp / "coralseg-parallel", workers)
                theirs_s = _fiftyone(dataset, tmp / "fiftyone-parallel", "fo_segmentation2")
                print(f"\n{workers} cores: coralseg with {workers} processes, FiftyOne with one")
                print(f"  coralseg prepare : {n / parallel_s:7.2f} images/s ({parallel_s:.1f}s)")
                print(f"  FiftyOne export  : {n / theirs_s:7.2f} images/s ({theirs_s:.1f}s)")
                print(f"  ratio            : {ratio(theirs_s, parallel_s):>7}")
    finally:
        os.sched_setaffinity(0, set(cores))
        fo.delete_dataset(name)
    return 0


def _coralseg(view, out: Path, workers: int) -> float:
    """Seconds of ``coralseg prepare``'s path (read the polylines, write the dataset)."""
    from fiftyone_plugin.fiftyone_source import read_export_samples

    start = time.perf_counter()
    samples, _ = read_export_samples(view, "gt_polylines")
    export_mmseg_dataset(samples, out, MaskEncoding(EILAT), workers=workers, progress=False)
    return time.perf_counter() - start


def _fiftyone(view, out: Path, field: str) -> float:
    """Seconds of FiftyOne's own export of the same polylines to label PNGs."""
    import fiftyone.utils.labels as foul

    # background 0, classes 1..10: coralseg's encoding and FiftyOne's convention alike
    mask_targets = dict(enumerate(MaskEncoding(EILAT).label_names))
    start = time.perf_counter()
    foul.objects_to_segmentations(
        view, "gt_polylines", field, mask_targets=mask_targets, output_dir=str(out)
    )
    return time.perf_counter() - start


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
