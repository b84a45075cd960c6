"""coral_core: the coralseg library, shared by the CLI, the FiftyOne plugin, the CVAT bridge
and the Nuclio function.

Pure functions over numpy arrays and torch tensors, with their conventions (shape, dtype,
value range) in each docstring. It never imports fiftyone, cvat_sdk, nuclio_sdk or a web
framework (``tests/test_import_boundaries.py`` enforces that); the adapters do the I/O.

One module owns each concept; the packages group them by concern::

    coral_core/
      formats/      files and encodings over plain arrays (no torch; see the import test)
        raster_io       images of any size window by window, (Big)TIFF/GeoTIFF, georeferences
        label_rasters   label rasters (class values): written tile by tile, read back
        polygons, rle   masks <-> polygons (exact round trip); COCO and CVAT run lengths
        coco            COCO instance JSON, checked on reading and built on writing
        cvat_shapes     colonies -> CVAT shapes (polygons, masks, Nuclio detector items)
        cvat_polylines  CVAT shapes -> normalised polylines
        annotations/    annotation files (CVAT XML, COCO, CoralNet CSV, CPCe) as one AnnotationSet
        tagged_json, dataset_manifest   format-tagged JSON; a prepared folder's manifest.json
      labels/       what a label means and how annotations become label masks
        taxonomy, palette               classes, ids, colours, mappings, the mask convention
        rasterize                       labelled polylines -> semantic mask
        point_labels, densify, superpixels   point surveys as sparse or densified masks
      training/     the dataset MMSeg trains on, its configs, the run
        mmseg_export, splits            the ``coralseg prepare`` folder; train/val/test splits
        mmseg_config                    what MMSeg config files take from the taxonomy
        runner, progress                MMEngine runs, resume, fine-tuning; progress callbacks
      evaluation/   how good a model is, and how unsure
        metrics, confusion_plot         IoU/Acc from confusion matrices, and their plots
        runner                          a checkpoint through MMEngine's test loop
        colony_metrics, uncertainty     colony PQ/counts/sizes; what to annotate next
        split_colonies                  a prepared split's two-stage colonies vs the drawn ones
      models/       DINOv2 backbone, IoU metric, hooks, point loss (registered in MMSeg)
      inference/    semantic stage (sliding windows, tiled rasters, ONNX), SAM / CoralSCoP
                    (sam_models, sam_upscaling), colonies, the two-stage predictor, overlays,
                    the CPU float mode (cpu_math)
      ecology/      percent cover, colonies and sizes, site/year groups, CSVs, GeoJSON, plots
      tracking/     colony fates across surveys
      ensemble/     merging the predictions of several models
      checkpoint    weights-only checkpoint loading (training, evaluation and inference)
      cluster       units of work run here or over a Ray cluster (Ray imported there only)
      atomic        files written whole or not at all
      errors        the exception type for user mistakes

CHANGELOG.md lists where each module of the former flat layout went.
"""

__version__ = "0.1.0"
