"""The plugin's operators, one per module; :data:`OPERATORS` is what ``register`` registers.

Every name here is listed under ``operators:`` in ``fiftyone.yml`` (FiftyOne registers only
listed operators).
"""

from .evaluate import EvaluateModel
from .export_masks import ExportMasks
from .predict import PredictColonies
from .pull_cvat import PullCvatProject
from .report_cover import ReportCover
from .segmentation_iou import SegmentationIoU
from .select_to_annotate import SelectToAnnotate
from .track_colonies import TrackColonies
from .train import TrainModel

OPERATORS = (
    PullCvatProject,
    ExportMasks,
    TrainModel,
    EvaluateModel,
    PredictColonies,
    SelectToAnnotate,
    ReportCover,
    SegmentationIoU,
    TrackColonies,
)
