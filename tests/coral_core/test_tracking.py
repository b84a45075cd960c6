"""Colony tracking across two visits, on visits made by tests/survey_fixtures.py (the truth
known by construction) and on EilatMixx photos against warped copies of themselves."""

from __future__ import annotations

import numpy as np
import pytest
from PIL import Image

from coral_core.formats.raster_io import GeoInfo
from coral_core.tracking import (
    Alignment,
    align_geotransforms,
    align_photos,
    colonies_from_label_mask,
    colony_fates,
    link_colonies,
    refine_shift,
)
from coral_core.tracking.features import visit_features
from coral_core.tracking.picture import pair_picture
from coral_core.tracking.tables import link_rows, summary_rows
from tests.survey_fixtures import CLASSES, STILL, Camera, first_visit, second_visit, warped_copy

VALUES = sorted(CLASSES)
# Largest distance, in after-photo pixels, between where an alignment and the true camera
# move put a grid of points over the photo.
RENDERED_TOLERANCE_PX = 1.0
EILAT_TOLERANCE_PX = 0.5


def _track(first_mask, visit, alignment):
    before = colonies_from_label_mask(first_mask, VALUES, CLASSES)
    after = colonies_from_label_mask(visit.mask, VALUES, CLASSES)
    linking = link_colonies(before, after, alignment, visit.mask.shape, first_mask.shape)
    return before, after, linking, colony_fates(before, after, linking)


def _first_fates(fates) -> dict[int, str]:
    found: dict[int, str] = {}
    for link in fates.links:
        if link.before is not None:
            found.setdefault(link.before, link.fate)
    return found


def _grid_error(alignment: Alignment, truth: np.ndarray, height: int, width: int) -> float:
    xs, ys = np.meshgrid(np.linspace(0, width - 1, 9), np.linspace(0, height - 1, 7))
    points = np.stack([xs.ravel(), ys.ravel()], axis=1)
    error = alignment.map_points(points) - Alignment(truth, "truth").map_points(points)
    return float(np.hypot(error[:, 0], error[:, 1]).max())


@pytest.mark.parametrize("camera", [STILL, Camera()], ids=["camera-still", "camera-moved"])
@pytest.mark.parametrize("seed", [0, 1, 2])
def test_every_fate_is_recovered_exactly_on_constructed_masks(camera, seed) -> None:
    _, mask = first_visit(seed)
    visit = second_visit(mask, VALUES, camera=camera, seed=seed)
    made = set(visit.expected.values())
    assert {"death", "partial_mortality", "fusion", "fission", "persisted"} <= made
    assert visit.recruits == 1 and len(visit.genus_changed) == 1

    before, after, linking, fates = _track(mask, visit, Alignment(visit.matrix, "truth"))

    assert _first_fates(fates) == visit.expected
    counts = fates.counts()
    assert counts["recruitment"] == visit.recruits
    assert counts["fission"] == 2 and counts["fusion"] == 2 and counts["out_of_view"] == 0
    flagged = {link.before for link in fates.links if link.genus_changed}
    assert flagged == visit.genus_changed
    # Ids are shared: a persisted colony's after colony carries its id; the fused colony
    # carries one of its parents'; a recruit's id is new.
    for link in fates.links:
        if link.fate == "persisted":
            assert fates.after_ids[link.after] == link.colony_id
        if link.fate == "recruitment":
            assert link.colony_id > len(before)
    rows = link_rows("plot", ("a", "b"), before, after, linking, fates, (10.0, 10.0))
    growth = {r["colony_id"]: r["growth_percent"] for r in rows if r["growth_percent"] != ""}
    assert len(growth) == counts["persisted"] + counts["partial_mortality"]
    assert max(growth.values()) > 5 and min(growth.values()) < -30  # grown; partial mortality
    persisted = [r for r in rows if r["fate"] == "persisted"]
    cm2 = [(r["area_after_common_px"] - r["area_before_common_px"]) / 100 for r in persisted]
    assert [r["growth_cm2"] for r in persisted] == pytest.approx(cm2, abs=1e-3)


def test_summaries_count_fates_and_give_mean_growth_with_its_standard_error() -> None:
    _, mask = first_visit(0)
    visit = second_visit(mask, VALUES, camera=STILL, seed=0)
    before, after, linking, fates = _track(mask, visit, Alignment(visit.matrix, "truth"))
    rows = link_rows("p1", ("a", "b"), before, after, linking, fates)
    per_plot = summary_rows(rows, "plot")
    assert len(per_plot) == 1
    summary = per_plot[0]
    assert summary["links"] == len(rows)
    assert summary["n_death"] == 1 and summary["n_recruitment"] == 1
    growth = [float(r["growth_percent"]) for r in rows if r["growth_percent"] != ""]
    assert summary["mean_growth_percent"] == pytest.approx(np.mean(growth), abs=1e-3)
    se = np.std(growth, ddof=1) / np.sqrt(len(growth))
    assert summary["se_growth_percent"] == pytest.approx(se, abs=1e-3)
    per_class = summary_rows(rows, "class")
    assert {r["class"] for r in per_class} <= set(CLASSES.values())
    assert sum(r["links"] for r in per_class) == len(rows)


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_fates_on_rendered_photos_after_feature_alignment(seed) -> None:
    """Tolerance: the alignment within RENDERED_TOLERANCE_PX of the true camera move, and
    then every fate exact."""
    photo, mask = first_visit(seed)
    visit = second_visit(mask, VALUES, photo=photo, seed=seed)

    alignment = align_photos(photo, visit.photo)

    assert alignment.method == "features" and alignment.inliers >= 100
    assert alignment.reprojection_error_px < 1.0
    assert _grid_error(alignment, visit.matrix, *mask.shape) < RENDERED_TOLERANCE_PX
    before, after, _, fates = _track(mask, visit, alignment)
    assert _first_fates(fates) == visit.expected
    assert fates.counts()["recruitment"] == visit.recruits
    picture = pair_picture(photo, visit.photo, before, after, fates, height=200)
    assert picture.shape[0] > 200 and picture.dtype == np.uint8
    plain = np.asarray(Image.fromarray(photo).resize((picture[:200].shape[1] // 2 - 4, 200)))
    tinted = np.abs(picture[:200, : plain.shape[1]].astype(int) - plain).max(axis=-1) > 40
    assert tinted.mean() > 0.05  # the colonies are painted in their ids' colours


def test_photos_that_do_not_overlap_are_refused_with_a_sentence() -> None:
    photo, _ = first_visit(0)
    other, _ = first_visit(5)
    with pytest.raises(ValueError, match="the two photos do not overlap"):
        align_photos(photo, other)
    flat = np.full_like(photo, 120)
    with pytest.raises(ValueError, match=r"do not overlap .*texture"):
        align_photos(photo, flat)


def test_a_genus_change_is_flagged_not_silently_matched() -> None:
    _, mask = first_visit(3)
    visit = second_visit(mask, VALUES, camera=STILL, seed=3)
    before, after, linking, fates = _track(mask, visit, Alignment(visit.matrix, "truth"))
    (changed,) = visit.genus_changed
    (link,) = [x for x in fates.links if x.before == changed]
    assert link.genus_changed and link.fate == "persisted"
    assert before[changed].label != after[link.after].label
    rows = link_rows("p", ("a", "b"), before, after, linking, fates)
    flagged = [r for r in rows if r["genus_changed"]]
    assert [(r["class_before"], r["class_after"]) for r in flagged] == [
        (before[changed].label, after[link.after].label)
    ]


def test_geotransforms_align_orthomosaics_and_a_residual_shift_is_measured() -> None:
    _, mask = first_visit(4)
    before_geo = GeoInfo((500000.0, 0.01, 0.0, 8000000.0, 0.0, -0.01), "EPSG:32706")
    # The second orthomosaic starts 0.5 m east and 0.3 m south, at 2 cm pixels.
    after_geo = GeoInfo((500000.5, 0.02, 0.0, 7999999.7, 0.0, -0.02), "EPSG:32706")
    alignment = align_geotransforms(before_geo, after_geo)
    # Before point (99.5, 79.5) is the pixel corner (100, 80): map (500001.0, 7999999.2),
    # which is the corner (25, 25) of the after raster, its point (24.5, 24.5).
    assert alignment.map_points(np.array([[99.5, 79.5]]))[0] == pytest.approx([24.5, 24.5])
    with pytest.raises(ValueError, match="different coordinate systems"):
        align_geotransforms(before_geo, GeoInfo(after_geo.geotransform, "EPSG:4326"))

    # GPS drift: the second visit lies (6, -4) px off where its geotransform says.
    truth = np.array([[1.0, 0, 6], [0, 1, -4], [0, 0, 1]])
    drifted = warped_copy(np.stack([mask * 60] * 3, axis=-1).astype(np.uint8), truth, STILL)
    refined = refine_shift(Alignment(np.eye(3), "geotransform"), mask * 60, drifted[..., 0])
    assert refined.residual_shift == pytest.approx((6.0, -4.0), abs=0.3)


def test_geojson_features_of_both_visits_share_the_colony_id() -> None:
    _, mask = first_visit(0)
    visit = second_visit(mask, VALUES, camera=STILL, seed=0)
    before, after, _, fates = _track(mask, visit, Alignment(visit.matrix, "truth"))
    first = visit_features("p", "before", "a", before, fates)
    second = visit_features("p", "after", "b", after, fates, pixels_per_cm=10.0)
    assert len(first) == len(before) and len(second) == len(after)
    persisted = [x for x in fates.links if x.fate == "persisted"]
    for link in persisted:
        assert first[link.before]["properties"]["colony_id"] == link.colony_id
        assert second[link.after]["properties"]["colony_id"] == link.colony_id
        assert second[link.after]["properties"]["fate"] == "persisted"
    assert second[0]["geometry"]["type"] in ("Polygon", "MultiPolygon")
    assert second[0]["properties"]["area_cm2"] == pytest.approx(after[0].area / 100)


EILAT_CAMERAS = [
    Camera(rotation_deg=4.0, zoom=1.06, shift=(25.0, -15.0), perspective=1e-5),
    Camera(-8.0, 0.92, (-40.0, 30.0), 2e-5, gain=0.75, gamma=1.3, tint=(-10.0, 5.0, 15.0)),
]


@pytest.mark.shared_data
@pytest.mark.parametrize(
    ("image", "camera"),
    [
        pytest.param("1v6kubz3rj00.jpg", EILAT_CAMERAS[0], marks=pytest.mark.slow),
        ("LFT_0131_00.jpg", EILAT_CAMERAS[1]),
    ],
    ids=["closer", "farther-darker"],
)
def test_eilat_photos_align_with_warped_copies_of_themselves(shared_data, image, camera) -> None:
    """An EilatMixx photo (1380 x 920) against a copy seen by a moved camera (rotated, zoomed,
    shifted, a little perspective) under other light: within EILAT_TOLERANCE_PX everywhere
    on the photo."""
    photo = np.asarray(Image.open(shared_data / "eilat_train" / "images" / image).convert("RGB"))
    truth = camera.matrix(*photo.shape[:2])
    alignment = align_photos(photo, warped_copy(photo, truth, camera))
    assert _grid_error(alignment, truth, *photo.shape[:2]) < EILAT_TOLERANCE_PX
    assert alignment.inliers >= 500 and alignment.reprojection_error_px < 1.0


@pytest.mark.shared_data
def test_two_eilat_photos_of_different_reef_are_refused(shared_data) -> None:
    photo = np.asarray(Image.open(shared_data / "eilat_train/images/1v6kubz3rj00.jpg"))
    width = photo.shape[1]
    with pytest.raises(ValueError, match="the two photos do not overlap"):
        align_photos(photo[:, : width // 3], photo[:, 2 * width // 3 :])
