"""Cover and colony metrics benchmark: images per second over a folder of 1920 px masks.

Builds a folder of label masks with a long side of ``--size`` pixels (default 1920): the
EilatMixx masks (../shared/data/eilat_train, ~225 colonies per image, many of a few pixels)
scaled up with nearest-neighbour sampling, or synthetic masks of random discs
(``--synthetic``, also used where the data is absent). Then, over the same files, each
stage reading the PNGs itself:

* cover: read + per-class pixel counts (``image_cover``);
* colonies: read + cover + every colony's area, perimeter, diameter, centroid, box
  (``colonies_from_labels``: each colony measured on its own box);
* outlines: the same + each colony's outline polygons (what colonies.geojson needs);
* CLI: ``coralseg cover`` end to end (tables, plots, GeoJSON), as a user runs it.

Like for like, on the first ``--naive-images`` images: the colony metrics computed the
naive way (each colony cut out as a whole-image mask, ``labels == k``, and measured on it)
against the box-local way, same masks, same numbers (checked), after a warm-up of both.

    .venv/bin/python bench/bench_cover.py [--images 20] [--size 1920] [--synthetic]
"""

from __future__ import annotations

import argparse
import importlib
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

import cv2
import numpy as np
from _common import DATA, ratio
from PIL import Image

from coral_core.ecology.colonies import colonies_from_labels, max_diameter, perimeter
from coral_core.ecology.cover import image_cover
from coral_core.ecology.legend import ClassLegend
from coral_core.labels.taxonomy import EILAT, MaskEncoding

ENCODING = MaskEncoding(EILAT, background_is_ignore=True)
LEGEND = ClassLegend.from_encoding(ENCODING)


def eilat_masks(folder: Path, count: int, size: int) -> list[np.ndarray]:
    paths = sorted(folder.glob("*.png"))[:count]
    masks = []
    for path in paths:
        mask = np.array(Image.open(path))
        scale = size / max(mask.shape)
        shape = (round(mask.shape[1] * scale), round(mask.shape[0] * scale))
        masks.append(cv2.resize(mask, shape, interpolation=cv2.INTER_NEAREST))
    return masks


def synthetic_masks(count: int, size: int, seed: int = 0) -> list[np.ndarray]:
    """Bare substrate with ~200 discs of random colony classes and sizes each."""
    rng = np.random.default_rng(seed)
    bare = EILAT.classes.index("Bare-subst.")
    masks = []
    for _ in range(count):
        mask = np.full((size, size), bare, dtype=np.uint8)
        for _ in range(200):
            value = int(rng.choice(LEGEND.colony_values))
            radius = int(np.exp(rng.uniform(np.log(2), np.log(size / 8))))
            centre = tuple(int(v) for v in rng.integers(0, size, 2))
            cv2.circle(mask, centre, radius, value, thickness=-1)
        masks.append(mask)
    return masks


def naive_colonies(mask: np.ndarray) -> list[tuple[int, float, float]]:
    """Area, perimeter and diameter of each colony, each cut out as a whole-image mask."""
    found = []
    for value in LEGEND.colony_values:
        count, labels = cv2.connectedComponents((mask == value).view(np.uint8), connectivity=8)
        for index in range(1, count):
            whole = labels == index
            found.append((int(whole.sum()), perimeter(whole), max_diameter(whole)))
    return found


def box_colonies(mask: np.ndarray) -> list[tuple[int, float, float]]:
    return [(c.area, c.perimeter, c.max_diameter) for c in colonies_from_labels(mask, LEGEND)]


def per_second(label: str, count: int, work: Callable[[], object]) -> float:
    start = time.perf_counter()
    work()
    seconds = time.perf_counter() - start
    print(f"  {label:<44} {count / seconds:7.2f} images/s  ({seconds:.2f} s)")
    return seconds


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--data", type=Path, default=DATA / "eilat_train", help="eilat_train")
    parser.add_argument("--images", type=int, default=20, help="masks in the folder")
    parser.add_argument("--size", type=int, default=1920, help="long side of the masks, px")
    parser.add_argument("--synthetic", action="store_true", help="random discs, not EilatMixx")
    parser.add_argument(
        "--naive-images", type=int, default=2, help="images for the naive comparison (slow)"
    )
    args = parser.parse_args()
    use_eilat = not args.synthetic and (args.data / "labels").is_dir()
    if use_eilat:
        masks = eilat_masks(args.data / "labels", args.images, args.size)
        source = f"EilatMixx masks scaled to {args.size} px"
    else:
        masks = synthetic_masks(args.images, args.size)
        source = f"synthetic {args.size} px masks of random discs"
    with tempfile.TemporaryDirectory(prefix="coralseg-bench-cover-") as tmp:
        folder = Path(tmp) / "labels"
        folder.mkdir()
        for index, mask in enumerate(masks):
            Image.fromarray(mask).save(folder / f"mask_{index:03d}.png")
        paths = sorted(folder.glob("*.png"))
        colonies = sum(len(colonies_from_labels(m, LEGEND)) for m in masks[:2])
        print(
            f"{len(paths)} {source}; ~{colonies // max(1, min(2, len(masks)))} colonies per image"
        )

        def read(path: Path) -> np.ndarray:
            return np.array(Image.open(path))

        per_second(
            "read + cover", len(paths), lambda: [image_cover(read(p), LEGEND) for p in paths]
        )
        per_second(
            "read + cover + colony metrics",
            len(paths),
            lambda: [
                (image_cover(m := read(p), LEGEND), colonies_from_labels(m, LEGEND)) for p in paths
            ],
        )
        per_second(
            "read + cover + colony metrics + outlines",
            len(paths),
            lambda: [
                (image_cover(m := read(p), LEGEND), colonies_from_labels(m, LEGEND, outline=True))
                for p in paths
            ],
        )
        sample = masks[: args.naive_images]
        if sample:
            print(f"colony metrics, box-local vs naive whole-image masks, {len(sample)} image(s):")
            box_colonies(sample[0][:256, :256])  # warm-up of both
            naive_colonies(sample[0][:256, :256])
            start = time.perf_counter()
            box = [box_colonies(m) for m in sample]
            box_seconds = time.perf_counter() - start
            start = time.perf_counter()
            naive = [naive_colonies(m) for m in sample]
            naive_seconds = time.perf_counter() - start
            same = all(
                len(a) == len(b) and np.allclose(sorted(a), sorted(b))
                for a, b in zip(box, naive, strict=True)
            )
            print(
                f"  box-local {box_seconds:.2f} s, naive {naive_seconds:.2f} s: "
                f"{ratio(naive_seconds, box_seconds)} faster; same measures: {same}"
            )
        from coralseg.cli import build_parser
        from coralseg.cli import main as run_coralseg

        build_parser()  # imports every command module once, outside the clock
        importlib.import_module("coral_core.ecology.report")  # and the plotting stack it uses

        out = Path(tmp) / "cover"
        command = ["cover", str(folder), "--taxonomy", "eilat", "--background", "ignore"]
        per_second(
            "coralseg cover (tables, plots, GeoJSON)",
            len(paths),
            lambda: run_coralseg([*command, "--out", str(out)]),
        )
    return 0


if __name__ == "__main__":
    sys.exit(main())
