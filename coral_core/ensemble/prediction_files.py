"""COCO prediction files: reading them as result sets, writing a merged set.

Accepted prediction files (JSON):

* a COCO dataset-style file, ``{"images": [...], "categories": [...], "annotations":
  [...]}``, every annotation with a ``"score"``: what ``coralseg ensemble`` writes, and how
  some tools export predictions;
* a COCO results list, ``[{"image_id", "category_id", "segmentation", "score"}, ...]``, as
  pycocotools' ``loadRes``, Detectron2 and Ultralytics (``save_json``) write it. Its image
  ids and category ids refer to another file, given as an *images file* and a *categories
  file*: a COCO dataset file (e.g. the ground truth, or the file inference ran on) or a
  bare JSON list of image records (``{"id", "file_name", "width", "height"}``) or category
  records (``{"id", "name"}``).

A dataset-style file that lacks ``"images"`` or ``"categories"`` takes them from those files
too. Segmentations are RLEs or polygons (:func:`coral_core.ensemble.result_set_from_coco`).
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

from coral_core.atomic import write_json_atomically
from coral_core.ensemble.results import ResultSet, result_set_from_coco, result_set_to_coco
from coral_core.errors import CoralsegError
from coral_core.formats.coco import check_top_level, load_coco_json


def read_prediction_files(
    paths: Sequence[str | Path],
    images_files: Sequence[str | Path] = (),
    categories_files: Sequence[str | Path] = (),
) -> list[ResultSet]:
    """Read prediction files (module docstring) as result sets named by their paths.

    Args:
        paths: the prediction files.
        images_files: for the prediction files without images, in order: one file for all
            of them, or one per such file.
        categories_files: the same for categories; when empty, each prediction file takes
            its categories from its images file.

    Raises:
        CoralsegError: a file is not COCO, or images or categories are missing or given
            in a number that does not match; the message says how to fix it.
    """
    contents = [_prediction_content(Path(path)) for path in paths]
    need_images = [n for n, (_, images, _) in enumerate(contents) if images is None]
    need_categories = [n for n, (_, _, categories) in enumerate(contents) if categories is None]
    images_for = _assign(paths, need_images, images_files, "--images", "images")
    categories_for = _assign(
        paths, need_categories, categories_files, "--categories", "categories", images_for
    )
    result_sets = []
    for n, (results, images, categories) in enumerate(contents):
        if images is None and images_for[n] is not None:
            images = _section(images_for[n], "images")
        if categories is None and categories_for[n] is not None:
            categories = _section(categories_for[n], "categories")
        result_sets.append(result_set_from_coco(results, categories, images, name=str(paths[n])))
    return result_sets


def write_result_set(path: str | Path, result_set: ResultSet, info: dict[str, Any]) -> None:
    """Write a result set as a dataset-style COCO file with an ``"info"`` record."""
    write_json_atomically(path, {"info": info, **result_set_to_coco(result_set)})


def _prediction_content(path: Path) -> tuple[object, object | None, object | None]:
    """``(results, images or None, categories or None)`` of a prediction file."""
    data = load_coco_json(path)
    if isinstance(data, list):
        return data, None, None
    if isinstance(data, dict):
        check_top_level(data, str(path), ("annotations",))
        annotations = data["annotations"]
        first = annotations[0] if isinstance(annotations, list) and annotations else None
        if isinstance(first, dict) and "score" not in first:
            raise CoralsegError(
                f"{path} has annotations without a score, so it looks like ground truth; "
                "give files of predictions (every annotation with a score)"
            )
        return annotations, data.get("images"), data.get("categories")
    raise CoralsegError(
        f"{path} is not a COCO prediction file: expected a results list [{{image_id, "
        "category_id, segmentation, score}}, ...] or a COCO file with images, categories and "
        "annotations"
    )


def _assign(
    paths: Sequence[str | Path],
    needing: Sequence[int],
    files: Sequence[str | Path],
    flag: str,
    what: str,
    fallback: Sequence[Path | None] = (),
) -> list[Path | None]:
    """Per prediction file, the file its ``what`` come from (None where it has its own):
    from ``files``, else from ``fallback`` (the images files, for categories)."""
    chosen: list[Path | None] = [None] * len(paths)
    if files and len(files) not in (1, len(needing)):
        raise CoralsegError(
            f"{len(files)} {flag} files for {len(needing)} prediction files without {what}; "
            "give one for all of them or one for each, in order"
        )
    for k, n in enumerate(needing):
        if files:
            chosen[n] = Path(files[0] if len(files) == 1 else files[k])
        elif fallback and fallback[n] is not None:
            chosen[n] = fallback[n]
        else:
            raise CoralsegError(
                f"{paths[n]} has no {what} (a COCO results list refers to them by id); pass "
                f"{flag} with the COCO file the predictions were made with"
            )
    return chosen


def _section(path: Path, what: str) -> object:
    """The ``what`` list of an images or categories file (a COCO file or a bare list)."""
    data = load_coco_json(path)
    if isinstance(data, list):
        return data
    if isinstance(data, dict) and what in data:
        return data[what]
    raise CoralsegError(
        f'{path} has no "{what}"; give a COCO file with a "{what}" list, or a JSON list of '
        f"{what} records"
    )
