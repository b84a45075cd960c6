"""File side of ``coralseg infer``: find images, run the predictor, write every output.

A bad image (unreadable, corrupt, odd format) is logged and skipped; the run goes on. Each
image's instances are kept in ``instances/<image>.json``, so a rerun skips finished images
and ``predictions.json`` is rebuilt from all of them at the end.
"""

from __future__ import annotations

import os
import time
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path

import cv2
import numpy as np
from tqdm import tqdm

from coral_core.coco import ImageInstances, write_coco_predictions
from coral_core.errors import CoralsegError
from coral_core.inference.instance_records import (
    InstanceRecord,
    read_instance_record,
    write_instance_record,
)
from coral_core.inference.pipeline import TwoStagePredictor
from coral_core.overlay import render_overlay
from coral_core.raster_io import LabelRasterWriter, open_image
from coral_core.taxonomy import write_class_files, write_encoding_file

IMAGE_SUFFIXES = {".jpg", ".jpeg", ".png", ".tif", ".tiff", ".bmp", ".webp"}
# Larger images (orthomosaics) are processed tile by tile at their native resolution: their
# semantic maps become tiled GeoTIFFs and their colonies are merged across tile seams
# (coral_core.inference.tiled); no per-colony PNG or overlay is drawn at that size.
MAX_INSTANCE_SIDE = 8192
LARGE_TILE = 2048


@dataclass
class InferenceSummary:
    output_dir: Path
    done: list[str] = field(default_factory=list)
    skipped: list[str] = field(default_factory=list)
    failed: list[tuple[str, str]] = field(default_factory=list)
    instances: int = 0
    seconds: float = 0.0

    def describe(self) -> str:
        lines = [
            f"{len(self.done)} image(s) processed, {len(self.skipped)} already done, "
            f"{len(self.failed)} failed; {self.instances} colonies; {self.seconds:.1f}s",
            f"results in {self.output_dir}",
        ]
        lines += [f"  failed: {name}: {reason}" for name, reason in self.failed]
        return "\n".join(lines)


def find_images(input_dir: Path) -> list[Path]:
    if not input_dir.is_dir():
        raise CoralsegError(f"--input-dir {input_dir} is not a folder")
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


def infer_folder(
    predictor: TwoStagePredictor, input_dir: Path, output_dir: Path, redo: bool = False
) -> InferenceSummary:
    images = find_images(input_dir)
    start = time.perf_counter()
    summary = InferenceSummary(output_dir)
    folders = ("visualizations", "masks", "semantic", "semantic_raw", "instances")
    for name in folders:
        (output_dir / name).mkdir(parents=True, exist_ok=True)
    write_class_files(predictor.encoding, output_dir)
    # classes.txt names the values; encoding.json also says which are cover-only classes
    write_encoding_file(predictor.encoding, output_dir)
    log = (output_dir / "inference_log.txt").open("a", encoding="utf-8")
    log.write(f"--- {time.strftime('%Y-%m-%d %H:%M:%S')} {len(images)} images in {input_dir}\n")
    names = output_names(images, input_dir)
    try:
        for path in tqdm(images, desc="inferring", unit="img"):
            stem = names[path]
            record = output_dir / "instances" / f"{stem}.json"
            if record.exists() and not redo:
                summary.skipped.append(stem)
                continue
            began = time.perf_counter()
            try:
                with open_image(path) as source:
                    if max(source.height, source.width) > MAX_INSTANCE_SIDE:
                        count = _tiled(output_dir, stem, source, predictor)
                        summary.done.append(stem)
                        log.write(
                            f"ok {path}: {source.width}x{source.height}, tiled, {count} "
                            f"colonies in {time.perf_counter() - began:.1f}s\n"
                        )
                        continue
                    image = source.read()
                result = predictor(image)
            except CoralsegError as err:
                summary.failed.append((str(path.relative_to(input_dir)), str(err)))
                log.write(f"FAILED {path}: {err}\n")
                continue
            _write_outputs(output_dir, stem, path, image, result, predictor)
            count = len(result.instances.instances)
            summary.done.append(stem)
            log.write(f"ok {path}: {count} colonies in {time.perf_counter() - began:.2f}s\n")
            log.flush()
    finally:
        log.close()
    summary.instances = _write_predictions(output_dir, predictor)
    summary.seconds = time.perf_counter() - start
    return summary


def _write_outputs(output_dir, stem, path, image, result, predictor) -> None:
    instances = result.instances.instances
    encoding = predictor.encoding
    cv2.imwrite(str(output_dir / "semantic" / f"{stem}.png"), result.instances.semantic)
    cv2.imwrite(str(output_dir / "semantic_raw" / f"{stem}.png"), result.semantic_raw)
    overlay = render_overlay(image, result.instances.semantic, encoding, instances)
    cv2.imwrite(
        str(output_dir / "visualizations" / f"{stem}.jpg"),
        cv2.cvtColor(overlay, cv2.COLOR_RGB2BGR),
        [cv2.IMWRITE_JPEG_QUALITY, 90],
    )
    mask_dir = output_dir / "masks" / stem
    mask_dir.mkdir(parents=True, exist_ok=True)
    for old in mask_dir.glob("instance_*.png"):
        old.unlink()
    height, width = image.shape[:2]
    for index, instance in enumerate(instances, start=1):
        mask = instance.full_mask(height, width).astype(np.uint8) * 255
        cv2.imwrite(str(mask_dir / f"instance_{index:03d}.png"), mask)
    record = InstanceRecord(str(path), width, height, tuple(instances))
    # written last: its presence marks the image as done
    write_instance_record(output_dir / "instances" / f"{stem}.json", record)


def _tiled(output_dir: Path, stem: str, source, predictor: TwoStagePredictor) -> int:
    """Colonies of a large image tile by tile, with its raw and refined semantic maps as
    tiled GeoTIFFs carrying its geotransform; memory is bounded by the tile."""
    encoding = predictor.encoding
    palette = dict(enumerate(encoding.palette))
    raw_path = output_dir / "semantic_raw" / f"{stem}.tif"
    refined_path = output_dir / "semantic" / f"{stem}.tif"
    size = (source.height, source.width)
    tiles = -(-source.height // LARGE_TILE) * -(-source.width // LARGE_TILE)
    with (
        LabelRasterWriter(raw_path, *size, source.geo, palette) as raw,
        LabelRasterWriter(refined_path, *size, source.geo, palette) as refined,
        tqdm(total=tiles, desc=f"{stem} tiles", unit="tile", leave=False) as bar,
    ):

        def write_core(core, region, result) -> None:
            x0, y0, x1, y1 = core
            inside = (slice(y0 - region[1], y1 - region[1]), slice(x0 - region[0], x1 - region[0]))
            raw.write(core, result.semantic_raw[inside])
            refined.write(core, result.instances.semantic[inside])
            bar.update()

        instances = list(predictor.colonies_of_raster(source, LARGE_TILE, write_core))
    instances.sort(key=lambda instance: -instance.score)
    record = InstanceRecord(
        str(source.path), source.width, source.height, tuple(instances), tiled=True
    )
    write_instance_record(output_dir / "instances" / f"{stem}.json", record)
    return len(instances)


def _write_predictions(output_dir: Path, predictor: TwoStagePredictor) -> int:
    """``predictions.json`` from every image's record, one record in memory at a time."""

    def images():
        for record_path in sorted((output_dir / "instances").glob("*.json")):
            record = read_instance_record(record_path)
            yield ImageInstances(record.file_name, record.width, record.height, record.instances)

    return write_coco_predictions(output_dir / "predictions.json", images(), predictor.encoding)
