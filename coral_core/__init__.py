"""coral_core: the coralseg library, shared by the CLI, the FiftyOne plugin, the CVAT bridge
and the Nuclio function.

Pure functions over numpy arrays and torch tensors, with their conventions (shape, dtype,
value range) in each docstring. It never imports fiftyone, cvat_sdk, nuclio_sdk or a web
framework (``tests/test_import_boundaries.py`` enforces that); the adapters do the I/O.

One module owns each concept:

* ``taxonomy``: class names, ids, colours, mappings between taxonomies, the mask convention;
* ``palette``: distinct class colours;
* ``polygons``: masks <-> polygons (exact round trip); ``rle``: COCO and CVAT run lengths;
* ``rasterize``: labelled polylines -> semantic mask (overlap, holes, clipping rules);
* ``splits``: train/val/test names and reproducible splits;
* ``mmseg_export``: the MMSegmentation dataset folder writer;
* ``mmseg_config``: what MMSeg configs take from the taxonomy;
* ``models``: the DINOv2 backbone, the IoU metric and hooks, registered in MMSeg;
* ``checkpoint``: weights-only checkpoint loading;
* ``training`` / ``evaluation``: MMEngine runs, resume, hierarchical fine-tuning, tests;
* ``metrics`` / ``confusion_plot``: IoU/Acc from confusion matrices, and their plots;
* ``inference``: the semantic stage (sliding windows at the training scale, its compact
  summary, tiled rasters, ONNX export), the instance stage (SAM refinement), colonies on
  orthomosaics tile by tile, and the two-stage predictor;
* ``cvat_shapes``: colonies as CVAT shapes (polygons, masks, Nuclio detector items), shared by
  the Nuclio function, the cvat-sdk function and the bridge;
* ``ecology``: percent cover, colonies and their sizes, groups (site/year), cover error,
  tidy CSVs, GeoJSON, plots;
* ``sam_models``: SAM / CoralSCoP checkpoints; ``raster_io``: images, (Big)TIFF/GeoTIFF;
* ``coco`` / ``overlay`` / ``ensemble``: COCO predictions, readable overlays, merging models;
* ``atomic``: files written whole or not at all;
* ``cluster``: units of work run here or over a Ray cluster's workers (Ray imported there only);
* ``errors``: the exception type for user mistakes.
"""

__version__ = "0.1.0"
