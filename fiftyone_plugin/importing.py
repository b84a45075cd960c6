"""Import annotation exports (CVAT XML, COCO) and their images into a FiftyOne dataset.

The dataset gets the layout ``coralseg pull-cvat`` gives (:mod:`coral_core.formats.cvat_polylines`):
one sample per image, the image used where it lies (never copied), its colonies in
``gt_polylines`` (``fo.Polylines``; polygons and mask parts closed and filled, polylines
open, points normalised by the image size, each polyline keeping ``cvat_shape_id``,
``z_order``, ``occluded`` and ``cvat_shape_type``), the subset in ``cvat_subset`` and as a
``train``/``val``/``test`` tag when it names a split. Samples also carry
``annotation_file`` and, where the file has them, ``cvat_task_id`` and ``cvat_frame``.

Point labels (CoralNet's annotation CSV, CPCe ``.cpc`` files) go to ``gt_points``
(``fo.Keypoints``: one keypoint per point, labelled with its class, keeping the survey's
``label_code`` and per-point columns as attributes); the survey's other per-image fields
go to ``point_metadata``. A photo in a polygon file and in a point file becomes one
sample with both fields. Label codes are mapped to classes first
(:func:`coral_core.formats.annotations.map_label_codes`).

Images are looked for under the images folder by their recorded name, then by that name
under a subset folder (``images/<subset>/...`` as CVAT's dataset exports lay them out),
then by file name anywhere below it. Every check (missing images, sizes that differ from
the annotations, labels a taxonomy does not know, an image listed twice) runs before the
dataset is touched, and the dataset is built under a temporary name and renamed into place,
so a failed import leaves no half-made dataset.

The file parsing is :mod:`coral_core.formats.annotations`; this module only adds FiftyOne.
"""

from __future__ import annotations

import mimetypes
import os
import secrets
from collections import Counter
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path, PurePosixPath

from coral_core.errors import CoralsegError
from coral_core.formats.annotations import (
    POINT_FORMATS,
    AnnotatedImage,
    AnnotationSet,
    fit_to_photo,
    map_label_codes,
    read_annotations,
    shape_polylines,
)
from coral_core.formats.cvat_polylines import DEFAULT_MASK_TOLERANCE
from coral_core.formats.raster_io import photo_sizes
from coral_core.labels.taxonomy import BACKGROUND_NAME, Taxonomy
from coral_core.training.splits import normalize_split

POLYLINES_FIELD = "gt_polylines"
POINTS_FIELD = "gt_points"
POINT_METADATA_FIELD = "point_metadata"
INFO_KEY = "coralseg_import"
_LISTED = 5  # how many names an error message lists


@dataclass
class ImportReport:
    """What an import made; :meth:`summary` prints it for people."""

    dataset: str
    files: list[str] = field(default_factory=list)
    samples: int = 0
    splits: Counter = field(default_factory=Counter)  # split tag (or "untagged") -> samples
    polylines: Counter = field(default_factory=Counter)  # label -> polylines
    points: Counter = field(default_factory=Counter)  # label -> points
    skipped_shapes: Counter = field(default_factory=Counter)  # kind -> count
    missing_images: list[str] = field(default_factory=list)

    def summary(self) -> str:
        lines = [
            f"Imported {self.samples} images into FiftyOne dataset {self.dataset!r} from "
            + ", ".join(self.files),
            "  splits: " + (_counts(self.splits) or "none"),
            "  polylines: " + (_counts(self.polylines) or "none"),
        ]
        if self.points:
            lines.append("  points: " + _counts(self.points))
        if self.skipped_shapes:
            lines.append(
                "  skipped shapes: "
                + _counts(self.skipped_shapes)
                + (" (rectangles are not colonies)" if self.skipped_shapes["rectangle"] else "")
            )
        if self.missing_images:
            lines.append(
                f"  left out {len(self.missing_images)} images not found: "
                + ", ".join(self.missing_images[:_LISTED])
                + (" ..." if len(self.missing_images) > _LISTED else "")
            )
        if self.splits.get("untagged"):
            lines.append(
                "  untagged samples have no train/val/test subset: pass --split to "
                "'coralseg prepare' to split them"
            )
        return "\n".join(lines)


def _counts(counter: Counter) -> str:
    return ", ".join(f"{key} {count}" for key, count in sorted(counter.items()))


def import_annotations(
    dataset_name: str,
    annotation_files: Sequence[str | Path],
    images_dir: str | Path,
    *,
    subset: str | None = None,
    taxonomy: Taxonomy | None = None,
    skip_missing: bool = False,
    overwrite: bool = False,
    tolerance: float = DEFAULT_MASK_TOLERANCE,
    progress: bool | None = None,
    label_codes: Mapping[str, str] | None = None,
) -> ImportReport:
    """Import annotation files and their images into a new persistent FiftyOne dataset.

    Args:
        dataset_name: the dataset to create.
        annotation_files: CVAT for images 1.1 XML and/or COCO JSON files.
        images_dir: the folder holding the images (searched as the module docstring says).
        subset: the subset of images the files give none (e.g. ``train``).
        taxonomy: if given, every label must resolve to one of its classes.
        skip_missing: leave out images that cannot be found instead of stopping.
        overwrite: replace an existing dataset of that name.
        tolerance: mask outline simplification in pixels (0.25 or less keeps masks exact).
        progress: show a progress bar; None shows it on terminals only.
        label_codes: point-survey label code -> class (CoralNet CSV, CPCe); codes that are
            class names need no entry.

    Raises:
        CoralsegError: the dataset exists (without ``overwrite``), a file is malformed,
            images are missing (without ``skip_missing``) or of another size than the
            annotations say, or labels are unknown to ``taxonomy``.
    """
    import fiftyone as fo
    from tqdm import tqdm

    if not annotation_files:
        raise CoralsegError("name at least one annotation file (CVAT XML or COCO JSON)")
    if fo.dataset_exists(dataset_name) and not overwrite:
        raise CoralsegError(
            f"FiftyOne dataset {dataset_name!r} already exists; choose another --dataset name "
            "or pass --overwrite to replace it"
        )
    images_root = Path(images_dir).expanduser()
    if not images_root.is_dir():
        raise CoralsegError(f"the images folder {images_root} does not exist")
    sets = [read_annotations(path, subset) for path in annotation_files]
    sets = [
        map_label_codes(s, label_codes or {}, taxonomy) if s.format in POINT_FORMATS else s
        for s in sets
    ]
    report = ImportReport(dataset_name, files=[s.source for s in sets])
    if taxonomy is not None:
        check_labels(sets, taxonomy)
    planned = _plan(sets, _ImageFinder(images_root), skip_missing, report)

    staging = fo.Dataset(f"{dataset_name}.importing-{os.getpid()}-{secrets.token_hex(3)}")
    try:
        samples = []
        for parts, path in tqdm(
            planned,
            desc=f"importing {dataset_name}",
            unit="image",
            disable=(None if progress is None else not progress),
        ):
            samples.append(_sample(fo, parts, path, tolerance, report))
        staging.add_samples(samples, progress=False)
        staging.info[INFO_KEY] = {
            "files": report.files,
            "images_dir": str(images_root.resolve()),
            "formats": sorted({s.format for s in sets}),
        }
        staging.save()
        if fo.dataset_exists(dataset_name):
            fo.delete_dataset(dataset_name)
        staging.name = dataset_name
        staging.persistent = True
    except BaseException:
        if fo.dataset_exists(staging.name) and staging.name != dataset_name:
            staging.delete()
        raise
    report.samples = len(samples)
    for annotation_set in sets:
        report.skipped_shapes.update(annotation_set.skipped)
    return report


def check_labels(sets: Sequence[AnnotationSet], taxonomy: Taxonomy) -> None:
    """Raise a :class:`CoralsegError` listing the drawn labels ``taxonomy`` does not know
    (``background``, which survey points on sand or rock map to, is known to every one)."""
    counts: Counter = Counter()
    for annotation_set in sets:
        counts.update(annotation_set.label_counts())
    unknown = {
        label: n
        for label, n in counts.items()
        if taxonomy.resolve(label) is None and label != BACKGROUND_NAME
    }
    if unknown:
        listed = ", ".join(f"{label!r} ({n})" for label, n in sorted(unknown.items()))
        raise CoralsegError(
            f"labels not in taxonomy {taxonomy.name!r}: {listed}. Map them to a class "
            "(e.g. --label-map 'Isopora=Acropora'), use a taxonomy file that lists them, or "
            "import without --taxonomy and choose at 'coralseg prepare'"
        )


class _ImageFinder:
    """Finds an annotation's image name below a folder (see the module docstring)."""

    def __init__(self, root: Path) -> None:
        self.root = root
        self._by_name: dict[str, list[Path]] | None = None

    def find(self, name: str, subset: str | None) -> Path | None:
        relative = PurePosixPath(
            *[p for p in PurePosixPath(name.replace("\\", "/")).parts if p not in ("/", "..")]
        )
        candidates = [self.root / relative]
        if subset:
            candidates.append(self.root / subset / relative)
        candidates.append(self.root / relative.name)
        for candidate in candidates:
            if candidate.is_file():
                return candidate
        if self._by_name is None:
            self._by_name = {}
            for path in sorted(self.root.rglob("*")):
                if path.is_file():
                    self._by_name.setdefault(path.name, []).append(path)
        found = self._by_name.get(relative.name, [])
        matching = [p for p in found if p.as_posix().endswith(relative.as_posix())]
        if len(matching) == 1:
            return matching[0]
        return found[0] if len(found) == 1 else None


_Part = tuple[AnnotationSet, AnnotatedImage]


def _plan(
    sets: Sequence[AnnotationSet], finder: _ImageFinder, skip_missing: bool, report: ImportReport
) -> list[tuple[list[_Part], Path]]:
    """Each found image with its parts: one annotation file's record, or a polygon file's
    and a point file's (a photo labelled both ways)."""
    planned: dict[Path, list[_Part]] = {}
    missing, wrong_size = [], []
    for annotation_set in sets:
        is_points = annotation_set.format in POINT_FORMATS
        for image in annotation_set.images:
            path = finder.find(image.name, image.subset)
            if path is None:
                missing.append(image.name)
                continue
            path = path.resolve()
            earlier = planned.get(path, [])
            if any((s.format in POINT_FORMATS) == is_points for s, _ in earlier):
                raise CoralsegError(
                    f"image {image.name!r} is listed twice ({earlier[0][0].source} and "
                    f"{annotation_set.source}); import each image once (a photo may have "
                    "one polygon file and one point file)"
                )
            size = photo_sizes(path)
            if size is None:
                raise CoralsegError(f"{path} is not an image that can be read")
            if is_points:
                try:
                    image = fit_to_photo(image, *size[1])
                except ValueError as err:
                    raise CoralsegError(f"{annotation_set.source}: {err}") from None
            elif (image.width, image.height) not in size:
                wrong_size.append(
                    f"{image.name} is {size[1][0]}x{size[1][1]} but the annotations say "
                    f"{image.width}x{image.height}"
                )
            planned.setdefault(path, []).append((annotation_set, image))
    if missing and not skip_missing:
        raise CoralsegError(
            f"{len(missing)} of the annotated images are not in {finder.root} (e.g. "
            + ", ".join(missing[:_LISTED])
            + "); pass the folder that holds them with --images, or --skip-missing to import "
            "the others"
        )
    if wrong_size:
        raise CoralsegError(
            f"{len(wrong_size)} images differ in size from their annotations ("
            + "; ".join(wrong_size[:_LISTED])
            + "); use the original images the annotations were drawn on"
        )
    if not planned:
        raise CoralsegError("the annotation files list no image that was found; nothing to import")
    report.missing_images = missing
    # Polygon files first: their record gives the sample's subset, file and CVAT ids.
    return [
        (sorted(parts, key=lambda part: part[0].format in POINT_FORMATS), path)
        for path, parts in planned.items()
    ]


def _sample(fo, parts: list[_Part], path: Path, tolerance, report):
    polylines, keypoints, point_metadata = [], [], {}
    for part_set, image in parts:
        for shape in image.shapes:
            if shape.kind == "points":
                keypoints.append(_keypoint(fo, shape, image))
                report.points[shape.label] += len(shape.path)
                continue
            try:
                specs = shape_polylines(shape, image.width, image.height, tolerance)
            except ValueError:
                report.skipped_shapes[f"invalid {shape.kind}"] += 1
                continue
            for spec in specs:
                report.polylines[spec.label] += 1
                polylines.append(
                    fo.Polyline(
                        label=spec.label,
                        points=spec.points,
                        closed=spec.closed,
                        filled=spec.filled,
                        **spec.attributes,
                    )
                )
        if part_set.format in POINT_FORMATS:
            point_metadata.update(image.metadata)
    annotations, image = parts[0]
    tag = normalize_split(image.subset)
    report.splits[tag or "untagged"] += 1
    fields = {
        "cvat_subset": image.subset,
        "annotation_file": annotations.source,
    }
    if any(a.format not in POINT_FORMATS for a, _ in parts):
        fields[POLYLINES_FIELD] = fo.Polylines(polylines=polylines)
    if keypoints:
        fields[POINTS_FIELD] = fo.Keypoints(keypoints=keypoints)
        fields["point_file"] = next(a.source for a, _ in parts if a.format in POINT_FORMATS)
    if point_metadata:
        fields[POINT_METADATA_FIELD] = point_metadata
    if image.task_id is not None:
        fields["cvat_task_id"] = image.task_id
    if annotations.format == "cvat-xml" and image.image_id is not None:
        fields["cvat_frame"] = image.image_id
    return fo.Sample(
        filepath=str(path),
        tags=[tag] if tag else [],
        metadata=fo.ImageMetadata(
            width=image.width,
            height=image.height,
            size_bytes=path.stat().st_size,
            mime_type=mimetypes.guess_type(path.name)[0],
        ),
        **fields,
    )


def _keypoint(fo, shape, image: AnnotatedImage):
    """One ``fo.Keypoint`` of a points shape, normalised by the image size."""
    scale = (float(image.width), float(image.height))
    points = [[float(x) / scale[0], float(y) / scale[1]] for x, y in shape.path]
    attributes = {_attribute_name(name): value for name, value in shape.attributes.items()}
    if shape.shape_id is not None:
        attributes["point_id"] = shape.shape_id
    return fo.Keypoint(label=shape.label, points=points, **attributes)


def _attribute_name(name: str) -> str:
    """A survey column name as a FiftyOne attribute name (``Machine suggestion 1`` ->
    ``machine_suggestion_1``)."""
    cleaned = "".join(c if c.isalnum() else "_" for c in name.strip().lower()).strip("_")
    if not cleaned or cleaned[0].isdigit() or cleaned in _KEYPOINT_FIELDS:
        return f"survey_{cleaned}"
    return cleaned


_KEYPOINT_FIELDS = {"id", "label", "points", "confidence", "index", "tags", "attributes"}
