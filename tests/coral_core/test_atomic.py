from __future__ import annotations

import json
from pathlib import Path

import pytest

from coral_core.atomic import atomic_path, write_json_atomically, write_text_atomically


def test_writes_appear_whole(tmp_path: Path) -> None:
    target = tmp_path / "sub" / "report.json"
    write_json_atomically(target, {"mIoU": 49.5}, indent=2)
    assert json.loads(target.read_text()) == {"mIoU": 49.5}
    assert target.read_text().endswith("\n")
    write_text_atomically(target, "replaced")
    assert target.read_text() == "replaced"
    assert sorted(p.name for p in target.parent.iterdir()) == ["report.json"]


def test_a_failure_keeps_the_old_file_and_leaves_no_temporary(tmp_path: Path) -> None:
    target = tmp_path / "model.onnx"
    target.write_text("old")
    with pytest.raises(RuntimeError, match="export failed"), atomic_path(target) as temporary:
        temporary.write_text("half")
        raise RuntimeError("export failed")
    assert target.read_text() == "old"
    assert [p.name for p in tmp_path.iterdir()] == ["model.onnx"]
