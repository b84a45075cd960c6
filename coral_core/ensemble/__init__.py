"""Merging the instance predictions of several models.

* :mod:`coral_core.ensemble.results`: COCO predictions as result sets (parsing, checks,
  writing back to COCO); their records are :class:`coral_core.formats.coco.CocoResult`;
* :mod:`coral_core.ensemble.fusion`: matching images and categories across result sets and
  merging their instances (weighted fusion, voting, NMS).
"""

from coral_core.ensemble.fusion import (
    STRATEGIES,
    EnsembleResult,
    EnsembleSettings,
    SourceReport,
    ensemble,
)
from coral_core.ensemble.results import (
    ImageId,
    ImageInfo,
    ResultSet,
    result_set_from_coco,
    result_set_to_coco,
)

__all__ = [
    "STRATEGIES",
    "EnsembleResult",
    "EnsembleSettings",
    "ImageId",
    "ImageInfo",
    "ResultSet",
    "SourceReport",
    "ensemble",
    "result_set_from_coco",
    "result_set_to_coco",
]
