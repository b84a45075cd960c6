"""``coralseg cover`` on a real ``coralseg infer`` output (the tiny random-weight model of
test_infer, set to say "Pocillopora, 95%" everywhere: one colony per image), alone and
compared with annotated masks. Slow: building the model and inferring take about a minute
on 2 cores; test_cover.py covers the same layout on records it writes itself."""

from __future__ import annotations

import csv
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from coral_core.labels.taxonomy import FAMILIES, MaskEncoding
from coralseg.cli import main
from tests.coralseg.test_infer import model_files, uniform_model_files  # noqa: F401  (fixtures)

pytestmark = pytest.mark.slow

FAM = MaskEncoding(FAMILIES)
SIZES = {"a": (90, 130), "b": (140, 100)}


def read_csv(path: Path) -> list[dict[str, str]]:
    with path.open(newline="", encoding="utf-8") as handle:
        return list(csv.DictReader(handle))


@pytest.fixture(scope="module")
def inferred(uniform_model_files, tmp_path_factory: pytest.TempPathFactory) -> Path:  # noqa: F811
    images = tmp_path_factory.mktemp("photos")
    rng = np.random.default_rng(2)
    for name, size in SIZES.items():
        Image.fromarray(rng.integers(0, 255, (*size, 3), dtype=np.uint8)).save(
            images / f"{name}.jpg"
        )
    out = tmp_path_factory.mktemp("inferred")
    config, checkpoint = uniform_model_files
    args = ["infer", "--input-dir", str(images), "--output-dir", str(out)]
    args += ["--segformer-config", str(config), "--segformer-weights", str(checkpoint)]
    assert main(args) == 0
    return out


def test_cover_of_predicted_colonies(inferred: Path, tmp_path: Path) -> None:
    out = tmp_path / "cover"
    assert main(["cover", str(inferred), "--out", str(out)]) == 0
    cover = {(r["image"], r["class"]): r for r in read_csv(out / "cover_per_image.csv")}
    for name, (height, width) in SIZES.items():
        row = cover[(name, "Pocillopora")]
        assert row["cover_percent"] == "100.0" and int(row["pixels"]) == height * width
    colonies = read_csv(out / "colonies.csv")
    assert [(r["image"], r["class"]) for r in colonies] == [
        ("a", "Pocillopora"),
        ("b", "Pocillopora"),
    ]
    for row in colonies:
        height, width = SIZES[row["image"]]
        assert int(row["area_px"]) == height * width
        assert float(row["max_diameter_px"]) == pytest.approx(np.hypot(height, width), abs=1e-3)
        assert float(row["score"]) == pytest.approx(0.955, abs=0.01)
        assert row["touches_edge"] == "1"


def test_predicted_against_annotated_cover(inferred: Path, tmp_path: Path) -> None:
    annotations = tmp_path / "labels"
    annotations.mkdir()
    for name, (height, width) in SIZES.items():
        mask = np.zeros((height, width), dtype=np.uint8)  # background
        mask[: height // 2] = FAM.value_of("Pocillopora")
        Image.fromarray(mask).save(annotations / f"{name}.png")
    out = tmp_path / "cover"
    args = ["cover", str(annotations), "--taxonomy", "families", "--compare", str(inferred)]
    assert main([*args, "--out", str(out)]) == 0
    errors = {(r["image"], r["class"]): r for r in read_csv(out / "cover_error_per_image.csv")}
    for name in SIZES:
        assert float(errors[(name, "Pocillopora")]["error_pp"]) == pytest.approx(50.0)
        assert float(errors[(name, "background")]["error_pp"]) == pytest.approx(-50.0)
    by_class = {r["class"]: r for r in read_csv(out / "cover_error_per_class.csv")}
    assert float(by_class["Pocillopora"]["mean_abs_error_pp"]) == pytest.approx(50.0)
    assert float(by_class["Acropora"]["mean_abs_error_pp"]) == 0.0
