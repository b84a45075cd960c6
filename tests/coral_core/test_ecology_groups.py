"""Groups from fields, a metadata CSV and filename patterns; per-group statistics."""

from __future__ import annotations

import statistics
from pathlib import Path

import numpy as np
import pytest

from coral_core.ecology.colonies import Colony
from coral_core.ecology.cover import CoverTable
from coral_core.ecology.groups import (
    colony_summary_rows,
    compile_pattern,
    fields_from_name,
    fields_from_pattern,
    group_cover,
    group_images,
    match_metadata,
    pattern_fields,
    read_metadata_csv,
)
from coral_core.errors import CoralsegError


def test_filename_pattern_fields() -> None:
    pattern = "<site>_<year>_<quadrat>"
    assert pattern_fields(pattern) == ("site", "year", "quadrat")
    assert fields_from_name("RAI1_2019_Q07.png", pattern) == {
        "site": "RAI1",
        "year": "2019",
        "quadrat": "Q07",
    }
    # the last field takes the rest; folders are ignored
    assert fields_from_name("photos/RAI1_2019_Q07_b", pattern)["quadrat"] == "Q07_b"
    assert fields_from_name("RAI1-2019", pattern) is None


def test_wildcards_and_literal_text() -> None:
    name = "AUSTRALES_AUS_RAI1_20M_20190504_UTP_QUADRAT_AUSRAI1_20M_10"
    # fields and * take the shortest text that lets the rest match, from the left
    fields = fields_from_name(name, "*_<island>_<site>_<depth>_<date>_*QUADRAT_*_*_<quadrat>")
    assert fields == {
        "island": "AUS",
        "site": "RAI1",
        "depth": "20M",
        "date": "20190504",
        "quadrat": "10",
    }
    assert fields_from_name(name, "*QUADRAT_*_<rest>") == {"rest": "20M_10"}
    # regex metacharacters in the literal parts are literal
    assert fields_from_name("a.b(1)", "<x>.b(<n>)") == {"x": "a", "n": "1"}
    assert fields_from_name("axb(1)", "<x>.b(<n>)") is None


def test_regular_expression_patterns() -> None:
    regex = r"(?P<site>[A-Z]+)(?P<year>\d{4})_.*"
    assert fields_from_name("MOO2021_q3.jpg", regex) == {"site": "MOO", "year": "2021"}


@pytest.mark.parametrize(
    ("pattern", "message"),
    [("site_year", "no <field>"), ("<a>_<a>", "twice"), ("(?P<x>[", "not a valid")],
)
def test_bad_patterns(pattern: str, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        compile_pattern(pattern)


def test_fields_from_pattern_lists_unmatched_names() -> None:
    fields, unmatched = fields_from_pattern(["A_2019_1", "B_2020_2", "odd"], "<site>_<year>_*")
    assert fields == {
        "A_2019_1": {"site": "A", "year": "2019"},
        "B_2020_2": {"site": "B", "year": "2020"},
    }
    assert unmatched == ["odd"]


def test_metadata_csv_matches_paths_names_and_stems(tmp_path: Path) -> None:
    path = tmp_path / "meta.csv"
    path.write_text(
        "\ufeffFilename,site,year,notes\n"
        "photos/reef_01.jpg,Temae,2019,calm\n"
        "reef_02.JPG, Tiahura ,2020,\n"
        ",ignored,0,\n",
        encoding="utf-8",
    )
    rows, columns = read_metadata_csv(path)
    assert columns == ("site", "year", "notes")
    assert rows["reef_02.JPG"]["site"] == "Tiahura"
    fields, missing = match_metadata(["reef_01", "reef_02", "reef_03"], rows)
    assert fields["reef_01"] == {"site": "Temae", "year": "2019", "notes": "calm"}
    assert fields["reef_02"]["year"] == "2020"
    assert missing == ["reef_03"]


def test_metadata_csv_errors(tmp_path: Path) -> None:
    with pytest.raises(CoralsegError, match="does not exist"):
        read_metadata_csv(tmp_path / "none.csv")
    no_image = tmp_path / "a.csv"
    no_image.write_text("site,year\nA,2019\n")
    with pytest.raises(CoralsegError, match="column naming the images"):
        read_metadata_csv(no_image)
    assert read_metadata_csv(no_image, image_column="site")[0] == {"A": {"year": "2019"}}
    twice = tmp_path / "b.csv"
    twice.write_text("image,site\nx.png,A\nx.png,B\n")
    with pytest.raises(CoralsegError, match="twice"):
        read_metadata_csv(twice)
    clash = {"a/x.png": {}, "b/x.jpg": {}}
    with pytest.raises(CoralsegError, match="same image stem"):
        match_metadata(["x"], clash)


def test_group_images_from_any_field_mapping() -> None:
    fields = {
        "q1": {"site": "A", "year": "2019"},
        "q2": {"site": "A", "year": "2020"},
        "q3": {"site": "B", "year": "2019"},
        "q4": {"site": "A", "year": "2019"},
    }
    images = ["q1", "q2", "q3", "q4", "q5"]
    by_site = group_images(images, fields, ["site"])
    assert by_site.keys == (("",), ("A",), ("B",))  # q5 has no site
    assert by_site.index.tolist() == [1, 1, 2, 1, 0]
    assert by_site.label(0) == "?" and by_site.label(1) == "A"
    site_year = group_images(images, fields, ["site", "year"])
    assert site_year.label(site_year.index[0]) == "A / 2019"
    assert site_year.index[0] == site_year.index[3] != site_year.index[1]
    assert site_year.key_columns(site_year.index[2]) == {
        "group": "B / 2019",
        "site": "B",
        "year": "2019",
    }
    everything = group_images(images)
    assert everything.keys == ((),) and everything.label(0) == "all images"
    with pytest.raises(ValueError, match="depth"):
        group_images(images, fields, ["depth"])


def test_group_cover_mean_sd_se_and_n() -> None:
    # 4 images x 2 classes; image 3 has nothing annotated and is left out of n
    pixels = np.array([[10, 30], [20, 20], [0, 0], [5, 45]])
    table = CoverTable(("a", "b", "c", "d"), ("coral", "sand"), pixels, np.array([50] * 4))
    grouping = group_images(
        table.images, {"a": {"s": "X"}, "b": {"s": "X"}, "c": {"s": "X"}, "d": {"s": "Y"}}, ["s"]
    )
    groups = group_cover(table, grouping)
    covers_x = [100 * 10 / 40, 100 * 20 / 40]
    assert groups.n.tolist() == [2, 1]
    assert groups.mean[0, 0] == pytest.approx(statistics.mean(covers_x))
    assert groups.sd[0, 0] == pytest.approx(statistics.stdev(covers_x))
    assert groups.se[0, 0] == pytest.approx(statistics.stdev(covers_x) / np.sqrt(2))
    assert groups.pooled[0, 0] == pytest.approx(100 * 30 / 80)
    assert groups.mean_annotated_fraction[0] == pytest.approx((40 + 40 + 0) / 150)
    assert groups.mean[1, 0] == 10.0 and np.isnan(groups.sd[1, 0])
    rows = groups.rows()
    assert len(rows) == 4
    assert rows[2] | {} == {
        "group": "Y",
        "s": "Y",
        "class": "coral",
        "n_images": 1,
        "mean_cover_percent": 10.0,
        "sd_cover_percent": "",
        "se_cover_percent": "",
        "pooled_cover_percent": 10.0,
        "mean_annotated_fraction": 1.0,
    }


def colony(label: str, area: int, edge: bool = False) -> Colony:
    return Colony(label, 1, area, 4.0, 2.0, (0.0, 0.0), (0, 0, 1, 1), edge)


def test_colony_counts_and_size_distribution_per_group() -> None:
    images = ["a", "b", "c"]
    grouping = group_images(images, {"a": {"s": "X"}, "b": {"s": "X"}, "c": {"s": "Y"}}, ["s"])
    colonies = {
        "a": [colony("Acropora", 100), colony("Acropora", 300, True)],
        "b": [colony("Acropora", 200)],
    }
    rows = colony_summary_rows(
        images,
        colonies,
        grouping,
        ["Acropora", "Porites"],
        roi_pixels={"a": 10_000, "b": 10_000, "c": 10_000},
        pixels_per_cm={"a": 10.0, "b": 10.0, "c": 10.0},
    )
    x_acro = rows[0]
    assert x_acro["colonies"] == 3 and x_acro["n_images"] == 2
    assert x_acro["colonies_per_image"] == 1.5
    assert x_acro["area_px_mean"] == 200.0 and x_acro["area_px_median"] == 200.0
    assert x_acro["area_px_q25"] == 150.0 and x_acro["area_px_q75"] == 250.0
    assert x_acro["area_px_max"] == 300.0 and x_acro["edge_colonies"] == 1
    assert x_acro["area_cm2_mean"] == pytest.approx(2.0)
    # two images of 100 x 100 px at 10 px/cm: 200 cm^2 = 0.02 m^2
    assert x_acro["colonies_per_m2"] == pytest.approx(3 / 0.02)
    assert rows[1]["class"] == "Porites" and rows[1]["colonies"] == 0
    assert rows[1]["area_px_mean"] == ""
    y_acro = rows[2]
    assert y_acro["colonies"] == 0 and y_acro["colonies_per_m2"] == 0.0
    unscaled = colony_summary_rows(images, colonies, grouping, ["Acropora"])
    assert "area_cm2_mean" not in unscaled[0]
