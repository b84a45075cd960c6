"""fiftyone_plugin.models: model files checked with a sentence for the forms, and loaded once
per (files, modification times) however often the operators ask."""

from __future__ import annotations

import os
import re
from pathlib import Path

import pytest

from coral_core.errors import CoralsegError
from coral_core.labels.taxonomy import FAMILIES, MaskEncoding
from fiftyone_plugin import models
from fiftyone_plugin.models import (
    check_config,
    check_model_files,
    resolve_file,
    semantic_model,
    two_stage_predictor,
)


def test_files_are_resolved_or_refused_with_what_they_are(tmp_path: Path) -> None:
    config = tmp_path / "model.py"
    config.write_text("x = 1\n")
    assert resolve_file(f"  {config} ", "config", (".py",)) == config.resolve()
    assert resolve_file(str(config), "anything") == config.resolve()
    with pytest.raises(CoralsegError, match=r"^give the checkpoint$"):
        resolve_file("  ", "checkpoint")
    with pytest.raises(CoralsegError, match=r"^give the checkpoint$"):
        resolve_file(None, "checkpoint")
    with pytest.raises(
        CoralsegError, match=rf"^the checkpoint {re.escape(str(tmp_path))}/w\.pth does not exist$"
    ):
        resolve_file(str(tmp_path / "w.pth"), "checkpoint", (".pth",))
    with pytest.raises(CoralsegError, match=r"model\.py is not a \.pth or \.pt file$"):
        resolve_file(str(config), "checkpoint", (".pth", ".pt"))
    with pytest.raises(CoralsegError, match="does not exist"):
        resolve_file(str(tmp_path), "config")  # a folder is not a file


def test_configs_that_do_not_load_or_define_no_model(tmp_path: Path) -> None:
    config = tmp_path / "model.py"
    config.write_text("model = dict(type='EncoderDecoder', decode_head=dict(num_classes=3))\n")
    assert check_config(str(config)) == config.resolve()
    config.write_text("model = dict(type='EncoderDecoder')\n")
    os.utime(config, ns=(1, 1))  # a new modification time, so the cached check is not reused
    with pytest.raises(CoralsegError, match="defines no segmentation model"):
        check_config(str(config))
    config.write_text("model = dict(\n")
    os.utime(config, ns=(2, 2))
    with pytest.raises(CoralsegError, match=rf"^config {re.escape(str(config))} does not load: "):
        check_config(str(config))


def test_a_model_is_loaded_once_and_again_when_its_file_changes(tiny_model, tmp_path) -> None:
    config, checkpoint = tiny_model
    copy = tmp_path / "copy.pth"
    copy.write_bytes(checkpoint.read_bytes())
    loads = models._semantic.cache_info().misses
    assert check_model_files(str(config), str(copy)) == MaskEncoding(FAMILIES)
    first = semantic_model(config, copy)
    assert semantic_model(str(config), str(copy)) is first
    assert models._semantic.cache_info().misses == loads + 1
    os.utime(copy, ns=(10**18, 10**18))  # the user trained it again
    assert semantic_model(config, copy) is not first
    predictor = two_stage_predictor(config, copy)
    assert predictor.semantic.network is semantic_model(config, copy).network
    assert models._semantic.cache_info().misses == loads + 2


def test_a_checkpoint_that_does_not_fit_is_a_sentence(tiny_model, tmp_path: Path) -> None:
    import torch

    config, checkpoint = tiny_model
    state = torch.load(checkpoint, weights_only=True)
    state["state_dict"] = {k: v for k, v in state["state_dict"].items() if "decode_head" not in k}
    headless = tmp_path / "headless.pt"
    torch.save(state, headless)
    with pytest.raises(
        CoralsegError, match=rf"headless\.pt does not fit config {re.escape(config.name)}: "
    ):
        check_model_files(str(config), str(headless))
    with pytest.raises(CoralsegError, match=r"^give the checkpoint$"):
        check_model_files(str(config), "")
    with pytest.raises(CoralsegError, match=r"the SAM checkpoint .*sam\.pth does not exist"):
        two_stage_predictor(config, checkpoint, tmp_path / "sam.pth")
