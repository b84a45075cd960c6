"""What a label means, and how annotations become label masks.

* ``taxonomy``: class names, ids, colours, mappings between taxonomies, the mask convention;
* ``palette``: distinct class colours;
* ``rasterize``: labelled polylines -> one semantic mask (overlap, holes, clipping rules);
* ``point_labels``: point surveys as sparse masks (and point surveys simulated from masks);
* ``densify``: sparse point masks spread over ``superpixels`` (SLIC) into pseudo-masks.
"""
