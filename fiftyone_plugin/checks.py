"""Checks of operator inputs that need the dataset: names of new fields and evaluation keys.

Each returns the cleaned value or raises :class:`coral_core.errors.CoralsegError` with a
sentence saying what to change.
"""

from __future__ import annotations

import re
from pathlib import Path

from coral_core.errors import CoralsegError

_IDENTIFIER = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")


def identifier(value: str, what: str) -> str:
    """A name made of letters, digits and ``_`` (not starting with a digit)."""
    value = str(value).strip()
    if not _IDENTIFIER.fullmatch(value):
        raise CoralsegError(
            f"{what} {value!r} must be letters, digits and _ (not starting with a digit)"
        )
    return value


def output_field(dataset, name: str, kind: type) -> str:
    """A field to (re)write with ``kind`` labels: new, or already holding ``kind``."""
    name = identifier(name, "the field name")
    spec = dataset.get_field_schema(flat=True).get(name) if dataset is not None else None
    if spec is not None and getattr(spec, "document_type", None) is not kind:
        held = getattr(getattr(spec, "document_type", None), "__name__", type(spec).__name__)
        raise CoralsegError(
            f"field {name!r} already holds {held}, not {kind.__name__}; choose another name"
        )
    return name


def output_folder(value: str, must_be_new: bool = False) -> Path:
    """A folder to write into: its parent must exist or be creatable."""
    path = Path(str(value).strip()).expanduser()
    if path.exists() and not path.is_dir():
        raise CoralsegError(f"{path} is a file, not a folder")
    if must_be_new and path.exists():
        raise CoralsegError(f"{path} already exists; choose another folder or allow overwriting")
    parent = next((p for p in path.absolute().parents if p.exists()), None)
    if parent is None or not parent.is_dir():
        raise CoralsegError(f"{path} cannot be created: no existing folder above it")
    return path
