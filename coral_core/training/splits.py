"""Dataset splits: the names coralseg uses, how other spellings map onto them, and a
reproducible random split for datasets that have none."""

from __future__ import annotations

import hashlib
from collections.abc import Iterable, Mapping, Sequence

from coral_core.errors import CoralsegError

SPLITS: tuple[str, ...] = ("train", "val", "test")

_ALIASES: Mapping[str, str] = {
    "train": "train",
    "training": "train",
    "val": "val",
    "valid": "val",
    "validation": "val",
    "test": "test",
    "testing": "test",
}


def normalize_split(name: str | None) -> str | None:
    """Map a CVAT subset or a sample tag onto ``train``/``val``/``test``; None if it is no split.

    >>> normalize_split("Validation"), normalize_split(" train "), normalize_split("extra")
    ('val', 'train', None)
    """
    if not name:
        return None
    return _ALIASES.get(name.strip().casefold())


def split_from_tags(tags: Iterable[str]) -> str | None:
    """The split named by a sample's tags.

    Raises:
        CoralsegError: the tags name two different splits.
    """
    found = {split for split in map(normalize_split, tags) if split is not None}
    if len(found) > 1:
        raise CoralsegError(
            f"a sample is tagged with several splits ({', '.join(sorted(found))}); keep one"
        )
    return found.pop() if found else None


def parse_ratios(text: str) -> dict[str, float]:
    """Parse ``"0.8,0.1,0.1"`` (train, val, test; normalised to sum 1)."""
    try:
        values = [float(part) for part in text.split(",")]
    except ValueError:
        raise CoralsegError(f"split ratios {text!r} must be numbers like 0.8,0.1,0.1") from None
    if len(values) not in (2, 3) or any(v < 0 for v in values) or sum(values) <= 0:
        raise CoralsegError(
            f"split ratios {text!r} must be 2 or 3 non-negative numbers (train,val[,test])"
        )
    total = sum(values)
    return {split: value / total for split, value in zip(SPLITS, values, strict=False)}


def random_split(keys: Sequence[str], ratios: Mapping[str, float], seed: int = 0) -> dict[str, str]:
    """Assign each key a split, reproducibly.

    Keys are ordered by a seeded hash, so the assignment depends only on the keys and the
    seed, not on their order, and adding samples later does not reshuffle the others much.
    Split sizes are rounded so they add up to ``len(keys)``.

    Args:
        keys: unique sample keys, e.g. file paths.
        ratios: split name -> fraction, summing to 1.
        seed: any int.

    Returns:
        key -> split name.
    """
    if len(set(keys)) != len(keys):
        raise ValueError("random_split needs unique keys")
    ordered = sorted(keys, key=lambda k: hashlib.sha256(f"{seed}:{k}".encode()).hexdigest())
    names = list(ratios)
    bounds, cumulative = [], 0.0
    for name in names:
        cumulative += ratios[name]
        bounds.append(round(cumulative * len(ordered)))
    assignment: dict[str, str] = {}
    start = 0
    for name, end in zip(names, bounds, strict=True):
        for key in ordered[start:end]:
            assignment[key] = name
        start = end
    for key in ordered[start:]:  # rounding leftovers, if ratios sum slightly below 1
        assignment[key] = names[0]
    return assignment
