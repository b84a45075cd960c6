"""Pairing two visits' images into plots, and tracking one plot from its mask sources."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from coral_core.ecology.sources import locate_masks
from coral_core.errors import CoralsegError
from coral_core.tracking.pairs import find_photo, pair_visits
from coral_core.tracking.tables import alignment_row
from coral_core.tracking.visits import TrackSettings, track_plot

CLASSES_TXT = "background\nAcropora\nPorites\n"


def _visit(root: Path, masks: dict[str, np.ndarray]) -> Path:
    root.mkdir(parents=True)
    (root / "classes.txt").write_text(CLASSES_TXT)
    for name, mask in masks.items():
        Image.fromarray(mask).save(root / f"{name}.png")
    return root


def _mask(shift: int = 0, grow: int = 0) -> np.ndarray:
    mask = np.zeros((40, 60), dtype=np.uint8)
    mask[5 + shift : 15 + shift + grow, 5:20] = 1  # Acropora
    mask[25:35, 40:55] = 2  # Porites
    return mask


def test_visits_pair_by_name_pattern_or_csv(tmp_path: Path) -> None:
    before = locate_masks(_visit(tmp_path / "a", {"P1_2023": _mask(), "P2_2023": _mask()}))
    after = locate_masks(_visit(tmp_path / "b", {"P1_2024": _mask(), "P3_2024": _mask()}))
    with pytest.raises(CoralsegError, match="could be paired") as raised:
        pair_visits(before, after, None)
    assert raised.value.settings == ("pairs",)
    (pair,) = pair_visits(before, after, "<plot>_<year>")
    assert (pair.plot, pair.before.name, pair.after.name) == ("P1", "P1_2023", "P1_2024")
    csv = tmp_path / "pairs.csv"
    csv.write_text("before,after,plot\nP2_2023.png,P3_2024.png,reef-3\n")
    (pair,) = pair_visits(before, after, str(csv))
    assert (pair.plot, pair.before.name, pair.after.name) == ("reef-3", "P2_2023", "P3_2024")
    with pytest.raises(CoralsegError, match="needs a <plot> field"):
        pair_visits(before, after, "<year>_x")


def test_photos_are_found_by_name_in_a_folder(tmp_path: Path) -> None:
    source = locate_masks(_visit(tmp_path / "masks", {"q1": _mask()}))
    (tmp_path / "photos").mkdir()
    Image.new("RGB", (60, 40)).save(tmp_path / "photos" / "q1.jpg")
    (item,) = source.items
    assert find_photo(source, item, tmp_path / "photos") == tmp_path / "photos" / "q1.jpg"
    assert find_photo(source, item, None) is None


def test_one_plot_on_one_pixel_grid_is_linked_with_its_fates(tmp_path: Path) -> None:
    sources = (
        locate_masks(_visit(tmp_path / "a", {"q": _mask()})),
        locate_masks(_visit(tmp_path / "b", {"q": _mask(grow=6)})),
    )
    (pair,) = pair_visits(*sources, None)
    result = track_plot(pair, sources, TrackSettings(align="none", scale=2.0))
    assert result.fates.counts()["persisted"] == 2 and len(result.fates.links) == 2
    assert result.before.pixels_per_cm == 2.0
    row = alignment_row(result.plot, result.before.name, result.after.name, result.alignment)
    assert row["method"] == result.alignment.method and row["plot"] == "q"
    assert row["matrix"] == "1 0 0 0 1 0 0 0 1"


@pytest.mark.parametrize(
    ("settings", "setting"),
    [
        ({"min_overlap": 0.0}, "min_overlap"),
        ({"partial_mortality": 1.0}, "partial_mortality"),
        ({"min_colony_area": 0}, "min_colony_area"),
        ({"align": "sideways"}, "align"),
    ],
)
def test_track_settings_out_of_range_name_the_setting(settings, setting) -> None:
    with pytest.raises(CoralsegError) as raised:
        TrackSettings(**settings)
    assert raised.value.settings == (setting,)
