"""coral_core: the coralseg library, shared by the CLI, the FiftyOne plugin, the CVAT bridge
and the Nuclio function.

Pure functions over numpy arrays and torch tensors, with their conventions (shape, dtype,
value range) in each docstring. It never imports fiftyone, cvat_sdk, nuclio_sdk or a web
framework (``tests/test_import_boundaries.py`` enforces that); the adapters do the I/O.

One module owns each concept:

* ``taxonomy``: class names, ids, colours, mappings between taxonomies, the mask convention;
* ``palette``: distinct class colours;
* ``errors``: the exception type for user mistakes.
"""

__version__ = "0.1.0"
