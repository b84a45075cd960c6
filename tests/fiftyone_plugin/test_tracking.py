"""The track_colonies operator through FiftyOne's own execution, on a real dataset of two
visits made by tests/survey_fixtures.py: colonies as masked detections (as predict colonies
writes them) and as filled polylines (as CVAT annotations arrive), the visits as two saved
views."""

from __future__ import annotations

import uuid

import numpy as np
import pytest
from PIL import Image

from coral_core.formats.polygons import Polygon, mask_to_polygons
from coral_core.tracking import colonies_from_label_mask
from tests.fiftyone_plugin.conftest import uri
from tests.survey_fixtures import CLASSES, first_visit, second_visit

VALUES = sorted(CLASSES)


def _detections(fo, colonies, height: int, width: int):
    return fo.Detections(
        detections=[
            fo.Detection(
                label=c.label,
                bounding_box=[
                    c.left / width,
                    c.top / height,
                    c.bbox[2] / width,
                    c.bbox[3] / height,
                ],
                mask=c.mask,
            )
            for c in colonies
        ]
    )


def _polylines(fo, colonies, height: int, width: int):
    from fiftyone_plugin.fiftyone_labels import polygon_to_polyline

    polylines = []
    for c in colonies:
        (polygon,) = mask_to_polygons(c.mask, tolerance=0.25)
        offset = np.array([c.left, c.top], dtype=np.float64)
        shifted = Polygon(polygon.exterior + offset, tuple(h + offset for h in polygon.holes))
        polylines.append(polygon_to_polyline(shifted, c.label, width, height))
    return fo.Polylines(polylines=polylines)


@pytest.fixture(scope="module")
def visits(fiftyone, plugins_dir, tmp_path_factory: pytest.TempPathFactory):
    """Two plots on two visits; each test writes its own label field's ids."""
    fo = fiftyone
    tmp_path = tmp_path_factory.mktemp("visits")
    samples, expected = [], {}
    for plot, seed in (("P1", 0), ("P2", 1)):
        photo, mask = first_visit(seed)
        visit = second_visit(mask, VALUES, photo=photo, seed=seed)
        expected[plot] = visit
        height, width = mask.shape
        for year, image, labels in ((2023, photo, mask), (2024, visit.photo, visit.mask)):
            path = tmp_path / f"{plot}_{year}.jpg"
            Image.fromarray(image).save(path, quality=95)
            colonies = colonies_from_label_mask(labels, VALUES, CLASSES)
            samples.append(
                fo.Sample(
                    filepath=str(path),
                    plot=plot,
                    year=year,
                    colonies=_detections(fo, colonies, height, width),
                    annotated=_polylines(fo, colonies, height, width),
                )
            )
    dataset = fo.Dataset(f"visits-{uuid.uuid4().hex[:8]}")
    dataset.add_samples(samples, progress=False)
    from fiftyone import ViewField as F

    dataset.save_view("y2023", dataset.match(F("year") == 2023))
    dataset.save_view("y2024", dataset.match(F("year") == 2024))
    for year in (2023, 2024):  # one plot, for the command line test
        dataset.save_view(f"p1y{year}", dataset.match((F("year") == year) & (F("plot") == "P1")))
    yield dataset, expected
    dataset.delete()


def test_track_colonies_writes_a_shared_colony_id_on_both_visits(visits) -> None:
    import fiftyone.operators as foo
    from fiftyone import ViewField as F

    dataset, expected = visits
    params = {
        "before_view": "y2023",
        "after_view": "y2024",
        "labels_field": "colonies",
        "pair_by": "plot",
    }
    result = foo.execute_operator(uri("track_colonies"), {"view": dataset.view()}, params=params)

    assert result.error is None, result.error
    assert result.result["pairs"] == 2
    plots = {row["plot"]: row for row in result.result["plots"]}
    assert set(plots) == {"P1", "P2"}
    for plot, visit in expected.items():
        before = dataset.match((F("plot") == plot) & (F("year") == 2023)).first()
        after = dataset.match((F("plot") == plot) & (F("year") == 2024)).first()
        before_labels = before["colonies"].detections
        fates = [label["colony_id_fate"] for label in before_labels]
        assert fates == [visit.expected[i] for i in range(len(before_labels))], plot
        after_ids = {label["colony_id"] for label in after["colonies"].detections}
        for label in before_labels:
            if label["colony_id_fate"] == "persisted":
                assert label["colony_id"] in after_ids
                assert label["colony_id"].startswith(f"{plot}:")
            if label["colony_id_fate"] == "death":
                assert label["colony_id"] not in after_ids
        assert plots[plot]["n_recruitment"] == visit.recruits
    # In the App, filtering the labels on one id shows the colony on both visits.
    persisted = next(
        label["colony_id"]
        for label in dataset.first()["colonies"].detections
        if label["colony_id_fate"] == "persisted"
    )
    both = dataset.filter_labels("colonies", F("colony_id") == persisted, only_matches=True)
    assert sorted(both.values("year")) == [2023, 2024]


def test_track_colonies_refuses_a_missing_saved_view(visits) -> None:
    import fiftyone.operators as foo
    from fiftyone.operators.executor import ExecutionError

    dataset, _ = visits
    params = {"before_view": "y2023", "after_view": "nope", "labels_field": "colonies"}
    with pytest.raises(ExecutionError, match="'nope' is not one of"):
        foo.execute_operator(uri("track_colonies"), {"view": dataset.view()}, params=params)


def test_polylines_of_two_views_are_tracked_too(visits) -> None:
    from fiftyone import ViewField as F

    from fiftyone_plugin.tracking import track_views

    dataset, expected = visits
    one_plot = dataset.match(F("plot") == "P2")
    summary = track_views(
        one_plot.match(F("year") == 2023), one_plot.match(F("year") == 2024), "annotated", "plot"
    )
    assert summary.pairs == 1
    before = one_plot.match(F("year") == 2023).first()
    fates = [label["colony_id_fate"] for label in before["annotated"].polylines]
    assert fates == [expected["P2"].expected[i] for i in range(len(fates))]


def test_coralseg_track_on_two_saved_views(visits, tmp_path, capsys) -> None:
    import csv

    from coralseg.cli import main

    dataset, expected = visits
    args = ["track", "p1y2023", "p1y2024", "--dataset", dataset.name, "--labels-field",
            "colonies", "--pair-by", "plot", "--out", str(tmp_path)]  # fmt: skip
    assert main(args) == 0, capsys.readouterr().err
    with (tmp_path / "links.csv").open(newline="") as handle:
        rows = list(csv.DictReader(handle))
    found: dict[int, str] = {}
    for row in rows:
        assert row["plot"] == "P1"
        if row["area_before_px"]:
            found.setdefault(int(row["colony_id"]) - 1, row["fate"])
    assert found == expected["P1"].expected
    assert main(["track", "y2023", "nope", "--dataset", dataset.name, "--out", str(tmp_path)]) == 2
    assert "has no saved view 'nope'" in capsys.readouterr().err
