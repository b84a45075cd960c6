"""Make docs/images/tracking.png and measure ``coralseg track`` on the demo sample.

    .venv/bin/python docs/make_tracking_figure.py --work-dir tracking-demo

Draws the demo sample's quadrats (:mod:`coralseg.demo_sample`, the same pixels ``coralseg
demo`` draws) with their label masks, makes each quadrat's second visit with the tests'
generator (``tests/survey_fixtures.py``: colonies grown, shrunk, partly dead, dead, fused,
split, re-labelled, a recruit; the camera moved and the light changed), runs ``coralseg
track`` on the two visits, and prints its time and how many first-visit colonies got the
fate they were given. The picture of the quadrat with the most kinds of fate becomes
docs/images/tracking.png.
"""

from __future__ import annotations

import argparse
import csv
import sys
import time
from pathlib import Path

import numpy as np
from PIL import Image

REPO = Path(__file__).resolve().parents[1]
# Smaller colonies (slivers where two colonies of the sample overlap) are left out.
MIN_AREA = 20


def draw_visits(root: Path, count: int, seed: int) -> dict[str, dict[int, str]]:
    """Write ``root/{2023,2024}/{masks,photos}``; return each quadrat's expected fates."""
    from coral_core.formats.polygons import polygons_to_mask
    from coralseg.demo_sample import GENERA, draw_quadrat
    from tests.survey_fixtures import second_visit

    values = {genus.name: index + 1 for index, genus in enumerate(GENERA)}
    rng = np.random.default_rng(seed)
    expected = {}
    for year in ("2023", "2024"):
        for kind in ("masks", "photos"):
            (root / year / kind).mkdir(parents=True, exist_ok=True)
        names = "background\n" + "\n".join(g.name for g in GENERA) + "\n"
        (root / year / "masks" / "classes.txt").write_text(names)
    for index in range(count):
        photo, shapes = draw_quadrat(rng, 448, 336)
        mask = np.zeros(photo.shape[:2], np.uint8)
        for shape in shapes:  # largest first, as the sample paints them
            mask[polygons_to_mask(shape.polygons, *mask.shape)] = values[shape.label]
        visit = second_visit(
            mask, sorted(values.values()), photo=photo, seed=seed + index, min_area=MIN_AREA
        )
        name = f"quadrat_{index:03d}"
        for year, image, labels in (("2023", photo, mask), ("2024", visit.photo, visit.mask)):
            Image.fromarray(labels).save(root / year / "masks" / f"{name}.png")
            Image.fromarray(image).save(root / year / "photos" / f"{name}.jpg", quality=92)
        expected[name] = visit.expected
    return expected


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--work-dir", type=Path, default=Path("tracking-demo"))
    parser.add_argument("--count", type=int, default=30, help="quadrats (the demo draws 30)")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--out", type=Path, default=REPO / "docs" / "images" / "tracking.png")
    args = parser.parse_args(argv)
    sys.path.insert(0, str(REPO))
    from coralseg.cli import main as coralseg

    root = args.work_dir
    expected = draw_visits(root, args.count, args.seed)
    start = time.perf_counter()
    code = coralseg(
        ["track", str(root / "2023" / "masks"), str(root / "2024" / "masks"),
         "--before-images", str(root / "2023" / "photos"),
         "--after-images", str(root / "2024" / "photos"), "--min-colony-area", str(MIN_AREA),
         "--out", str(root / "fates")]
    )  # fmt: skip
    seconds = time.perf_counter() - start
    if code:
        return code
    with (root / "fates" / "links.csv").open(newline="") as handle:
        rows = list(csv.DictReader(handle))
    found: dict[tuple[str, int], str] = {}
    for row in rows:
        if row["area_before_px"]:
            found.setdefault((row["plot"], int(row["colony_id"]) - 1), row["fate"])
    truth = {(plot, i): fate for plot, fates in expected.items() for i, fate in fates.items()}
    right = sum(found.get(key) == fate for key, fate in truth.items())
    changed = {k: f for k, f in truth.items() if f != "persisted"}
    right_changed = sum(found.get(key) == fate for key, fate in changed.items())
    print(f"coralseg track: {args.count} quadrat pairs in {seconds:.1f} s")
    print(f"fates right: {right} of {len(truth)} first-visit colonies "
          f"({right_changed} of {len(changed)} changed ones)")  # fmt: skip
    for key, fate in sorted(truth.items()):
        if found.get(key) != fate:
            print(f"  {key[0]} colony {key[1] + 1}: made {fate}, found {found.get(key)}")
    args.out.parent.mkdir(parents=True, exist_ok=True)
    kinds: dict[str, set[str]] = {}
    for row in rows:
        kinds.setdefault(row["plot"], set()).add(row["fate"])
    shown = max(sorted(kinds), key=lambda plot: len(kinds[plot]))  # the most kinds of fate
    with Image.open(root / "fates" / "pictures" / f"{shown}.png") as picture:
        # 256 colours keep the guide's pictures under 300 KB (tests/test_docs.py)
        picture.convert("RGB").quantize(256).save(args.out, optimize=True)
    print(f"wrote {args.out} ({args.out.stat().st_size} bytes) from {shown}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
