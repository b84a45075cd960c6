"""``coralseg cover --point-survey N``: each image's cover as a point survey of N points
would estimate it, with the sampling error (:mod:`coral_core.ecology.point_survey`)."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

from coral_core.ecology.point_survey import point_survey_cover
from coral_core.ecology.tables import write_csv
from coralseg.cover_inputs import CoverSource, read_mask
from coralseg.cover_report import CoverSettings, region_of_interest

FILE_NAME = "point_survey.csv"


def write_point_survey(
    out: Path,
    source: CoverSource,
    settings: CoverSettings,
    counts: Sequence[int],
    method: str,
    draws: int,
    seed: int = 0,
) -> Path:
    """Write ``point_survey.csv``: per image, class and point count, the dense cover, the
    mean point-survey estimate and its standard error (percent), over ``draws`` surveys."""
    rows = []
    for item in source.items:
        mask, _ = read_mask(item.path)
        roi = region_of_interest(*mask.shape, settings, item.name)
        for count in counts:
            survey = point_survey_cover(
                mask, source.legend, count, draws=draws, method=method, seed=seed, roi=roi
            )
            rows += [{"image": item.name, **row} for row in survey.rows()]
    return write_csv(out / FILE_NAME, rows)
