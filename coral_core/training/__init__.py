"""Training: the dataset MMSegmentation trains on, its configs, and the run itself.

* ``mmseg_export``: the dataset folder ``coralseg prepare`` writes; ``splits``: the
  train/val/test names and reproducible splits;
* ``mmseg_config``: what MMSeg config files take from the taxonomy and a prepared folder;
* ``runner``: MMEngine training runs, options, resume, hierarchical fine-tuning;
* ``progress``: progress of a run for callers that are not a terminal.
"""
