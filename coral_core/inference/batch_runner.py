"""Batch inference into an output folder: plan the units, run them here or on a cluster,
assemble large images, write the run's summary outputs.

The one runner behind ``coralseg infer`` (a folder, :func:`infer_folder`) and the App's
predict operator on a cluster (a view's photos, :func:`infer_images`). Units of work
(:mod:`coral_core.inference.batch_units`) are photos and the tiles of large images; they run
in this process or on the workers of a Ray cluster (:mod:`coral_core.cluster`), with the same
outputs either way. A bad image (unreadable, corrupt, odd format) is reported and the rest
completes. Each unit's outputs record the model version that made them, so a rerun skips what
is done (a result of another model is refused unless ``redo``) and ``predictions.json`` is
rebuilt from every image's record at the end. Progress goes to a callback
(:class:`RunProgress`), so each caller shows it its own way.
"""

from __future__ import annotations

import functools
import os
import shutil
import time
from collections import Counter, defaultdict
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from coral_core.cluster import ClusterOptions, UnitOutcome, check_reachable, run_units
from coral_core.errors import CoralsegError
from coral_core.formats.coco import ImageInstances, write_coco_predictions
from coral_core.formats.raster_io import open_image, photo_sizes
from coral_core.inference.batch_units import (
    RECORDS,
    ModelSpec,
    PhotoUnit,
    TileUnit,
    UnitWorker,
    assemble_large_image,
    predictor_version,
    record_path,
    tile_count,
)
from coral_core.inference.instance_records import read_instance_record, read_model_version
from coral_core.inference.pipeline import TwoStagePredictor
from coral_core.inference.tile_results import read_tile_version, tile_result_path
from coral_core.labels.taxonomy import MaskEncoding, write_class_files, write_encoding_file

IMAGE_SUFFIXES = {".jpg", ".jpeg", ".png", ".tif", ".tiff", ".bmp", ".webp"}
# Larger images (orthomosaics) are processed tile by tile at their native resolution: their
# semantic maps become tiled GeoTIFFs and their colonies are merged across tile seams
# (coral_core.inference.tiled); no per-colony PNG or overlay is drawn at that size.
MAX_INSTANCE_SIDE = 8192
LARGE_TILE = 2048
_TIFF_SUFFIXES = {".tif", ".tiff"}


@dataclass
class InferenceSummary:
    output_dir: Path
    done: list[str] = field(default_factory=list)
    skipped: list[str] = field(default_factory=list)
    failed: list[tuple[str, str]] = field(default_factory=list)
    tiles_done: int = 0
    tiles_skipped: int = 0
    instances: int = 0
    seconds: float = 0.0

    @property
    def images(self) -> int:
        return len(self.done) + len(self.skipped) + len(self.failed)

    def describe(self) -> str:
        lines = [
            f"{len(self.done)} image(s) processed, {len(self.skipped)} already done, "
            f"{len(self.failed)} failed; {self.instances} colonies; {self.seconds:.1f}s",
        ]
        if self.tiles_done or self.tiles_skipped:
            lines.append(
                f"{self.tiles_done} tile(s) of large images refined, "
                f"{self.tiles_skipped} already done"
            )
        lines.append(f"results in {self.output_dir}")
        lines += [f"  failed: {name}: {reason}" for name, reason in self.failed]
        return "\n".join(lines)


@dataclass(frozen=True)
class BatchImage:
    """An image to infer. ``stem`` names its outputs (unique within the output folder:
    ``instances/<stem>.json``, ``masks/<stem>/``, ...); ``name`` is how messages show it."""

    path: Path
    stem: str
    name: str


@dataclass(frozen=True)
class RunProgress:
    """Where a run stands: sent once before the first unit (``done`` 0) and after each unit.

    Attributes:
        done / total: units finished (failed ones included) and units to do in this run
            (those already done before it are not counted).
        failure: the unit that just failed, in one line (``<unit>: <why> (<worker>)``), else
            None.
    """

    done: int
    total: int
    failure: str | None = None


Progress = Callable[[RunProgress], Any]


@dataclass
class _Plan:
    """What is left to do: units, images already done, and the large images to assemble
    (one of their tile units each, which names the image and its tiling, and their number
    of tiles)."""

    units: list[PhotoUnit | TileUnit] = field(default_factory=list)
    skipped: list[str] = field(default_factory=list)
    tiles_skipped: int = 0
    large: dict[str, tuple[TileUnit, int]] = field(default_factory=dict)


def find_images(input_dir: Path) -> list[Path]:
    if not input_dir.is_dir():
        raise CoralsegError(f"{input_dir} is not a folder", settings=("input_dir",))
    images = sorted(
        p for p in input_dir.rglob("*") if p.is_file() and p.suffix.lower() in IMAGE_SUFFIXES
    )
    if not images:
        raise CoralsegError(f"no images ({', '.join(sorted(IMAGE_SUFFIXES))}) in {input_dir}")
    return images


def output_names(images: list[Path], input_dir: Path) -> dict[Path, str]:
    """A unique output name per image: its relative path without suffix, separators
    replaced; images sharing that name (``a.jpg``, ``a.png``) keep their suffix too
    (``a_jpg``, ``a_png``), so neither is mistaken for the other's finished result."""
    stems = {
        path: str(path.relative_to(input_dir).with_suffix("")).replace(os.sep, "__")
        for path in images
    }
    taken = Counter(stems.values())
    return {
        path: f"{stem}_{path.suffix.lstrip('.').lower()}" if taken[stem] > 1 else stem
        for path, stem in stems.items()
    }


def folder_images(input_dir: Path) -> list[BatchImage]:
    """The images of ``input_dir`` (searched recursively, sorted), named by
    :func:`output_names`, as :func:`infer_folder` does them."""
    images = find_images(input_dir)
    names = output_names(images, input_dir)
    return [BatchImage(path, names[path], str(path.relative_to(input_dir))) for path in images]


def infer_folder(
    predictor: TwoStagePredictor | ModelSpec,
    input_dir: Path,
    output_dir: Path,
    redo: bool = False,
    cluster: ClusterOptions | None = None,
    tile_above: int | None = None,
    tile_size: int | None = None,
    progress: Progress | None = None,
) -> InferenceSummary:
    """Infer every image of ``input_dir`` into ``output_dir`` (:func:`infer_images` of
    :func:`folder_images`)."""
    return infer_images(
        predictor,
        folder_images(input_dir),
        output_dir,
        source=str(input_dir),
        redo=redo,
        cluster=cluster,
        tile_above=tile_above,
        tile_size=tile_size,
        progress=progress,
    )


def infer_images(
    predictor: TwoStagePredictor | ModelSpec,
    images: Sequence[BatchImage],
    output_dir: Path,
    *,
    source: str,
    redo: bool = False,
    cluster: ClusterOptions | None = None,
    tile_above: int | None = None,
    tile_size: int | None = None,
    progress: Progress | None = None,
) -> InferenceSummary:
    """Infer ``images`` into ``output_dir`` (see the module docstring).

    Args:
        predictor: a loaded predictor (runs in this process), or the files of a model
            (loaded by each worker: one copy per cluster worker, or one here).
        images: what to infer, each with its own output ``stem``.
        source: where the images come from, in words, for the run's log.
        redo: do images already done again.
        cluster: where to run the units (None: in this process).
        tile_above: images with a side over this are done tile by tile (None:
            ``MAX_INSTANCE_SIDE``); ``tile_size``: their tiles' side (None: ``LARGE_TILE``).
        progress: called with a :class:`RunProgress` before the first unit and after each.

    Raises:
        CoralsegError: a bad tiling, unreadable model files, results of another model in
            ``output_dir`` (unless ``redo``), or a cluster that cannot be reached.
    """
    tiling = (
        MAX_INSTANCE_SIDE if tile_above is None else tile_above,
        LARGE_TILE if tile_size is None else tile_size,
    )
    if min(tiling) < 1:
        raise CoralsegError(
            f"the tiling sizes must be positive, got {tiling}", settings=("tile_above", "tile_size")
        )
    if cluster is not None:  # a dead address is refused before anything is written
        check_reachable(cluster.address)
    stems = Counter(image.stem for image in images)
    if any(count > 1 for count in stems.values()):
        raise ValueError(f"two images share the output name {stems.most_common(1)[0][0]!r}")
    start = time.perf_counter()
    summary = InferenceSummary(output_dir)
    if isinstance(predictor, ModelSpec):
        encoding, version = predictor.encoding(), predictor.version()
        threads = None
        if cluster is not None and predictor.device == "cpu":
            threads = max(1, int(cluster.cpus_per_worker))
        make_worker = functools.partial(
            UnitWorker.from_spec, predictor, output_dir, version, threads
        )
    else:
        if cluster is not None:
            raise ValueError("a loaded predictor runs here only: give a ModelSpec for a cluster")
        encoding, version = predictor.encoding, predictor_version(predictor)
        make_worker = functools.partial(UnitWorker, predictor, output_dir, version)
    for name in ("visualizations", "masks", "semantic", "semantic_raw", RECORDS):
        (output_dir / name).mkdir(parents=True, exist_ok=True)
    plan = _plan(images, output_dir, version, redo, tiling)
    summary.skipped, summary.tiles_skipped = plan.skipped, plan.tiles_skipped
    write_class_files(encoding, output_dir)
    # classes.txt names the values; encoding.json also says which are cover-only classes
    write_encoding_file(encoding, output_dir)
    with (output_dir / "inference_log.txt").open("a", encoding="utf-8") as log:
        log.write(f"--- {time.strftime('%Y-%m-%d %H:%M:%S')} {len(images)} images in ")
        log.write(f"{source}, model version {version}, {_where(cluster)}\n")
        if plan.skipped:
            log.write(f"already done, skipped: {len(plan.skipped)} image(s)\n")
        failed_tiles = _run(plan, make_worker, cluster, summary, log, progress)
        for stem, (unit, tiles) in plan.large.items():
            failures = failed_tiles.get(stem)
            if failures:
                reason = f"{len(failures)} of {tiles} tiles failed (first: {failures[0][1]})"
                summary.failed.append((unit.name, f"{reason}; rerun to retry them"))
                continue
            _assemble(output_dir, unit, encoding, version, summary, log)
    summary.instances = _write_predictions(output_dir, encoding)
    summary.seconds = time.perf_counter() - start
    return summary


def _where(cluster: ClusterOptions | None) -> str:
    return "in one process" if cluster is None else f"on cluster {cluster.address}"


def _run(plan, make_worker, cluster, summary, log, progress) -> dict[str, list[tuple[str, str]]]:
    """Run the plan's units, telling ``progress`` after each; returns the failed tiles of
    each large image."""
    failed_tiles: dict[str, list[tuple[str, str]]] = defaultdict(list)
    total = len(plan.units)
    if progress is not None:
        progress(RunProgress(0, total))
    outcomes = run_units(plan.units, make_worker, cluster)
    try:
        for done, outcome in enumerate(outcomes, start=1):
            failure = _record(outcome, summary, failed_tiles, log)
            if progress is not None:
                progress(RunProgress(done, total, failure))
    finally:
        outcomes.close()  # on Ctrl-C too: the cluster's workers stop now
    return failed_tiles


def _record(outcome: UnitOutcome, summary, failed_tiles, log) -> str | None:
    """Log and count one outcome; a failure in one line, or None."""
    unit = outcome.unit
    failure = None
    if outcome.ok:
        log.write(f"ok {unit.label}: {outcome.result} colonies ({outcome.worker})\n")
        if isinstance(unit, TileUnit):
            summary.tiles_done += 1
        else:
            summary.done.append(unit.stem)
    else:
        log.write(f"FAILED {unit.label}: {outcome.error} ({outcome.worker})\n")
        failure = f"{unit.label}: {outcome.error} ({outcome.worker})"
        if isinstance(unit, TileUnit):
            failed_tiles[unit.stem].append((unit.label, outcome.error))
        else:
            summary.failed.append((unit.name, outcome.error))
    log.flush()
    return failure


def _assemble(output_dir, unit, encoding, version, summary, log) -> None:
    began = time.perf_counter()
    try:
        count = assemble_large_image(output_dir, unit, encoding, version)
    except CoralsegError as err:
        summary.failed.append((unit.name, str(err)))
        log.write(f"FAILED {unit.name}: {err}\n")
        return
    summary.done.append(unit.stem)
    log.write(
        f"ok {unit.name}: tiled, {count} colonies merged in {time.perf_counter() - began:.1f}s\n"
    )


def _plan(
    images: Sequence[BatchImage],
    output_dir: Path,
    version: str,
    redo: bool,
    tiling: tuple[int, int],
) -> _Plan:
    tile_above, tile_size = tiling
    plan = _Plan()
    foreign: list[str] = []  # results another model made
    for image in images:
        path, stem, name = image.path, image.stem, image.name
        record = record_path(output_dir, stem)
        if record.exists() and not redo:
            if read_model_version(record) != version:
                foreign.append(name)
            else:
                plan.skipped.append(stem)
                shutil.rmtree(output_dir / "tiles" / stem, ignore_errors=True)
            continue
        size = _image_size(path)
        if size is None or max(size) <= tile_above:
            plan.units.append(PhotoUnit(path, stem, name))
            continue
        if redo:
            shutil.rmtree(output_dir / "tiles" / stem, ignore_errors=True)
        rows, columns = tile_count(*size, tile_size)
        tiles = [
            TileUnit(path, stem, name, row, column, tile_size)
            for row in range(rows)
            for column in range(columns)
        ]
        plan.large[stem] = (tiles[0], len(tiles))
        for tile in tiles:
            done = tile_result_path(output_dir, stem, tile.row, tile.column)
            if not done.exists():
                plan.units.append(tile)
            elif _tile_version(done) == version:
                plan.tiles_skipped += 1
            else:
                foreign.append(tile.label)
    if foreign:
        raise CoralsegError(
            f"{len(foreign)} result(s) in {output_dir} were made by another model or version "
            f"(e.g. {foreign[0]}): redo them or choose another output folder",
            settings=("redo", "output_dir"),
        )
    return plan


def _tile_version(path: Path) -> str | None:
    try:
        return read_tile_version(path)
    except CoralsegError:
        return None


def _image_size(path: Path) -> tuple[int, int] | None:
    """``(height, width)`` of an image as shown, from its header; None if unreadable (its
    unit then says why)."""
    if path.suffix.lower() in _TIFF_SUFFIXES:
        try:
            with open_image(path) as source:  # GDAL reads the header only
                return source.height, source.width
        except CoralsegError:
            return None
    sizes = photo_sizes(path)
    return None if sizes is None else (sizes[1][1], sizes[1][0])


def _write_predictions(output_dir: Path, encoding: MaskEncoding) -> int:
    """``predictions.json`` from every image's record, one record in memory at a time."""

    def images():
        for path in sorted((output_dir / RECORDS).glob("*.json")):
            record = read_instance_record(path)
            yield ImageInstances(record.file_name, record.width, record.height, record.instances)

    return write_coco_predictions(output_dir / "predictions.json", images(), encoding)
