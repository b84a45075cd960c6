"""Nuclio serverless functions that serve the coralseg model inside CVAT.

Each function folder holds a ``function.yaml`` and a ``main.py`` whose ``init_context`` and
``handler`` are thin wrappers over :mod:`coral_core` (model loading, inference, mask to
polygon encoding). They never import ``fiftyone_plugin`` or ``cvat_bridge``. Arrives with
the CVAT issue.
"""
