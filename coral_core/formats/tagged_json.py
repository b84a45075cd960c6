"""JSON files whose top level carries a format tag, ``{"format": "<name>/<version>", ...}``.

The formats coralseg defines this way (:mod:`coral_core.formats.dataset_manifest`,
:mod:`coral_core.inference.onnx_sidecar`) read their files through
:func:`read_tagged_json`, which refuses another format or version and any missing or
unknown field with one sentence each.
"""

from __future__ import annotations

import json
from collections.abc import Set
from pathlib import Path
from typing import Any

from coral_core.errors import CoralsegError


def read_tagged_json(
    path: str | Path,
    tag: str,
    keys: Set[str],
    redo: str,
    absent: str | None = None,
    optional: Set[str] = frozenset(),
) -> dict[str, Any]:
    """The top-level object of the ``tag`` file at ``path``, with exactly ``keys`` (and
    any of ``optional``).

    Args:
        keys: the fields the writer always writes, ``format`` included.
        optional: the fields the writer writes only in some cases.
        redo: how to write the file again, ending every sentence (e.g. "export the model
            to ONNX again").
        absent: the sentence for a missing file (default: "<path> does not exist; <redo>").

    Raises:
        CoralsegError: the file is missing, unreadable, not JSON, of another format or
            version, or lacks or adds a field.
    """
    path = Path(path)
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise CoralsegError(absent or f"{path} does not exist; {redo}") from None
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as err:
        raise CoralsegError(f"cannot read {path} ({err}); {redo}") from None
    found = data.get("format") if isinstance(data, dict) else None
    if found != tag:
        raise CoralsegError(f"{path} is not a {tag!r} file (format {found!r}); {redo}")
    missing, unknown = sorted(keys - data.keys()), sorted(data.keys() - keys - optional)
    if missing:
        raise CoralsegError(f"{path} lacks the fields {', '.join(missing)}; {redo}")
    if unknown:
        raise CoralsegError(f"{path} has fields {tag} does not define: {unknown}; {redo}")
    return data
