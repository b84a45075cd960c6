"""Nuclio serverless functions that serve the coralseg model to CVAT as detectors.

One folder per served model kind, each with ``main.py`` (``init_context`` + a thin
``handler``), ``function.yaml`` and ``function-gpu.yaml``:

* ``two_stage/``: the semantic model refined into colonies by SAM / CoralSCoP;
* ``semantic/``: colonies are the connected regions of one class of the semantic model.

``serving`` holds what they share (request decoding, model loading, answers),
``onnx_semantic`` runs the semantic model on onnxruntime, and ``packaging`` builds the
``nuclio.zip`` that ``coralseg package-nuclio`` writes. They never import
``fiftyone_plugin`` or ``cvat_bridge``.

The names below are the model files of a function folder.
"""

SEMANTIC_ONNX = "best_segformer.onnx"  # + ".json" sidecar
SEMANTIC_WEIGHTS = "best_segformer.pth"
SEMANTIC_CONFIG = "best_segformer_config.py"
SAM_WEIGHTS = "vit_b_coralscop.pth"
