"""Choose what to annotate next: score samples by the model's uncertainty.

:func:`score_samples` stores each sample's mean pixel uncertainty
(:mod:`coral_core.evaluation.uncertainty`: normalised entropy or margin, in [0, 1], higher = less
sure) in a float field and saves a view of the scored samples sorted by it, most uncertain first,
so that a scientist sends the top of that view to CVAT with FiftyOne's own annotate flow.

Samples already annotated (tagged with a split: train, val or test, in any of the spellings
:mod:`coral_core.training.splits` knows) are not scored: they need no annotating. The ranking
returned is exactly the saved view's content, in its order.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from coral_core.errors import CoralsegError
from coral_core.evaluation.uncertainty import METHODS, pixel_uncertainty
from coral_core.formats.raster_io import open_image
from coral_core.training.splits import normalize_split

from .models import semantic_model

DEFAULT_FIELD = "coralseg_uncertainty"
DEFAULT_VIEW = "coralseg-annotate-next"


@dataclass(frozen=True)
class UncertaintySummary:
    """What :func:`score_samples` did; ``ranking``: (file path, score), most uncertain first."""

    field: str
    view_name: str | None
    method: str
    ranking: list[tuple[str, float]]
    skipped_annotated: int = 0


def unannotated(samples) -> tuple[list[str], list[str], int]:
    """Ids and file paths of the samples without a split tag, and how many have one."""
    ids, paths, tags = samples.values(["id", "filepath", "tags"])
    kept = [
        (i, p)
        for i, p, t in zip(ids, paths, tags, strict=True)
        if not any(normalize_split(tag) for tag in t)  # one split tag or several: annotated
    ]
    return [i for i, _ in kept], [p for _, p in kept], len(ids) - len(kept)


def check_unannotated(samples) -> int:
    """How many samples there are to score, else a sentence saying why there are none."""
    ids, _, annotated = unannotated(samples)
    if not ids:
        raise CoralsegError(
            f"all {annotated} target samples are already annotated (tagged train, val or "
            "test); choose images without a split tag"
            if annotated
            else "there are no samples to score"
        )
    return len(ids)


def check_score_field(dataset, field: str) -> None:
    """Refuse a field that already holds something other than scores, before any model runs."""
    from fiftyone.core.fields import FloatField

    spec = dataset.get_field_schema(flat=True).get(field)
    if spec is not None and not isinstance(spec, FloatField):
        held = getattr(getattr(spec, "document_type", None), "__name__", type(spec).__name__)
        raise CoralsegError(
            f"field {field!r} already holds {held}, not uncertainty scores; choose another name"
        )


def image_score(model, image, method: str) -> float:
    """Mean per-pixel uncertainty of an ``(H, W, 3)`` uint8 image under ``model``."""
    from coral_core.inference.semantic import iter_probability_bands

    total, pixels = 0.0, 0
    for _, probabilities in iter_probability_bands(model, image):
        scores = pixel_uncertainty(probabilities, method)  # type: ignore[arg-type]
        total += float(scores.sum())
        pixels += scores.numel()
    return total / pixels if pixels else 0.0


def score_samples(
    samples,
    config: str | Path,
    checkpoint: str | Path,
    *,
    method: str = "entropy",
    field: str = DEFAULT_FIELD,
    view_name: str | None = DEFAULT_VIEW,
    limit: int | None = None,
    device: str = "cpu",
    progress: Callable[[float, str], Any] | None = None,
) -> UncertaintySummary:
    """Score the samples of ``samples`` nobody annotated yet and save the ranked view.

    Args:
        samples: a FiftyOne dataset or view; its samples tagged with a split are skipped.
        config, checkpoint: the current model.
        method: ``entropy`` or ``margin``.
        field: float field for the scores.
        view_name: name of the saved view (replaced if there); None saves none.
        limit: the saved view (and the ranking) keep only the ``limit`` most uncertain.
        device: ``cpu`` or ``cuda``.
        progress: called with (fraction done, label).
    """
    if method not in METHODS:
        raise CoralsegError(f"unknown uncertainty {method!r}; use one of {', '.join(METHODS)}")
    if limit is not None and limit < 1:
        raise CoralsegError(f"the view needs at least one sample, got limit {limit}")
    check_unannotated(samples)
    check_score_field(samples._dataset, field)
    ids, paths, annotated = unannotated(samples)
    model = semantic_model(config, checkpoint, device)
    scores = []
    for index, path in enumerate(paths):
        if progress is not None:
            progress(index / len(paths), f"image {index + 1}/{len(paths)}")
        scores.append(image_score(model, open_image(path).read(), method))
    dataset = samples._dataset
    dataset.set_values(field, dict(zip(ids, scores, strict=True)), key_field="id")
    ranked = dataset.select(ids).sort_by(field, reverse=True)
    if limit:
        ranked = ranked.limit(limit)
    if view_name:
        if dataset.has_saved_view(view_name):
            dataset.delete_saved_view(view_name)
        dataset.save_view(
            view_name,
            ranked,
            description=f"most uncertain first ({method}); send the top to CVAT to annotate",
        )
    ranking = list(zip(*ranked.values(["filepath", field]), strict=True))
    return UncertaintySummary(field, view_name, method, ranking, annotated)
