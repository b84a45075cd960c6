"""``coralseg cover --annotations``: colonies as drawn; ``--compare``: colony metrics."""

from __future__ import annotations

import csv
from pathlib import Path

import numpy as np
import yaml
from PIL import Image

from coral_core.formats.annotations import AnnotatedImage, AnnotationShape, to_cvat_xml
from coral_core.formats.polygons import Polygon
from coral_core.labels.rasterize import LabeledPolyline, rasterize_polylines
from coralseg.cli import main

H, W = 60, 100
VALUES = {"Acropora": 1, "Porites": 2}


def square(x0: float, y0: float, x1: float, y1: float) -> np.ndarray:
    return np.array([[x0, y0], [x1, y0], [x1, y1], [x0, y1]], float)


# Two touching Acropora colonies, a Porites colony with an Acropora colony on top of it.
DRAWN = [
    ("Acropora", square(5, 5, 35, 35)),
    ("Acropora", square(35, 5, 60, 30)),
    ("Porites", square(65, 5, 95, 55)),
    ("Acropora", square(75, 20, 85, 30)),
]


def rows(path: Path) -> list[dict[str, str]]:
    with path.open(newline="") as handle:
        return list(csv.DictReader(handle))


def test_drawn_colonies_and_colony_metrics(tmp_path: Path) -> None:
    taxonomy = tmp_path / "taxonomy.yaml"
    taxonomy.write_text(yaml.safe_dump({"name": "two", "classes": [{"name": n} for n in VALUES]}))
    shapes = tuple(
        AnnotationShape(label, "polygon", polygons=(Polygon(ring),)) for label, ring in DRAWN
    )
    annotations = tmp_path / "annotations.xml"
    annotations.write_text(to_cvat_xml([AnnotatedImage("q1.jpg", W, H, shapes)], list(VALUES)))
    polylines = [LabeledPolyline(label, (ring / [W, H],)) for label, ring in DRAWN]
    mask, _ = rasterize_polylines(polylines, H, W, VALUES)
    for folder in ("annotated", "predicted"):
        (tmp_path / folder).mkdir()
        Image.fromarray(mask).save(tmp_path / folder / "q1.png")

    common = ["--taxonomy", str(taxonomy), "--no-geojson"]
    assert (
        main(["cover", str(tmp_path / "annotated"), "--out", str(tmp_path / "regions"), *common])
        == 0
    )
    # connected regions: the touching Acropora pair is one colony
    assert len(rows(tmp_path / "regions" / "colonies.csv")) == 3

    out = tmp_path / "drawn"
    command = ["cover", str(tmp_path / "annotated"), "--out", str(out), *common]
    command += ["--annotations", str(annotations), "--compare", str(tmp_path / "predicted")]
    assert main(command) == 0
    colonies = rows(out / "colonies.csv")
    assert len(colonies) == 4  # one per polygon
    areas = sorted((c["class"], int(c["area_px"])) for c in colonies)
    assert areas == [("Acropora", 100), ("Acropora", 625), ("Acropora", 900), ("Porites", 1400)]

    # The "predictions" are the annotated masks: their connected regions merge the pair.
    metrics = {
        (r["colonies_from"], r["class"]): r for r in rows(out / "colony_metrics_per_class.csv")
    }
    acropora = metrics[("regions", "Acropora")]
    # the merged pair matches neither colony (IoU 900/1525 with the larger: above 0.5!)
    assert (acropora["tp"], acropora["fp"], acropora["fn"]) == ("2", "0", "1")
    porites = metrics[("regions", "Porites")]
    assert porites["pq"] == "100.0"
    (image,) = rows(out / "colony_metrics_per_image.csv")
    assert (image["predicted"], image["true"], image["count_error"]) == ("3", "4", "-1")
