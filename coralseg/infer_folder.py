"""File side of ``coralseg infer``: find images, run the predictor, write every output.

A bad image (unreadable, corrupt, odd format) is logged and skipped; the run goes on. Each
image's instances are kept in ``instances/<image>.json``, so a rerun skips finished images
and ``predictions.json`` is rebuilt from all of them at the end.
"""

from __future__ import annotations

import json
import os
import time
from dataclasses import dataclass, field
from pathlib import Path

import cv2
import numpy as np
from tqdm import tqdm

from coral_core.atomic import write_json_atomically
from coral_core.coco import ImageInstances, coco_predictions
from coral_core.errors import CoralsegError
from coral_core.inference.instances import CoralInstance
from coral_core.inference.pipeline import TwoStagePredictor
from coral_core.inference.semantic import predict_raster
from coral_core.overlay import render_overlay
from coral_core.raster_io import LabelRasterWriter, open_image
from coral_core.rle import coco_rle_to_mask
from coral_core.taxonomy import write_class_files

IMAGE_SUFFIXES = {".jpg", ".jpeg", ".png", ".tif", ".tiff", ".bmp", ".webp"}
# Larger images (orthomosaics) get the semantic stage only, tile by tile, as a GeoTIFF: the
# instance stage needs the whole image in memory, and SAM sees it at 1024 px anyway.
MAX_INSTANCE_SIDE = 8192


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


def _stem(path: Path, input_dir: Path) -> str:
    """A unique output name: the relative path with separators replaced."""
    return str(path.relative_to(input_dir).with_suffix("")).replace(os.sep, "__")


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
    log = (output_dir / "inference_log.txt").open("a", encoding="utf-8")
    log.write(f"--- {time.strftime('%Y-%m-%d %H:%M:%S')} {len(images)} images in {input_dir}\n")
    try:
        for path in tqdm(images, desc="inferring", unit="img"):
            stem = _stem(path, input_dir)
            record = output_dir / "instances" / f"{stem}.json"
            if record.exists() and not redo:
                summary.skipped.append(stem)
                continue
            began = time.perf_counter()
            try:
                with open_image(path) as source:
                    if max(source.height, source.width) > MAX_INSTANCE_SIDE:
                        _semantic_only(output_dir, stem, source, predictor)
                        summary.done.append(stem)
                        log.write(
                            f"ok {path}: {source.width}x{source.height}, semantic map only "
                            f"(tiled) in {time.perf_counter() - began:.1f}s\n"
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
    for index, instance in enumerate(instances, start=1):
        mask = coco_rle_to_mask(instance.rle).astype(np.uint8) * 255
        cv2.imwrite(str(mask_dir / f"instance_{index:03d}.png"), mask)
    height, width = image.shape[:2]
    record = {
        "file_name": str(path),
        "width": width,
        "height": height,
        "instances": [instance.__dict__ | {"bbox": list(instance.bbox)} for instance in instances],
    }
    # written last: its presence marks the image as done
    write_json_atomically(output_dir / "instances" / f"{stem}.json", record)


def _semantic_only(output_dir: Path, stem: str, source, predictor: TwoStagePredictor) -> None:
    """Tiled semantic labels of a large image, with its geotransform, as a GeoTIFF."""
    encoding = predictor.encoding
    target = output_dir / "semantic_raw" / f"{stem}.tif"
    palette = dict(enumerate(encoding.palette))
    with LabelRasterWriter(target, source.height, source.width, source.geo, palette) as writer:
        predict_raster(predictor.semantic, source, writer, batch_size=predictor.batch_size)
    record = {"file_name": str(source.path), "width": source.width, "height": source.height}
    record |= {"instances": [], "semantic_only": True}
    write_json_atomically(output_dir / "instances" / f"{stem}.json", record)


def _write_predictions(output_dir: Path, predictor: TwoStagePredictor) -> int:
    images = []
    for record_path in sorted((output_dir / "instances").glob("*.json")):
        record = json.loads(record_path.read_text())
        instances = [
            CoralInstance(**(item | {"bbox": tuple(item["bbox"])})) for item in record["instances"]
        ]
        images.append(
            ImageInstances(record["file_name"], record["width"], record["height"], instances)
        )
    coco = coco_predictions(images, predictor.encoding)
    write_json_atomically(output_dir / "predictions.json", coco)
    return len(coco["annotations"])
