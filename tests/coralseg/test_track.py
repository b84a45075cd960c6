"""``coralseg track`` end to end on two visits made by tests/survey_fixtures.py: photos and
label masks of two plots, paired by a filename pattern, aligned by features; its outputs,
and the sentences it answers bad input with."""

from __future__ import annotations

import csv
import json
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from coralseg.cli import main
from tests.survey_fixtures import CLASSES, first_visit, second_visit

VALUES = sorted(CLASSES)


def read_csv(path: Path) -> list[dict[str, str]]:
    with path.open(newline="", encoding="utf-8") as handle:
        return list(csv.DictReader(handle))


def _write_visit(root: Path, name: str, photo: np.ndarray, mask: np.ndarray) -> None:
    (root / "masks").mkdir(parents=True, exist_ok=True)
    (root / "photos").mkdir(parents=True, exist_ok=True)
    (root / "masks" / "classes.txt").write_text(
        "background\n" + "\n".join(CLASSES[v] for v in VALUES) + "\n"
    )
    Image.fromarray(mask).save(root / "masks" / f"{name}.png")
    Image.fromarray(photo).save(root / "photos" / f"{name}.jpg", quality=95)


@pytest.fixture(scope="module")
def survey(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, dict[str, dict[int, str]]]:
    root = tmp_path_factory.mktemp("survey")
    expected = {}
    for plot, seed in (("P1", 0), ("P2", 1)):
        photo, mask = first_visit(seed)
        visit = second_visit(mask, VALUES, photo=photo, seed=seed)
        _write_visit(root / "2023", f"{plot}_2023", photo, mask)
        _write_visit(root / "2024", f"{plot}_2024", visit.photo, visit.mask)
        expected[plot] = visit.expected
    return root, expected


def _track(root: Path, out: Path, *extra: str) -> int:
    return main(
        [
            "track",
            str(root / "2023" / "masks"),
            str(root / "2024" / "masks"),
            "--before-images",
            str(root / "2023" / "photos"),
            "--after-images",
            str(root / "2024" / "photos"),
            "--out",
            str(out),
            *extra,
        ]
    )


def test_track_writes_fates_summaries_geojson_and_pictures(survey, tmp_path, capsys) -> None:
    root, expected = survey
    out = tmp_path / "fates"

    code = _track(root, out, "--pairs", "<plot>_<year>", "--scale", "10")

    assert code == 0, capsys.readouterr().err
    printed = capsys.readouterr().out
    assert "P1: features:" in printed and "P2: features:" in printed
    rows = read_csv(out / "links.csv")
    for plot, fates in expected.items():
        found: dict[int, str] = {}
        for row in rows:
            if row["plot"] == plot and row["area_before_px"]:
                found.setdefault(int(row["colony_id"]) - 1, row["fate"])
        assert found == fates, plot
        assert sum(r["plot"] == plot and r["fate"] == "recruitment" for r in rows) == 1
    assert sum(r["genus_changed"] == "1" for r in rows) == 2
    grown = [r for r in rows if r["fate"] == "persisted"]
    assert all(r["growth_cm2"] and r["area_before_cm2"] for r in grown)
    per_plot = read_csv(out / "fates_per_plot.csv")
    assert [r["plot"] for r in per_plot] == ["P1", "P2"]
    assert all(int(r["n_fusion"]) == 2 and int(r["n_fission"]) == 2 for r in per_plot)
    assert {r["class"] for r in read_csv(out / "fates_per_class.csv")} <= set(CLASSES.values())
    alignment = read_csv(out / "alignment.csv")
    assert all(
        int(r["inliers"]) >= 100 and float(r["reprojection_error_px"]) < 1 for r in alignment
    )
    features = json.loads((out / "colonies.geojson").read_text())["features"]
    visits = {(f["properties"]["plot"], f["properties"]["visit"]) for f in features}
    assert visits == {("P1", "before"), ("P1", "after"), ("P2", "before"), ("P2", "after")}
    ids = {
        (f["properties"]["plot"], f["properties"]["visit"], f["properties"]["colony_id"])
        for f in features
        if f["properties"]["fate"] == "persisted"
    }
    assert {(p, i) for p, v, i in ids if v == "before"} == {
        (p, i) for p, v, i in ids if v == "after"
    }
    for plot in ("P1", "P2"):
        with Image.open(out / "pictures" / f"{plot}.png") as picture:
            assert picture.width > 2 * picture.height * 0.9


def test_track_refuses_photos_that_do_not_overlap(survey, tmp_path, capsys) -> None:
    root, _ = survey
    pairs = tmp_path / "pairs.csv"
    pairs.write_text("before,after,plot\nP1_2023,P2_2024,mixed\n")

    code = _track(root, tmp_path / "out", "--pairs", str(pairs))

    assert code == 2
    err = capsys.readouterr().err
    assert "plot mixed: the two photos do not overlap" in err and "Traceback" not in err


@pytest.mark.parametrize(
    ("extra", "sentence"),
    [
        ((), "could be paired"),
        (("--pairs", "<year>_x"), "needs a <plot> field"),
        (("--pairs", "<plot>_<year>", "--min-overlap", "0"), "--min-overlap is a share"),
        (("--pairs", "<plot>_<year>", "--align", "geotransform"), "lacks a georeferenced"),
    ],
)
def test_bad_input_is_a_sentence(survey, tmp_path, capsys, extra, sentence) -> None:
    root, _ = survey
    assert _track(root, tmp_path / "out", *extra) == 2
    err = capsys.readouterr().err
    assert sentence in err and "Traceback" not in err


def test_masks_without_photos_need_an_alignment(survey, tmp_path, capsys) -> None:
    root, _ = survey
    code = main(
        ["track", str(root / "2023" / "masks"), str(root / "2024" / "masks"), "--pairs",
         "<plot>_<year>", "--out", str(tmp_path / "out")]
    )  # fmt: skip
    assert code == 2
    assert "--before-images DIR --after-images DIR, or --align none" in capsys.readouterr().err


def test_the_tracking_page_commands_parse_and_its_picture_is_linked() -> None:
    from coralseg.cli import build_parser
    from tests.test_docs import DOCS, _coralseg_args, blocks

    commands = [
        args
        for block in blocks("tracking.md")
        if block.is_shell
        for words in block.commands()
        if (args := _coralseg_args(words)) is not None
    ]
    assert len(commands) == 3
    for args in commands:
        assert build_parser().parse_args(args).command == "track"
    picture = DOCS / "images" / "tracking.png"
    assert picture.stat().st_size < 300_000
    assert "(tracking.md)" in (DOCS / "index.md").read_text(encoding="utf-8")
