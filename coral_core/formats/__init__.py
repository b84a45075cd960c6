"""Files and encodings coralseg reads and writes, as plain data over numpy arrays.

None of these imports torch, MMEngine or an adapter framework
(``tests/test_import_boundaries.py`` checks it), so a CVAT bridge or a COCO tool can use them
without the deep-learning stack.

* ``raster_io``: images of any size window by window ((Big)TIFF/GeoTIFF through GDAL,
  JPEG/PNG) and their georeference;
* ``label_rasters``: label rasters (one band of class values, PNG or GeoTIFF), written tile
  by tile and read back;
* ``polygons``: masks <-> polygons in CVAT/COCO pixel coordinates (exact round trip);
* ``rle``: COCO and CVAT run-length encodings;
* ``coco``: COCO instance JSON, checked on reading and built on writing;
* ``cvat_shapes``: colonies as CVAT shapes (push); ``cvat_polylines``: CVAT shapes as
  normalised polylines (pull);
* ``annotations``: annotation files (CVAT XML, COCO, CoralNet CSV, CPCe) read into one
  :class:`AnnotationSet`;
* ``tagged_json``: JSON files with a ``"format": "<name>/<version>"`` tag;
  ``dataset_manifest``: the ``manifest.json`` of a ``coralseg prepare`` folder.
"""
