"""How good a model is, and how unsure.

* ``metrics``: IoU, Dice and accuracy from confusion matrices (as MMSegmentation computes
  them); ``confusion_plot``: the matrix as a PNG and CSV tables;
* ``runner``: a checkpoint evaluated with MMEngine's test loop;
* ``colony_metrics``: colonies judged as ecologists count them (panoptic quality, counts,
  size distributions); ``split_colonies``: a prepared split's two-stage colonies judged
  against the drawn ones (``coralseg test --colonies``);
* ``uncertainty``: per-image uncertainty scores, to choose what to annotate next.
"""
