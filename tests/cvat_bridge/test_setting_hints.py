"""A core error about a setting names the key of the model's registry entry that changes it:
when the registry is read, and in a run's record (``GET /runs/{job}``, over HTTP)."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from coral_core.errors import CoralsegError
from cvat_bridge.registry import ModelRegistry
from tests.cvat_bridge.conftest import write_registry
from tests.cvat_bridge.harness import InProcessBridge, bridge_settings
from tests.fake_cvat import FakeCvatServer
from tests.model_fixtures import TINY, save_tiny_checkpoint


def test_bad_thresholds_name_the_registry_keys(tmp_path: Path) -> None:
    config, weights = tmp_path / "never-read.py", tmp_path / "never-read.pth"
    path = tmp_path / "models.yaml"
    path.write_text(
        f"models:\n  m:\n    config: {config}\n    weights: {weights}\n"
        "    min_threshold: 0.5\n    unsure_threshold: 0.1\n"
    )
    with pytest.raises(CoralsegError) as caught:
        ModelRegistry.from_file(path)
    message = str(caught.value)
    assert message.startswith("model 'm' in the registry: thresholds must satisfy")
    assert message.endswith(
        "(in the registry entry of model 'm', change min_threshold, unsure_threshold)"
    )
    # the command line that starts the bridge must not add its own --options
    assert caught.value.settings == ()


@pytest.fixture
def bridge(cvat: FakeCvatServer, tmp_path: Path) -> Iterator[InProcessBridge]:
    """The bridge serving, as tiny-coral, a model of colony classes only with background
    ignored: without CoralSCoP it cannot tell coral from not coral (``annotate_job`` uses
    this bridge in this module)."""
    from coral_core.labels.taxonomy import FAMILIES, MaskEncoding

    weights = save_tiny_checkpoint(
        tmp_path / "agnostic.pth",
        MaskEncoding(FAMILIES, background_is_ignore=True),
        native_resolution=True,
    )
    registry = write_registry(tmp_path / "models.yaml", (TINY, weights))
    with InProcessBridge(bridge_settings(cvat.url, registry, tmp_path / "cache")) as running:
        yield running


def test_a_run_record_names_the_sam_checkpoint_key(annotate_job) -> None:
    (failed,) = annotate_job(frames=1).run["frames_failed"]
    assert "cannot tell coral from not coral" in failed["error"]
    assert failed["error"].endswith(
        "(in the registry entry of model 'tiny-coral', change sam_checkpoint)"
    )
