"""The CVAT bridge: a small web service whose webhook pre-annotates a CVAT job with the
coralseg model when the job moves to "in progress".

It talks to CVAT through cvat-sdk, runs the model through :mod:`coral_core`, and never
imports ``fiftyone_plugin`` or ``nuclio_functions``. Arrives with the CVAT issue.
"""
