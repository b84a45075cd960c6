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
        (("--pairs", "<plot>_<year>", "--min-overlap", "0"), "(option --min-overlap)"),
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
    err = capsys.readouterr().err
    assert "no photos were found" in err
    assert "(option --before-images, --after-images, --align)" in err


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
    assert len(commands) == 4
    for args in commands:
        assert build_parser().parse_args(args).command == "track"
    picture = DOCS / "images" / "tracking.png"
    assert picture.stat().st_size < 300_000
    assert "(tracking.md)" in (DOCS / "index.md").read_text(encoding="utf-8")


def _write_infer_output(root: Path, name: str, photo: np.ndarray, mask: np.ndarray) -> None:
    """The layout 'coralseg infer' writes: instances/<name>.json naming the photo, semantic/."""
    from coral_core.formats.rle import mask_to_coco_rle
    from coral_core.tracking import colonies_from_label_mask

    for folder in ("instances", "semantic", "photos"):
        (root / folder).mkdir(parents=True, exist_ok=True)
    (root / "classes.txt").write_text("background\n" + "\n".join(CLASSES.values()) + "\n")
    Image.fromarray(photo).save(root / "photos" / f"{name}.jpg", quality=95)
    Image.fromarray(mask).save(root / "semantic" / f"{name}.png")
    instances = [
        {"label": c.label, "value": c.value, "score": 0.9, "bbox": list(c.bbox),
         "area": c.area, "box_rle": mask_to_coco_rle(c.mask)}
        for c in colonies_from_label_mask(mask, VALUES, CLASSES)
    ]  # fmt: skip
    record = {"file_name": str(root / "photos" / f"{name}.jpg"), "width": mask.shape[1],
              "height": mask.shape[0], "instances": instances}  # fmt: skip
    (root / "instances" / f"{name}.json").write_text(json.dumps(record))


def test_two_infer_outputs_are_tracked_from_their_instance_records(tmp_path, capsys) -> None:
    photo, mask = first_visit(2)
    visit = second_visit(mask, VALUES, photo=photo, seed=2)
    _write_infer_output(tmp_path / "infer2023", "Q7", photo, mask)
    _write_infer_output(tmp_path / "infer2024", "Q7", visit.photo, visit.mask)

    code = main(["track", str(tmp_path / "infer2023"), str(tmp_path / "infer2024"),
                 "--out", str(tmp_path / "fates"), "--no-pictures"])  # fmt: skip

    assert code == 0, capsys.readouterr().err
    assert "'coralseg infer' output" in capsys.readouterr().out
    found: dict[int, str] = {}
    for row in read_csv(tmp_path / "fates" / "links.csv"):
        if row["area_before_px"]:
            found.setdefault(int(row["colony_id"]) - 1, row["fate"])
    assert found == visit.expected
    assert not (tmp_path / "fates" / "pictures").exists()


def test_orthomosaics_are_aligned_by_their_geotransforms(tmp_path, capsys) -> None:
    """Two GeoTIFF masks of one plot: the second covers ground 0.4 m east and 0.2 m south of
    the first at 1 cm pixels; fates exact, areas in cm2 from the geotransform."""
    import rasterio
    from rasterio.transform import Affine

    from tests.survey_fixtures import STILL

    _, mask = first_visit(3)
    visit = second_visit(mask, VALUES, camera=STILL, seed=3)
    shifted = np.zeros_like(visit.mask)
    shifted[:-20, :-40] = visit.mask[20:, 40:]  # the same ground, 40 px east, 20 px south
    for year, labels, origin in (("2023", mask, (500000.0, 8000000.0)),
                                 ("2024", shifted, (500000.4, 7999999.8))):  # fmt: skip
        folder = tmp_path / year
        folder.mkdir()
        (folder / "classes.txt").write_text("background\n" + "\n".join(CLASSES.values()) + "\n")
        transform = Affine(0.01, 0.0, origin[0], 0.0, -0.01, origin[1])
        profile = dict(driver="GTiff", height=labels.shape[0], width=labels.shape[1], count=1,
                       dtype="uint8", crs="EPSG:32706", transform=transform)  # fmt: skip
        with rasterio.open(folder / "plot9.tif", "w", **profile) as raster:
            raster.write(labels, 1)

    code = main(["track", str(tmp_path / "2023"), str(tmp_path / "2024"), "--scale",
                 "geotransform", "--out", str(tmp_path / "fates")])  # fmt: skip

    assert code == 0, capsys.readouterr().err
    rows = read_csv(tmp_path / "fates" / "links.csv")
    found: dict[int, str] = {}
    for row in rows:
        if row["area_before_px"]:
            found.setdefault(int(row["colony_id"]) - 1, row["fate"])
    assert found == visit.expected
    persisted = [r for r in rows if r["fate"] == "persisted"]
    assert all(float(r["area_before_cm2"]) == int(r["area_before_px"]) for r in persisted)
    (alignment,) = read_csv(tmp_path / "fates" / "alignment.csv")
    assert alignment["method"] == "geotransform"
    features = json.loads((tmp_path / "fates" / "colonies.geojson").read_text())
    assert features["crs"]["properties"]["name"] == "urn:ogc:def:crs:EPSG::32706"
    x = features["features"][0]["geometry"]["coordinates"][0][0][0]
    assert 500000 < x < 500006  # map coordinates


@pytest.mark.slow
def test_track_runs_on_the_demo_sample_within_a_minute(tmp_path, capsys) -> None:
    """The issue's bar: the demo sample's 30 quadrats and their generated second visits in
    under a minute on 2 cores, every fate as made (docs/make_tracking_figure.py)."""
    import importlib.util
    import time

    from tests.test_docs import DOCS

    spec = importlib.util.spec_from_file_location("figure", DOCS / "make_tracking_figure.py")
    figure = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(figure)
    expected = figure.draw_visits(tmp_path, 30, 0)
    start = time.perf_counter()
    code = main(
        ["track", str(tmp_path / "2023" / "masks"), str(tmp_path / "2024" / "masks"),
         "--before-images", str(tmp_path / "2023" / "photos"), "--after-images",
         str(tmp_path / "2024" / "photos"), "--min-colony-area", str(figure.MIN_AREA),
         "--out", str(tmp_path / "fates")]
    )  # fmt: skip
    seconds = time.perf_counter() - start
    assert code == 0, capsys.readouterr().err
    assert seconds < 60
    found: dict[tuple[str, int], str] = {}
    for row in read_csv(tmp_path / "fates" / "links.csv"):
        if row["area_before_px"]:
            found.setdefault((row["plot"], int(row["colony_id"]) - 1), row["fate"])
    truth = {(plot, i): fate for plot, fates in expected.items() for i, fate in fates.items()}
    assert found == truth
