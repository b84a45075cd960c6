"""Write a semantic-segmentation dataset in the layout MMSegmentation trains on.

Layout of ``out_dir``::

    train/data/<stem>.jpg     train/labels/<stem>.png     (and val/, test/)
    classes.txt  palette.txt  dataset_info.py  manifest.json

Images are JPEG (copied byte for byte when no resizing or EXIF rotation is needed), labels
are single-channel 8-bit PNGs with the same stem, in
:class:`coral_core.labels.taxonomy.MaskEncoding`'s convention. A photo labelled by points only (no
polygons) gets a mask that is 255 (ignore) except at its points
(:mod:`coral_core.labels.point_labels`), or, with superpixel densification, over the superpixels
around them (:mod:`coral_core.labels.densify`); a photo with polygons and points keeps its dense
mask with the points drawn on top. ``dataset_info.py`` is what an MMSeg config imports (``_base_``)
to train on the folder; ``manifest.json`` records the taxonomy, the source and per-split counts (and
how point labels were drawn).

The export is atomic: everything is written into a hidden sibling folder that replaces
``out_dir`` only once complete, so a failed or interrupted run leaves no half-written
dataset and an existing one is replaced only with ``overwrite=True``.
"""

from __future__ import annotations

import multiprocessing
import os
import shutil
import time
from collections import Counter
from collections.abc import Iterable, Mapping, Sequence
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

import cv2
import numpy as np
from PIL import Image, ImageOps
from tqdm import tqdm

from coral_core.errors import CoralsegError
from coral_core.formats.dataset_manifest import (
    DatasetManifest,
    PointLabelCounts,
    SplitCounts,
    write_dataset_manifest,
)
from coral_core.labels.densify import densify_points, superpixel_levels
from coral_core.labels.point_labels import DEFAULT_POINT_RADIUS, LabeledPoint, stamp_points
from coral_core.labels.rasterize import LabeledPolyline, RasterizeReport, rasterize_polylines
from coral_core.labels.taxonomy import (
    BACKGROUND_NAME,
    IGNORE_INDEX,
    MaskEncoding,
    write_class_files,
)
from coral_core.training.splits import SPLITS

JPEG_QUALITY = 95
_EXIF_ORIENTATION = 0x0112


@dataclass(frozen=True)
class ExportSample:
    """One image to export.

    Attributes:
        image_path: the source image (any format PIL reads).
        split: ``train``, ``val`` or ``test``.
        polylines: its annotations, normalised coordinates.
        key: unique id used in reports (e.g. the FiftyOne sample id); defaults to the path.
        points: its point labels; with no polylines, the photo is labelled by points only.
    """

    image_path: str
    split: str
    polylines: tuple[LabeledPolyline, ...]
    key: str = ""
    points: tuple[LabeledPoint, ...] = ()


POINT_MODES = ("sparse", "superpixels")


@dataclass(frozen=True)
class PointMasks:
    """How point labels become mask pixels.

    Attributes:
        mode: ``sparse`` (each point a disc, the rest ignored) or ``superpixels`` (each
            point's class spread over the superpixels around it, :mod:`coral_core.labels.densify`;
            only on photos labelled by points alone).
        radius: disc radius in pixels of the written mask.
    """

    mode: str = "sparse"
    radius: int = DEFAULT_POINT_RADIUS

    def __post_init__(self) -> None:
        if self.mode not in POINT_MODES:
            raise CoralsegError(f"unknown point mode {self.mode!r}; use {', '.join(POINT_MODES)}")
        if self.radius < 0:
            raise CoralsegError(f"the point radius must be 0 or more pixels, got {self.radius}")


@dataclass
class ExportSummary:
    """What an export wrote: per-split sample counts and per-label pixel counts."""

    out_dir: Path
    samples: Counter = field(default_factory=Counter)  # split -> images
    pixels: dict[str, Counter] = field(default_factory=dict)  # split -> label name -> pixels
    report: RasterizeReport = field(default_factory=RasterizeReport)
    seconds: float = 0.0
    point_samples: Counter = field(default_factory=Counter)  # split -> images with points


@dataclass(frozen=True)
class _Job:
    sample: ExportSample
    image_out: str
    label_out: str
    values: Mapping[str, int]
    background: int
    size: int | None
    points: PointMasks


@dataclass(frozen=True)
class _JobResult:
    split: str
    counts: np.ndarray  # (256,) int64 pixel counts per value
    report: RasterizeReport
    has_points: bool = False


def export_mmseg_dataset(
    samples: Sequence[ExportSample],
    out_dir: str | Path,
    encoding: MaskEncoding,
    *,
    size: int | None = None,
    overwrite: bool = False,
    unknown: Literal["error", "skip"] = "error",
    workers: int | None = None,
    source: Mapping[str, Any] | None = None,
    progress: bool = True,
    points: PointMasks | None = None,
) -> ExportSummary:
    """Rasterize every sample's polylines and write the MMSeg dataset folder.

    Args:
        samples: images with their split and annotations.
        out_dir: folder to create.
        encoding: taxonomy and background convention of the label masks.
        size: if given, images and masks are resized so that their long side is ``size``
            pixels (masks are rasterized at that size, never resampled).
        overwrite: replace an existing ``out_dir``.
        unknown: what to do with labels the taxonomy does not know (see
            :func:`coral_core.labels.rasterize.rasterize_polylines`); checked before any work.
        workers: processes (default: the CPU count); 1 runs in this process.
        source: free-form description of where the samples came from, for the manifest.
        progress: show a progress bar.
        points: how point labels are drawn (default: :class:`PointMasks`'s defaults).

    Raises:
        CoralsegError: ``out_dir`` exists without ``overwrite``; unknown labels; bad splits;
            unreadable images (all listed, nothing written).
    """
    start = time.perf_counter()
    out = Path(out_dir).resolve()
    if out.exists() and not overwrite:
        raise CoralsegError(
            f"{out} already exists; choose another output folder or overwrite it",
            settings=["out_dir", "overwrite"],
        )
    if size is not None and size < 16:
        raise CoralsegError(f"the size must be at least 16 pixels, got {size}", settings=["size"])
    if not samples:
        raise CoralsegError("there are no samples to export")
    bad_splits = sorted({s.split for s in samples} - set(SPLITS))
    if bad_splits:
        raise CoralsegError(f"unknown splits {bad_splits}; use {', '.join(SPLITS)}")

    points = points or PointMasks()
    labels = {p.label for s in samples for p in (*s.polylines, *s.points)}
    values, missing = encoding.value_lookup(labels - {BACKGROUND_NAME})
    # A survey's points on sand or rock are labelled background (coralnet.map_label_codes).
    values[BACKGROUND_NAME] = encoding.background_value
    if missing and unknown == "error":
        counts = Counter(
            p.label for s in samples for p in (*s.polylines, *s.points) if p.label in missing
        )
        listed = ", ".join(f"{label!r} ({n})" for label, n in counts.most_common())
        raise CoralsegError(
            f"labels not in taxonomy {encoding.taxonomy.name!r}: {listed}. Map them to a class "
            "(a label map, e.g. 'Isopora=Acropora'), use a taxonomy file that lists them, or "
            "skip them",
            settings=["label_map", "taxonomy", "unknown"],
        )

    out.parent.mkdir(parents=True, exist_ok=True)
    staging = out.parent / f".{out.name}.partial-{os.getpid()}"
    shutil.rmtree(staging, ignore_errors=True)
    try:
        jobs = _plan_jobs(samples, staging, values, encoding.background_value, size, points)
        results, failures = _run_jobs(jobs, workers, progress)
        if failures:
            listed = "\n  ".join(f"{path}: {reason}" for path, reason in failures[:20])
            more = f"\n  ... and {len(failures) - 20} more" if len(failures) > 20 else ""
            raise CoralsegError(
                f"{len(failures)} image(s) could not be exported; nothing was written:\n  "
                f"{listed}{more}"
            )
        summary = _summarize(results, encoding, out)
        write_class_files(encoding, staging)
        (staging / "dataset_info.py").write_text(dataset_info_source(out, encoding, summary))
        write_dataset_manifest(staging, _manifest(encoding, summary, source or {}, size, points))
        _replace_dir(staging, out)
    except BaseException:
        shutil.rmtree(staging, ignore_errors=True)
        raise
    summary.seconds = time.perf_counter() - start
    return summary


def _plan_jobs(
    samples: Sequence[ExportSample],
    staging: Path,
    values: Mapping[str, int],
    background: int,
    size: int | None,
    points: PointMasks,
) -> list[_Job]:
    used: dict[str, set[str]] = {split: set() for split in SPLITS}
    jobs = []
    for sample in samples:
        stem = _unique_stem(Path(sample.image_path).stem, used[sample.split])
        split_dir = staging / sample.split
        jobs.append(
            _Job(
                sample=sample,
                image_out=str(split_dir / "data" / f"{stem}.jpg"),
                label_out=str(split_dir / "labels" / f"{stem}.png"),
                values=values,
                background=background,
                size=size,
                points=points,
            )
        )
    for split in SPLITS:
        if used[split]:
            (staging / split / "data").mkdir(parents=True)
            (staging / split / "labels").mkdir(parents=True)
    return jobs


def _unique_stem(stem: str, used: set[str]) -> str:
    """``stem``, or ``stem-2``, ``stem-3``... when two images of a split share a file name."""
    candidate, n = stem, 1
    while candidate in used:
        n += 1
        candidate = f"{stem}-{n}"
    used.add(candidate)
    return candidate


def _run_jobs(
    jobs: list[_Job], workers: int | None, progress: bool
) -> tuple[list[_JobResult], list[tuple[str, str]]]:
    workers = max(1, min(workers or os.cpu_count() or 1, len(jobs)))
    bar = tqdm(total=len(jobs), desc="exporting", unit="img", disable=not progress)
    results: list[_JobResult] = []
    failures: list[tuple[str, str]] = []

    def collect(job: _Job, outcome: _JobResult | str) -> None:
        if isinstance(outcome, str):
            failures.append((job.sample.image_path, outcome))
        else:
            results.append(outcome)
        bar.update()

    try:
        if workers == 1:
            for job in jobs:
                collect(job, _export_one(job))
        else:
            # spawn, not fork: the parent may hold a MongoDB client (FiftyOne), unsafe to fork.
            context = multiprocessing.get_context("spawn")
            with ProcessPoolExecutor(workers, mp_context=context) as pool:
                chunksize = max(1, min(8, len(jobs) // (workers * 4)))
                for job, outcome in zip(
                    jobs, pool.map(_export_one, jobs, chunksize=chunksize), strict=True
                ):
                    collect(job, outcome)
    finally:
        bar.close()
    return results, failures


def _export_one(job: _Job) -> _JobResult | str:
    """Export one image; returns a reason string instead of raising for a bad image."""
    try:
        with Image.open(job.sample.image_path) as opened:
            was_rotated = opened.getexif().get(_EXIF_ORIENTATION, 1) != 1
            image = ImageOps.exif_transpose(opened).convert("RGB")
            source_format = opened.format
    except (OSError, ValueError) as err:
        return f"cannot read image ({err})"
    width, height = image.size
    out_w, out_h = _target_size(width, height, job.size)
    try:
        # Unknown labels were checked for the whole dataset before any job started.
        mask, report = rasterize_polylines(
            job.sample.polylines, out_h, out_w, job.values, job.background, "skip"
        )
    except ValueError as err:
        return f"cannot rasterize its annotations ({err})"
    if job.sample.points:
        mask = _draw_points(job, image, (out_w, out_h) != (width, height), mask)
    if (out_w, out_h) == (width, height) and source_format == "JPEG" and not was_rotated:
        shutil.copyfile(job.sample.image_path, job.image_out)
    else:
        if (out_w, out_h) != (width, height):
            image = image.resize((out_w, out_h), Image.Resampling.LANCZOS)
        image.save(job.image_out, "JPEG", quality=JPEG_QUALITY)
    if not cv2.imwrite(job.label_out, mask):
        return f"cannot write {job.label_out}"
    counts = np.bincount(mask.ravel(), minlength=256).astype(np.int64)
    return _JobResult(job.sample.split, counts, report, bool(job.sample.points))


def _draw_points(job: _Job, image: Image.Image, resize: bool, mask: np.ndarray) -> np.ndarray:
    """``mask`` with the sample's points drawn (see the module docstring)."""
    points = [p for p in job.sample.points if p.label in job.values]
    sparse = stamp_points(np.full_like(mask, IGNORE_INDEX), points, job.values, job.points.radius)
    if job.sample.polylines:
        return np.where(sparse != IGNORE_INDEX, sparse, mask)
    if job.points.mode == "superpixels":
        height, width = mask.shape
        photo = image.resize((width, height), Image.Resampling.LANCZOS) if resize else image
        return densify_points(sparse, superpixel_levels(np.asarray(photo)))
    return sparse


def long_side_size(height: int, width: int, long_side: int | None) -> tuple[int, int]:
    """``(height, width)`` with the long side scaled to ``long_side`` pixels (None: unchanged),
    as ``--size`` resizes photos; inference shrinks photos by the same rule."""
    if long_side is None:
        return height, width
    scale = long_side / max(width, height)
    return max(1, round(height * scale)), max(1, round(width * scale))


def _target_size(width: int, height: int, size: int | None) -> tuple[int, int]:
    out_h, out_w = long_side_size(height, width, size)
    return out_w, out_h


def _summarize(results: Iterable[_JobResult], encoding: MaskEncoding, out: Path) -> ExportSummary:
    summary = ExportSummary(out_dir=out)
    totals: dict[str, np.ndarray] = {}
    for result in results:
        summary.samples[result.split] += 1
        summary.point_samples[result.split] += result.has_points
        totals[result.split] = totals.get(result.split, 0) + result.counts
        summary.report = summary.report + result.report
    names = encoding.label_names
    for split, counts in totals.items():
        pixels = Counter({name: int(counts[v]) for v, name in enumerate(names)})
        pixels["ignore" if not encoding.background_is_ignore else "ignore/background"] = int(
            counts[IGNORE_INDEX]
        )
        summary.pixels[split] = pixels
    return summary


def _manifest(
    encoding: MaskEncoding,
    summary: ExportSummary,
    source: Mapping[str, Any],
    long_side: int | None,
    points: PointMasks,
) -> DatasetManifest:
    point_samples = {split: n for split, n in summary.point_samples.items() if n}
    return DatasetManifest(
        encoding=encoding,
        long_side=long_side,
        splits={
            split: SplitCounts(summary.samples[split], dict(summary.pixels[split]))
            for split in SPLITS
            if summary.samples[split]
        },
        source=source,
        dropped_shapes=dict(summary.report.dropped),
        skipped_unknown_labels=dict(summary.report.unknown_labels),
        point_labels=(
            PointLabelCounts(points.mode, points.radius, point_samples) if point_samples else None
        ),
    )


def dataset_info_source(data_root: Path, encoding: MaskEncoding, summary: ExportSummary) -> str:
    """Python source of ``dataset_info.py``: the variables an MMSeg config needs."""
    splits = [split for split in SPLITS if summary.samples[split]]
    lines = [
        '"""Written by `coralseg prepare`. Use from an MMSeg config:',
        "",
        f"    _base_ = ['{data_root / 'dataset_info.py'}', ...]",
        '"""',
        "",
        f"data_root = {str(data_root)!r}",
        f"taxonomy = {encoding.taxonomy.name!r}",
        f"num_classes = {encoding.num_labels}",
        f"ignore_index = {IGNORE_INDEX}",
        "reduce_zero_label = False",
        f"background_is_ignore = {encoding.background_is_ignore}",
        "metainfo = dict(",
        f"    classes={tuple(encoding.label_names)!r},",
        f"    palette={[list(c) for c in encoding.palette]!r},",
        ")",
        "img_suffix = '.jpg'",
        "seg_map_suffix = '.png'",
        f"splits = {splits!r}",
        "# Arguments of MMSeg's BaseSegDataset for this folder; add data_prefix and pipeline.",
        "dataset_common = dict(",
        "    type='BaseSegDataset',",
        "    data_root=data_root,",
        "    metainfo=metainfo,",
        "    img_suffix=img_suffix,",
        "    seg_map_suffix=seg_map_suffix,",
        "    reduce_zero_label=reduce_zero_label,",
        "    ignore_index=ignore_index,",
        ")",
    ]
    for split in splits:
        lines.append(
            f"{split}_prefix = dict(img_path='{split}/data', seg_map_path='{split}/labels')"
        )
    return "\n".join(lines) + "\n"


def _replace_dir(staging: Path, out: Path) -> None:
    """Move ``staging`` to ``out``; an old ``out`` is removed only after the swap succeeded."""
    if out.exists():
        backup = out.parent / f".{out.name}.old-{os.getpid()}"
        out.rename(backup)
        staging.rename(out)
        shutil.rmtree(backup, ignore_errors=True)
    else:
        staging.rename(out)
