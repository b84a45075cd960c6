"""Nuclio handler of the two-stage coralseg detector (semantic model + SAM / CoralSCoP).

CVAT sends ``{"image": <base64>, "threshold": <float>}`` and gets one item per colony
(label, confidence, mask and polygon); see :mod:`nuclio_functions.serving`.
"""

from nuclio_functions.serving import init_function, respond


def init_context(context):
    init_function(context, __file__, with_sam=True)


def handler(context, event):
    return respond(context, context.user_data.predictor, event.body)
