"""Nuclio handler of the semantic-only coralseg detector: each colony is a connected region
of one colony class in the semantic model's output (no SAM refinement).

CVAT sends ``{"image": <base64>, "threshold": <float>}`` and gets one item per region
(label, confidence, mask and polygon); see :mod:`nuclio_functions.serving`.
"""

from nuclio_functions.serving import init_function, respond


def init_context(context):
    init_function(context, __file__, with_sam=False)


def handler(context, event):
    return respond(context, context.user_data.predictor, event.body)
