"""A prepared split's two-stage colonies judged against the drawn ones
(coral_core.evaluation.split_colonies, behind ``coralseg test --colonies``), on a folder the
test prepares itself and a tiny random-weight model."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from coral_core.ecology.colonies import component_instances
from coral_core.ecology.sources import locate_masks
from coral_core.errors import CoralsegError
from coral_core.evaluation.split_colonies import evaluate_split_colonies
from coral_core.formats.raster_io import open_image
from coral_core.inference.pipeline import TwoStagePredictor
from coral_core.labels.rasterize import LabeledPolyline
from coral_core.labels.taxonomy import FAMILIES, MaskEncoding
from coral_core.training.mmseg_export import ExportSample, export_mmseg_dataset
from tests.colony_shapes import disc_polygon
from tests.model_fixtures import TINY, save_tiny_checkpoint

SIZE = 64
COLORS = {"Acropora": (200, 40, 40), "Porites": (40, 60, 220), "Montipora": (40, 200, 60)}
# (split, colonies as (genus, centre x, centre y, radius) in image fractions); none overlap
IMAGES = {
    "plot_a": ("test", [("Acropora", 0.25, 0.25, 0.15), ("Porites", 0.7, 0.7, 0.2)]),
    "plot_b": (
        "test",
        [
            ("Montipora", 0.2, 0.7, 0.12),
            ("Acropora", 0.7, 0.25, 0.12),
            ("Acropora", 0.75, 0.75, 0.1),
        ],
    ),
    "plot_c": ("train", [("Porites", 0.5, 0.5, 0.3)]),
}


@pytest.fixture(scope="module")
def prepared(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A 'coralseg prepare' folder (families taxonomy) of the IMAGES: colonies on sand."""
    root = tmp_path_factory.mktemp("split_colonies")
    yy, xx = (np.mgrid[0:SIZE, 0:SIZE] + 0.5) / SIZE
    samples = []
    for name, (split, colonies) in IMAGES.items():
        image = np.full((SIZE, SIZE, 3), (190, 170, 120), np.uint8)
        polylines = []
        for genus, cx, cy, r in colonies:
            image[(xx - cx) ** 2 + (yy - cy) ** 2 < r**2] = COLORS[genus]
            polylines.append(LabeledPolyline(genus, (disc_polygon(cx, cy, r),)))
        Image.fromarray(image).save(root / f"{name}.png")
        samples.append(ExportSample(str(root / f"{name}.png"), split, tuple(polylines)))
    out = root / "families"
    export_mmseg_dataset(samples, out, MaskEncoding(FAMILIES), workers=1, progress=False)
    return out


@pytest.fixture(scope="module")
def checkpoint(tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("model") / "tiny.pth"
    return save_tiny_checkpoint(path, MaskEncoding(FAMILIES), native_resolution=True)


def test_each_test_image_is_judged_against_its_drawn_colonies(prepared, checkpoint) -> None:
    colonies, regions = evaluate_split_colonies(TINY, checkpoint, prepared, "test")

    tested = [name for name, (split, _) in IMAGES.items() if split == "test"]
    for evaluation in (colonies, regions):
        assert [image.name for image in evaluation.images] == tested
        assert [image.true for image in evaluation.images] == [
            len(IMAGES[name][1]) for name in tested
        ]
    assert regions.images[1].true_per_class["Acropora"] == 2

    # the seeded random model finds some colonies, so the counts below compare something
    assert sum(image.predicted for image in colonies.images) > 0
    assert sum(image.predicted for image in regions.images) > 0
    # The colonies are the two-stage predictor's, and the regions are the connected regions
    # of its raw semantic map: what 'coralseg infer' would find in each photo.
    predictor = TwoStagePredictor.from_files(TINY, checkpoint)
    legend = locate_masks(prepared).legend
    names = {value: legend.name_of(value) for value in legend.colony_values}
    assert set(COLORS) <= set(names.values())
    for index, name in enumerate(tested):
        (photo_path,) = (prepared / "test" / "data").glob(f"{name}.*")
        with open_image(photo_path) as photo:
            result = predictor(photo.read())
        assert colonies.images[index].predicted == len(result.instances.instances)
        expected_regions = component_instances(result.semantic_raw, names)
        assert regions.images[index].predicted == len(expected_regions)


def test_a_folder_that_is_not_prepared_is_refused_naming_the_setting(tmp_path, checkpoint) -> None:
    (tmp_path / "masks").mkdir()
    Image.fromarray(np.zeros((8, 8), np.uint8)).save(tmp_path / "masks" / "a.png")
    with pytest.raises(CoralsegError, match="needs a 'coralseg prepare' folder") as caught:
        evaluate_split_colonies(TINY, checkpoint, tmp_path / "masks")
    assert caught.value.settings == ("data_dir",)


def test_a_split_without_images_is_refused_naming_the_setting(prepared, checkpoint) -> None:
    with pytest.raises(CoralsegError, match="no labelled image in its val split") as caught:
        evaluate_split_colonies(TINY, checkpoint, prepared, "val")
    assert caught.value.settings == ("split",)
