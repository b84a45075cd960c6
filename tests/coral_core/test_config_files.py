from __future__ import annotations

import importlib.util
from pathlib import Path

import pytest

from coral_core.config_files import MOVED_MODULES, read_config
from coral_core.errors import CoralsegError

CONFIGS = Path(__file__).resolve().parents[2] / "configs"


def test_a_shipped_config_reads() -> None:
    cfg = read_config(CONFIGS / "dinov2-vits14-segformer_tiny-cpu_eilat-224x224.py")
    assert cfg.model.decode_head.type == "SegformerHead"
    assert cfg.model.backbone.type == "DINOv2ViT"


def test_a_config_importing_a_moved_module_names_its_new_place(tmp_path: Path) -> None:
    config = tmp_path / "mine.py"
    config.write_text("import coral_core.mmseg_config as coral\nnum_classes = 3\n")
    with pytest.raises(CoralsegError) as caught:
        read_config(config)
    message = str(caught.value)
    assert "'coral_core.mmseg_config'" in message
    assert "'coral_core.training.mmseg_config'" in message and "CHANGELOG.md" in message
    config.write_text("from coral_core.annotation_formats.coco import read_coco\n")
    with pytest.raises(CoralsegError, match=r"now 'coral_core\.formats\.annotations\.coco'"):
        read_config(config)


def test_failures_are_one_sentence(tmp_path: Path) -> None:
    with pytest.raises(CoralsegError, match="does not exist"):
        read_config(tmp_path / "absent.py")
    config = tmp_path / "broken.py"
    config.write_text("model = dict(type=\n")
    with pytest.raises(CoralsegError, match="does not load") as caught:
        read_config(config)
    assert "\n" not in str(caught.value)
    config.write_text("from coral_core import rle, errors\n")
    with pytest.raises(CoralsegError, match=r"'coral_core\.rle', which is now 'coral_core\.form"):
        read_config(config)


def test_the_moved_modules_are_where_the_list_says() -> None:
    for old, new in MOVED_MODULES.items():
        assert importlib.util.find_spec(new) is not None, new
        parent, _, leaf = old.rpartition(".")
        assert importlib.util.find_spec(parent) is not None
        assert not (Path(importlib.util.find_spec(parent).origin).parent / f"{leaf}.py").exists()
