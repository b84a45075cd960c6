"""FiftyOne App operators for coralseg (installed with ``fiftyone plugins download``).

Each operator is a small class that unpacks ``ctx.params`` and calls :mod:`coral_core`; the
plugin never imports ``cvat_bridge`` or ``nuclio_functions``. The operators (export masks,
train, evaluate, run inference, ecology reports) arrive with the plugin issue.
"""
