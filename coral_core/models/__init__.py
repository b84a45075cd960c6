"""Model components registered in MMSegmentation's registries.

Importing this package registers them; MMSeg configs do so with
``custom_imports = dict(imports=['coral_core.models'], allow_failed_imports=False)``.

* ``dinov2``: the DINOv2 ViT backbone (timm implementation, Meta's checkpoints);
* ``metric``: the IoU metric that also keeps the confusion matrix;
* ``point_loss``: the loss for masks made from point labels (labelled pixels only).
"""

from coral_core import checkpoint  # noqa: F401  (allows MMEngine checkpoint types)
from coral_core.models import dinov2, hooks, metric, point_loss  # noqa: F401  (registration)


def build_segmentor(model_cfg: dict):
    """Build an MMSeg model from its config dict, in MMSeg's registry scope.

    Nested parts (the data preprocessor) are built through MMEngine's root registry, which
    finds MMSeg's classes only once MMSeg's default scope is set.
    """
    from mmseg.registry import MODELS
    from mmseg.utils import register_all_modules

    register_all_modules()
    return MODELS.build(model_cfg)
