"""A core error about a setting names what the deployer changes: a function.yaml variable, or
the function folder's model file; through nuclio-sdk's platform with a real HTTP event."""

from __future__ import annotations

import io
from pathlib import Path

import numpy as np
import pytest
from nuclio_sdk.test import Platform
from PIL import Image

from coral_core.errors import CoralsegError
from nuclio_functions.semantic import main as semantic_main
from nuclio_functions.serving import FunctionSettings
from tests.model_fixtures import TINY, save_tiny_checkpoint
from tests.nuclio_functions.conftest import FUNCTION_ENV, http_event, request_body, torch_layout


def test_bad_thresholds_name_the_function_yaml_variables(tmp_path: Path) -> None:
    env = {**FUNCTION_ENV, "CORALSEG_MIN_THRESHOLD": "0.5", "CORALSEG_UNSURE_THRESHOLD": "0.1"}
    with pytest.raises(CoralsegError) as caught:
        FunctionSettings.from_env(tmp_path, env)
    message = str(caught.value)
    assert message.startswith("function.yaml: thresholds must satisfy")
    assert message.endswith(
        "(in function.yaml's env, change CORALSEG_MIN_THRESHOLD, CORALSEG_UNSURE_THRESHOLD)"
    )


def test_a_model_that_needs_coralscop_says_which_file(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from mmengine import Config

    from coral_core.labels.taxonomy import FAMILIES, MaskEncoding

    config = tmp_path / "tiny.py"  # one file: the folder holds no _base_ configs
    Config.fromfile(str(TINY)).dump(str(config))
    # colonies only, background ignored: without CoralSCoP it cannot tell coral from not coral
    weights = save_tiny_checkpoint(
        tmp_path / "agnostic.pth",
        MaskEncoding(FAMILIES, background_is_ignore=True),
        native_resolution=True,
        config=config,
    )
    folder = tmp_path / "function"
    folder.mkdir()
    torch_layout(folder, config, weights)
    monkeypatch.setenv("CORALSEG_MODEL_DIR", str(folder))
    for name, value in FUNCTION_ENV.items():
        monkeypatch.setenv(name, value)
    image = io.BytesIO()
    pixels = np.random.default_rng(0).integers(0, 256, (48, 64, 3), dtype=np.uint8)
    Image.fromarray(pixels).save(image, format="PNG")

    # Nuclio runs init_context before the first event; the function does not start
    with pytest.raises(CoralsegError) as caught:
        Platform().call_handler(semantic_main.handler, http_event(request_body(image.getvalue())))
    message = str(caught.value)
    assert message.startswith("this model's classes")
    assert message.endswith(
        "(package the two-stage function, whose folder holds vit_b_coralscop.pth)"
    )
