"""Checks of operator inputs that need the dataset: names of new fields and evaluation keys.

Each returns the cleaned value or raises :class:`coral_core.errors.CoralsegError` with a
sentence saying what to change.
"""

from __future__ import annotations

import re
from pathlib import Path

from coral_core.errors import CoralsegError

_IDENTIFIER = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")

# Relative paths typed into the operators' forms start here, whatever folder the App server
# was started in: the coralseg folder holding fiftyone.yml (the clone, or the downloaded
# plugin), so "configs/....py" names a config shipped with it.
FORM_ROOT = Path(__file__).resolve().parents[1]


def form_path(value: str | None) -> str | None:
    """A file path typed into a form, absolute (relative ones start at :data:`FORM_ROOT`)."""
    if value is None or not str(value).strip():
        return value
    path = Path(str(value).strip()).expanduser()
    return str(path if path.is_absolute() else FORM_ROOT / path)


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


def free_evaluation_key(dataset, base: str) -> str:
    """``base``, or ``base_2``, ``base_3``, ... : the first key no evaluation of ``dataset`` has."""
    taken = set(dataset.list_evaluations()) if dataset is not None else set()
    key, number = base, 1
    while key in taken:
        number += 1
        key = f"{base}_{number}"
    return key


def evaluation_key(dataset, value: str, replace: bool) -> str:
    """A key for a new evaluation; an existing one only with ``replace`` (never silently)."""
    key = identifier(value, "the evaluation key")
    if dataset is not None and key in dataset.list_evaluations() and not replace:
        raise CoralsegError(
            f"the evaluation {key!r} exists; tick 'Replace an evaluation of the same key' to "
            f"replace it, or keep both with a new key such as "
            f"{free_evaluation_key(dataset, key)!r}"
        )
    return key


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
