"""Colony fates across surveys: align two visits of a plot, link colonies, report fates.

Pure functions over arrays, one job per module:

* ``alignment``: the transform from the first visit's pixels to the second's: from two
  geotransforms (orthomosaics, with an optional residual shift) or from matched features of
  two photos (SIFT + RANSAC homography, with its inlier count and reprojection error);
* ``colonies``: colonies as box-local masks, and a colony's mask carried into the other
  visit's pixel grid;
* ``linking``: which colonies of the two visits are the same, by overlap of the aligned
  masks (optimal assignment, then fusion and fission partners);
* ``fates``: what happened to each colony (persisted with its growth, partial mortality,
  death, recruitment, fusion, fission, out of view; genus changes flagged);
* ``tables``: tidy rows of links, per-class and per-plot summaries (mean growth, SE);
* ``features``: GeoJSON features of both visits with a shared colony id;
* ``picture``: the pair, one colour per colony id, fates marked.

Typical use::

    alignment = align_photos(before_rgb, after_rgb)          # or align_geotransforms(...)
    before = colonies_from_label_mask(before_mask, values, names)
    after = colonies_from_label_mask(after_mask, values, names)
    linking = link_colonies(before, after, alignment, after_mask.shape, before_mask.shape)
    fates = colony_fates(before, after, linking)               # .links, .before_ids, ...
    rows = link_rows("plot_1", ("a.jpg", "b.jpg"), before, after, linking, fates)
"""

from coral_core.tracking.alignment import (
    Alignment,
    align_geotransforms,
    align_photos,
    identity_alignment,
    refine_shift,
)
from coral_core.tracking.colonies import TrackedColony, colonies_from_label_mask
from coral_core.tracking.fates import FATES, ColonyFates, colony_fates
from coral_core.tracking.linking import Linking, link_colonies

__all__ = [
    "FATES",
    "Alignment",
    "ColonyFates",
    "Linking",
    "TrackedColony",
    "align_geotransforms",
    "align_photos",
    "colonies_from_label_mask",
    "colony_fates",
    "identity_alignment",
    "link_colonies",
    "refine_shift",
]
