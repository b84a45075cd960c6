"""The ``coralseg`` console script, run as a user runs it."""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from coral_core.labels.taxonomy import FAMILIES


def _coralseg(*args: str) -> subprocess.CompletedProcess[str]:
    executable = shutil.which("coralseg") or str(Path(sys.executable).with_name("coralseg"))
    return subprocess.run([executable, *args], capture_output=True, text=True, timeout=120)


def test_help_lists_commands() -> None:
    result = _coralseg("--help")
    assert result.returncode == 0
    assert "taxonomy" in result.stdout and "doctor" in result.stdout


def test_taxonomy_list() -> None:
    result = _coralseg("taxonomy", "list")
    assert result.returncode == 0
    lines = result.stdout.splitlines()
    assert [line.split()[0] for line in lines] == [
        "finegrained",
        "extended",
        "families",
        "agnostic",
        "eilat",
    ]


def test_taxonomy_show_writes_class_files(tmp_path: Path) -> None:
    result = _coralseg("taxonomy", "show", "families", "--write", str(tmp_path))
    assert result.returncode == 0, result.stderr
    assert "Group1  <- Acanthastrea, Atrea" in result.stdout
    assert (tmp_path / "classes.txt").read_text().splitlines() == ["background", *FAMILIES.classes]


@pytest.mark.parametrize(
    ("content", "message"),
    [
        ("classes: [A, A]", "duplicate class 'A'"),
        ("classes: [{name: A, color: red}]", "colour 'red'"),
    ],
)
def test_bad_taxonomy_file_is_one_sentence_not_a_traceback(
    tmp_path: Path, content: str, message: str
) -> None:
    path = tmp_path / "mine.yaml"
    path.write_text(content)
    result = _coralseg("taxonomy", "show", str(path))
    assert result.returncode == 2
    assert "Traceback" not in result.stderr
    assert result.stderr.startswith("coralseg taxonomy: error: taxonomy file")
    assert message in result.stderr


def test_unknown_taxonomy_name() -> None:
    result = _coralseg("taxonomy", "show", "genera")
    assert result.returncode == 2
    assert "unknown taxonomy 'genera'" in result.stderr
