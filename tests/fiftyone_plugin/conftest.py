"""Fixtures of the plugin tests: the plugin registered with FiftyOne, a reef dataset, a model.

The plugin is installed the way a user has it: a folder in FiftyOne's plugins directory
holding ``fiftyone.yml`` (here a link to the working tree; the download test installs a real
copy with ``fiftyone plugins download``).
"""

from __future__ import annotations

import os
import uuid
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from coral_core.labels.taxonomy import FAMILIES, MaskEncoding
from tests.colony_shapes import disc_polygon
from tests.model_fixtures import REPO, TINY, save_tiny_checkpoint

PLUGIN = "@coralseg/coralseg"
COLORS = {"Acropora": (200, 40, 40), "Porites": (40, 60, 220), "Montipora": (40, 200, 60)}
SIZE = 96


def uri(name: str) -> str:
    return f"{PLUGIN}/{name}"


@pytest.fixture(scope="session")
def plugins_dir(fiftyone, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """FiftyOne's plugins directory with this working tree installed as the coralseg plugin."""
    folder = tmp_path_factory.mktemp("plugins")
    (folder / "coralseg").symlink_to(REPO, target_is_directory=True)
    fiftyone.config.plugins_dir = str(folder)
    os.environ["FIFTYONE_PLUGINS_DIR"] = str(folder)
    return folder


def make_reef(fo, folder: Path, count: int = 4, name: str | None = None):
    """Coloured colonies on sand, one ``fo.Polyline`` each; tags train (first half) / val."""
    rng = np.random.default_rng(0)
    samples = []
    yy, xx = np.mgrid[0:SIZE, 0:SIZE] / SIZE
    for index in range(count):
        image = np.full((SIZE, SIZE, 3), (190, 170, 120), np.float64)
        image += rng.normal(0, 8, image.shape)
        polylines = []
        for label, color in COLORS.items():
            cx, cy, r = rng.uniform(0.3, 0.7), rng.uniform(0.3, 0.7), rng.uniform(0.1, 0.2)
            image[(xx + 0.5 / SIZE - cx) ** 2 + (yy + 0.5 / SIZE - cy) ** 2 < r**2] = color
            polylines.append(
                fo.Polyline(
                    label=label, points=[disc_polygon(cx, cy, r).tolist()], closed=True, filled=True
                )
            )
        path = folder / f"quadrat_{index}.jpg"
        Image.fromarray(np.clip(image, 0, 255).astype(np.uint8)).save(path, quality=95)
        samples.append(
            fo.Sample(
                filepath=str(path),
                tags=["train" if index < count // 2 else "val"],
                gt_polylines=fo.Polylines(polylines=polylines),
            )
        )
    dataset = fo.Dataset(name or f"reef-{uuid.uuid4().hex[:8]}")
    dataset.add_samples(samples, progress=False)
    return dataset


@pytest.fixture
def reef(fiftyone, plugins_dir: Path, tmp_path: Path) -> Iterator[object]:
    """A fresh four-image dataset of the families taxonomy's genera."""
    dataset = make_reef(fiftyone, tmp_path)
    yield dataset
    dataset.delete()


@pytest.fixture(scope="session")
def tiny_model(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    """A tiny families model with random weights, at native resolution: the tiny config's
    test Resize would blow 96 px images up to 460."""
    path = tmp_path_factory.mktemp("model") / "tiny_families.pth"
    return TINY, save_tiny_checkpoint(path, MaskEncoding(FAMILIES), native_resolution=True)


from tests.fake_cvat.fixtures import fake_cvat  # noqa: E402, F401
