"""Cover error between two mask sets, in percentage points."""

from __future__ import annotations

import numpy as np
import pytest

from coral_core.ecology.agreement import ALL_CLASSES, cover_agreement
from coral_core.ecology.cover import CoverTable, image_cover
from coral_core.ecology.groups import group_images
from coral_core.ecology.legend import ClassLegend
from coral_core.labels.taxonomy import EILAT, MaskEncoding

LEGEND = ClassLegend.from_encoding(MaskEncoding(EILAT, background_is_ignore=True))


def table(masks: dict[str, np.ndarray], legend: ClassLegend = LEGEND) -> CoverTable:
    names = list(masks)
    return CoverTable.from_covers(names, [image_cover(masks[n], legend) for n in names])


def random_masks(seed: int, names: list[str]) -> dict[str, np.ndarray]:
    rng = np.random.default_rng(seed)
    values = np.array([*LEGEND.values, 255], dtype=np.uint8)
    return {n: rng.choice(values, size=(24, 31)) for n in names}


def test_errors_are_predicted_minus_annotated_cover_per_image_and_class() -> None:
    names = ["q1", "q2", "q3"]
    truth, prediction = random_masks(0, names), random_masks(1, names)
    agreement = cover_agreement(table(truth), table(prediction))
    assert agreement.images == tuple(names)
    for i, name in enumerate(names):
        for c, value in enumerate(LEGEND.values):
            t = 100 * np.count_nonzero(truth[name] == value) / np.count_nonzero(truth[name] != 255)
            p = (
                100
                * np.count_nonzero(prediction[name] == value)
                / np.count_nonzero(prediction[name] != 255)
            )
            assert agreement.error[i, c] == pytest.approx(p - t)
    rows = agreement.image_rows()
    assert len(rows) == 3 * len(LEGEND.names)
    assert rows[0]["abs_error_pp"] == pytest.approx(abs(rows[0]["error_pp"]))
    summary = agreement.class_rows()
    assert summary[-1]["class"] == ALL_CLASSES
    assert summary[-1]["mean_abs_error_pp"] == pytest.approx(np.abs(agreement.error).mean())
    first = summary[0]
    assert first["mean_abs_error_pp"] == pytest.approx(np.abs(agreement.error[:, 0]).mean())
    assert first["mean_error_pp"] == pytest.approx(agreement.error[:, 0].mean())
    assert first["rmse_pp"] == pytest.approx(np.sqrt((agreement.error[:, 0] ** 2).mean()))
    np.testing.assert_allclose(agreement.mean_abs_error(), np.abs(agreement.error).mean(axis=0))


def test_identical_masks_agree_exactly() -> None:
    masks = random_masks(4, ["a", "b"])
    agreement = cover_agreement(table(masks), table(masks))
    assert not agreement.error.any()
    assert all(row["mean_abs_error_pp"] == 0.0 for row in agreement.class_rows())


def test_classes_match_by_name_across_encodings_and_missing_images_are_listed() -> None:
    # annotations with background as class 0; predictions 0..N-1 with 255 background
    with_background = ClassLegend.from_encoding(MaskEncoding(EILAT), "ignore")
    truth = np.zeros((4, 4), dtype=np.uint8)  # background, excluded from the annotated area
    truth[:2] = MaskEncoding(EILAT).value_of("Acropora")
    truth[2] = MaskEncoding(EILAT).value_of("Millepora")
    predicted = np.full((4, 4), 255, dtype=np.uint8)
    predicted[:3] = EILAT.classes.index("Acropora")
    empty = np.full((4, 4), 255, dtype=np.uint8)
    agreement = cover_agreement(
        table({"x": truth, "gone": truth, "blank": truth}, with_background),
        table({"x": predicted, "extra": predicted, "blank": empty}),
    )
    assert agreement.images == ("x",)
    assert agreement.only_annotated == ("gone", "blank")
    assert agreement.only_predicted == ("extra", "blank")
    acropora = agreement.classes.index("Acropora")
    millepora = agreement.classes.index("Millepora")
    assert agreement.annotated[0, acropora] == pytest.approx(100 * 8 / 12)
    assert agreement.predicted[0, acropora] == 100.0
    assert agreement.error[0, millepora] == pytest.approx(-100 * 4 / 12)


def test_group_rows_give_error_of_means_and_mean_abs_error() -> None:
    truth = CoverTable(
        ("a", "b"), ("coral", "sand"), np.array([[10, 90], [30, 70]]), np.array([100, 100])
    )
    pred = CoverTable(
        ("a", "b"), ("coral", "sand"), np.array([[20, 80], [20, 80]]), np.array([100, 100])
    )
    agreement = cover_agreement(truth, pred)
    grouping = group_images(agreement.images)
    coral = agreement.group_rows(grouping)[0]
    assert coral["group"] == "all images" and coral["n_images"] == 2
    assert coral["annotated_mean_cover_percent"] == pytest.approx(20.0)
    assert coral["predicted_mean_cover_percent"] == pytest.approx(20.0)
    assert coral["error_of_means_pp"] == pytest.approx(0.0)  # +10 and -10 cancel
    assert coral["mean_abs_error_pp"] == pytest.approx(10.0)
    with pytest.raises(ValueError, match="grouping"):
        agreement.group_rows(group_images(["a"]))
