"""Two-stage colonies of a prepared split against the drawn ones (``coralseg test --colonies``).

Each image of the split (``<data_dir>/<split>/data/``) goes through the same
:class:`coral_core.inference.pipeline.TwoStagePredictor` as ``coralseg infer``; its colonies
are judged (:mod:`coral_core.evaluation.colony_metrics`) against the annotated colonies: the
polygons of ``annotations`` where given (see :mod:`coral_core.ecology.drawn_colonies`), else
the connected regions of the image's label mask. The connected regions of the raw semantic
map are judged the same way (what the instance stage buys).
"""

from __future__ import annotations

from pathlib import Path

from coral_core.ecology.colonies import component_instances
from coral_core.ecology.drawn_colonies import drawn_colonies, read_drawn_polygons
from coral_core.ecology.sources import locate_masks
from coral_core.errors import CoralsegError
from coral_core.evaluation.colony_metrics import ColonyEvaluation, ImageColonies, evaluate_colonies
from coral_core.formats.dataset_manifest import MANIFEST_FILE
from coral_core.formats.label_rasters import read_label_mask
from coral_core.formats.raster_io import open_image


def evaluate_split_colonies(
    config: str | Path,
    checkpoint: str | Path,
    data_dir: str | Path,
    split: str = "test",
    sam_checkpoint: str | Path | None = None,
    annotations: str | Path | None = None,
    device: str = "cpu",
) -> tuple[ColonyEvaluation, ColonyEvaluation]:
    """``(two-stage colonies, connected regions of the raw semantic map)`` metrics.

    Args:
        config, checkpoint: the semantic model.
        data_dir: a ``coralseg prepare`` folder; its ``split`` images are judged.
        sam_checkpoint: SAM or CoralSCoP weights; None keeps the semantic regions as colonies.
        annotations: the CVAT XML or COCO JSON the folder was prepared from, whose polygons
            are the drawn colonies (None: the connected regions of the label masks).

    Raises:
        CoralsegError: ``data_dir`` is not a prepared folder, has no image in ``split``, or an
            image is missing or not the size of its mask.
    """
    from coral_core.inference.pipeline import TwoStagePredictor

    if not (Path(data_dir) / MANIFEST_FILE).is_file():
        raise CoralsegError(
            f"judging colonies needs a 'coralseg prepare' folder, not {data_dir} (it has no "
            f"{MANIFEST_FILE})",
            settings=["data_dir"],
        )
    source = locate_masks(data_dir)
    items = [item for item in source.items if item.fields.get("split") == split]
    if not items:
        raise CoralsegError(
            f"{data_dir} has no labelled image in its {split} split", settings=["split"]
        )
    polygons = read_drawn_polygons(annotations) if annotations else {}
    predictor = TwoStagePredictor.from_files(
        config, checkpoint, sam_checkpoint=sam_checkpoint, device=device
    )
    legend = source.legend
    names = {v: legend.name_of(v) for v in legend.colony_values}
    images = Path(data_dir) / split / "data"
    colonies, regions = [], []
    for item in items:
        stem = item.path.stem
        photos = sorted(images.glob(f"{stem}.*"))
        if not photos:
            raise CoralsegError(f"{item.path} has no image {stem}.* in {images}")
        truth_mask, _ = read_label_mask(item.path)
        with open_image(photos[0]) as photo:
            pixels = photo.read()
        if pixels.shape[:2] != truth_mask.shape:
            raise CoralsegError(
                f"{photos[0]} is not the size of its label mask {item.path}; prepare again"
            )
        drawn = polygons.get(item.name) or polygons.get(stem)
        if drawn is not None:
            truth = drawn_colonies(drawn, truth_mask.shape, legend)
        else:
            truth = component_instances(truth_mask, names)
        result = predictor(pixels)
        colonies.append(ImageColonies(stem, result.instances.instances, truth))
        regions.append(ImageColonies(stem, component_instances(result.semantic_raw, names), truth))
    classes = [names[v] for v in legend.colony_values]
    return evaluate_colonies(colonies, classes), evaluate_colonies(regions, classes)
