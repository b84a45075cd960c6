from __future__ import annotations

import csv
import sys
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from coral_core.evaluation.confusion_plot import counts_csv_path, save_confusion_matrix
from coral_core.evaluation.metrics import normalized_confusion
from coral_core.labels.taxonomy import FINEGRAINED


def random_counts(n: int, seed: int = 0) -> np.ndarray:
    rng = np.random.default_rng(seed)
    matrix = rng.integers(0, 50, size=(n, n)) + np.diag(rng.integers(100, 1000, size=n))
    matrix[n // 2, :] = 0  # a class without ground truth: its row stays zeros
    return matrix


def read_csv(path: Path) -> list[list[str]]:
    with path.open(newline="", encoding="utf-8") as handle:
        return list(csv.reader(handle))


@pytest.mark.parametrize(
    "names",
    [
        FINEGRAINED.classes,  # 16 genera, values printed in the cells
        tuple(f"Genus number {i:02d}, sp." for i in range(40)),  # commas need CSV quoting
    ],
    ids=["16", "40"],
)
def test_png_and_csv_files(tmp_path: Path, names: tuple[str, ...]) -> None:
    n = len(names)
    matrix = random_counts(n)
    png, table, counts = save_confusion_matrix(
        matrix, names, tmp_path / "out" / "cm.png", tmp_path / "out" / "cm.csv"
    )
    assert (png, table, counts) == (
        tmp_path / "out" / "cm.png",
        tmp_path / "out" / "cm.csv",
        tmp_path / "out" / "cm_counts.csv",
    )
    assert sorted(p.name for p in (tmp_path / "out").iterdir()) == [
        "cm.csv",
        "cm.png",
        "cm_counts.csv",
    ]  # no temporary files left behind

    with Image.open(png) as image:
        image.load()
        width, height = image.size
    # about 0.35 inch (35 px) per class plus room for labels: readable, not enormous
    assert 30 * n <= width <= 60 * n + 800 and 30 * n <= height <= 60 * n + 800

    rows = read_csv(table)
    assert rows[0][1:] == list(names) and [row[0] for row in rows[1:]] == list(names)
    values = np.array([[float(v) for v in row[1:]] for row in rows[1:]])
    np.testing.assert_allclose(values, normalized_confusion(matrix, by="true"), atol=1e-6)
    assert not values[n // 2].any()

    count_rows = read_csv(counts)
    assert count_rows[0] == rows[0] and [row[0] for row in count_rows[1:]] == list(names)
    assert np.array_equal(np.array([[int(v) for v in row[1:]] for row in count_rows[1:]]), matrix)


def test_png_grows_with_the_number_of_classes(tmp_path: Path) -> None:
    sizes = []
    for n in (4, 16, 40):
        names = [f"c{i}" for i in range(n)]
        save_confusion_matrix(random_counts(n), names, tmp_path / f"{n}.png", tmp_path / f"{n}.csv")
        with Image.open(tmp_path / f"{n}.png") as image:
            sizes.append(image.size)
    assert sizes[0] < sizes[1] < sizes[2]


@pytest.mark.parametrize("normalize", ["pred", "all"])
def test_other_normalisations_and_title(tmp_path: Path, normalize: str) -> None:
    matrix = random_counts(5)
    names = list("abcde")
    _, table, _ = save_confusion_matrix(
        matrix, names, tmp_path / "cm.png", tmp_path / "cm.csv", normalize=normalize, title="Val"
    )
    values = np.array([[float(v) for v in row[1:]] for row in read_csv(table)[1:]])
    np.testing.assert_allclose(values, normalized_confusion(matrix, by=normalize), atol=1e-6)


def test_existing_files_are_replaced(tmp_path: Path) -> None:
    names = ["a", "b"]
    save_confusion_matrix(np.eye(2, dtype=int), names, tmp_path / "cm.png", tmp_path / "cm.csv")
    save_confusion_matrix(np.ones((2, 2), int), names, tmp_path / "cm.png", tmp_path / "cm.csv")
    assert read_csv(tmp_path / "cm_counts.csv")[1] == ["a", "1", "1"]


def test_counts_path_naming() -> None:
    assert counts_csv_path("eval/confusion.csv") == Path("eval/confusion_counts.csv")


def test_bad_input_writes_nothing(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="3 class names"):
        save_confusion_matrix(np.eye(2, dtype=int), "abc", tmp_path / "x.png", tmp_path / "x.csv")
    with pytest.raises(ValueError, match="normalize"):
        save_confusion_matrix(
            np.eye(2, dtype=int), "ab", tmp_path / "x.png", tmp_path / "x.csv", normalize="rows"
        )
    assert list(tmp_path.iterdir()) == []


def test_pyplot_is_not_involved(tmp_path: Path) -> None:
    had_pyplot = "matplotlib.pyplot" in sys.modules
    save_confusion_matrix(np.eye(3, dtype=int), "abc", tmp_path / "x.png", tmp_path / "x.csv")
    assert ("matplotlib.pyplot" in sys.modules) == had_pyplot
