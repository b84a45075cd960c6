"""Files that appear whole or not at all: write a temporary sibling, rename it into place.

Every output coralseg writes in one go (JSON reports, CSVs, plots, ONNX models, downloaded
images) goes through :func:`atomic_path`, so an interrupted or failed run never leaves a
half-written file where a finished one is expected.
"""

from __future__ import annotations

import contextlib
import json
import os
import secrets
from collections.abc import Iterator
from pathlib import Path
from typing import Any


@contextlib.contextmanager
def atomic_path(path: str | Path) -> Iterator[Path]:
    """A temporary path beside ``path`` to write to.

    When the ``with`` block ends cleanly the temporary file is renamed onto ``path`` (an
    atomic replace on one file system); when it raises, the temporary file is removed and
    ``path`` keeps whatever it held before. The parent folder is created if needed. Files
    get the usual umask permissions (unlike ``tempfile.mkstemp``'s owner-only 0600).
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    temporary = path.with_name(f".{path.name}.{os.getpid()}.{secrets.token_hex(4)}.tmp")
    try:
        yield temporary
        os.replace(temporary, path)
    finally:
        temporary.unlink(missing_ok=True)


def write_text_atomically(path: str | Path, text: str) -> None:
    """Write UTF-8 text to ``path`` atomically."""
    with atomic_path(path) as temporary:
        temporary.write_text(text, encoding="utf-8")


def write_json_atomically(path: str | Path, data: Any, indent: int | None = None) -> None:
    """Write ``data`` as JSON to ``path`` atomically."""
    text = json.dumps(data, indent=indent)
    write_text_atomically(path, text + "\n" if indent is not None else text)
