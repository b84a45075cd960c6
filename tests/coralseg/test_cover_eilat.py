"""``coralseg cover`` on the real EilatMixx masks (../shared/data/eilat_train): the pixels
per class summed over the 91 images equal the counts in the folder's README, which are
rounded (to 0.01M, or 0.1M above 10M): they agree within half a unit of their last digit."""

from __future__ import annotations

import csv
import re
from collections import Counter
from pathlib import Path

import pytest

from coral_core.labels.taxonomy import EILAT
from coralseg.cli import main

pytestmark = pytest.mark.shared_data


def readme_counts(readme: Path) -> dict[int, tuple[float, float]]:
    """``{pixel value: (count, rounding tolerance)}`` from "Pixel counts over the split"."""
    text = readme.read_text(encoding="utf-8")
    paragraph = text[text.index("Pixel counts over the split") :].split("\n\n")[0]
    counts = {}
    for value, number in re.findall(r"\b(\d+): (\d+(?:\.\d+)?)M\b", paragraph):
        decimals = len(number.partition(".")[2])
        counts[int(value)] = (float(number) * 1e6, 0.5 * 10.0**-decimals * 1e6)
    return counts


def run_cover(eilat: Path, out: Path, *extra: str) -> list[dict[str, str]]:
    args = ["cover", str(eilat / "labels"), "--taxonomy", "eilat", "--background", "ignore"]
    assert main([*args, *extra, "--out", str(out)]) == 0
    with (out / "cover_per_image.csv").open(newline="") as handle:
        return list(csv.DictReader(handle))


def class_pixels(rows: list[dict[str, str]]) -> tuple[Counter[str], int, int]:
    """Pixels per class, unannotated pixels and images of cover_per_image.csv rows."""
    pixels: Counter[str] = Counter()
    unannotated = 0
    images = set()
    for row in rows:
        pixels[row["class"]] += int(row["pixels"])
        if row["image"] not in images:
            images.add(row["image"])
            unannotated += int(row["roi_pixels"]) - int(row["annotated_pixels"])
    return pixels, unannotated, len(images)


def test_cover_pixels_sum_to_the_readme_counts(shared_data: Path, tmp_path: Path, capsys) -> None:
    eilat = shared_data / "eilat_train"
    expected = readme_counts(eilat / "README.md")
    assert sorted(expected) == [*range(10), 255]
    out = tmp_path / "cover"
    rows = run_cover(eilat, out, "--no-colonies")
    assert "91 image(s)" in capsys.readouterr().out
    assert not (out / "colonies.csv").exists()
    pixels, unannotated, images = class_pixels(rows)
    assert images == 91 and len(rows) == 91 * EILAT.num_classes
    for value, name in enumerate(EILAT.classes):
        count, tolerance = expected[value]
        assert abs(pixels[name] - count) <= tolerance, (name, pixels[name], count)
    count, tolerance = expected[255]
    assert abs(unannotated - count) <= tolerance
    assert sum(pixels.values()) + unannotated == 91 * 1380 * 920


@pytest.mark.slow
def test_every_colony_pixel_is_in_one_colony(shared_data: Path, tmp_path: Path) -> None:
    """The ~20,000 annotated regions of the 91 masks as colonies (about a minute)."""
    out = tmp_path / "cover"
    pixels, _, _ = class_pixels(run_cover(shared_data / "eilat_train", out, "--no-geojson"))
    with (out / "colonies.csv").open(newline="") as handle:
        colonies = list(csv.DictReader(handle))
    # colonies only of colony classes: bare substrate, "Unknown" and "Other Inv." have none
    assert {r["class"] for r in colonies} == set(EILAT.colony_classes)
    colony_pixels: Counter[str] = Counter()
    for row in colonies:
        colony_pixels[row["class"]] += int(row["area_px"])
    for name in EILAT.colony_classes:
        assert colony_pixels[name] == pixels[name]
