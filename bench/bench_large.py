"""Memory benchmark: semantic inference on a 40,000 x 40,000 tiled BigTIFF with the tiny model.

Creates the image (a compressed BigTIFF of synthetic content, written tile by tile), then runs
the tiled semantic stage (``predict_raster``: windows read from the TIFF, labels written to a
tiled GeoTIFF of the same size) and prints the peak resident memory of the process against
the image size. Memory is bounded by the tile, not the image: the baseline printed beside it
is what holding the image's pixels alone would take.

Covering all 40,000 x 40,000 pixels with a CPU takes hours, so by default only the first
``--tile-rows`` rows of tiles are predicted (the reads and writes still address the full-size
files); ``--tile-rows 0`` does the whole image.

    .venv/bin/python bench/bench_large.py [--size 40000] [--tile-rows 1] [--device cuda]
"""

from __future__ import annotations

import argparse
import resource
import sys
import tempfile
import time
from pathlib import Path

import torch
from mmengine.config import Config

REPO = Path(__file__).resolve().parents[1]
TINY = REPO / "configs" / "dinov2-vits14-segformer_tiny-cpu_eilat-224x224.py"


def peak_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--size", type=int, default=40000, help="side of the square image")
    parser.add_argument("--tile", type=int, default=1024)
    parser.add_argument("--tile-rows", type=int, default=1, help="rows of tiles; 0 = all")
    parser.add_argument("--device", default="cpu")
    args = parser.parse_args()

    from coral_core.inference.semantic import (
        iter_raster_tiles,
        load_semantic_model,
        predict_raster,
        with_overlap,
    )
    from coral_core.models import build_segmentor
    from coral_core.raster_io import LabelRasterWriter, open_image, write_test_tiff
    from coral_core.taxonomy import EILAT, MaskEncoding

    with tempfile.TemporaryDirectory() as tmp:
        start = time.perf_counter()
        image_path = write_test_tiff(Path(tmp) / "ortho.tif", args.size, args.size)
        print(f"created {args.size}x{args.size} BigTIFF in {time.perf_counter() - start:.0f}s")
        cfg = Config.fromfile(str(TINY))
        torch.manual_seed(0)
        network = build_segmentor(cfg.model)
        checkpoint = Path(tmp) / "tiny.pth"
        meta = {"coralseg": {"encoding": MaskEncoding(EILAT, True).to_dict()}}
        torch.save({"state_dict": network.state_dict(), "meta": meta}, checkpoint)
        config = Path(tmp) / "tiny.py"
        cfg.dump(str(config))
        model = with_overlap(load_semantic_model(config, checkpoint, device=args.device), 0.0)
        before = peak_mb()

        with open_image(image_path) as source:
            rows = None if args.tile_rows == 0 else args.tile_rows * args.tile
            total = sum(1 for _ in iter_raster_tiles(source.height, source.width, args.tile))
            done = sum(1 for _ in iter_raster_tiles(rows or source.height, source.width, args.tile))
            start = time.perf_counter()
            with LabelRasterWriter(Path(tmp) / "labels.tif", source.height, source.width) as out:
                predict_raster(
                    model,
                    source,
                    out,
                    tile=args.tile,
                    rows=rows,
                    progress=lambda n: print(f"  tile {n}/{done}", flush=True),
                )
            seconds = time.perf_counter() - start

    pixels_gb = args.size * args.size * 3 / 2**30
    print(f"predicted {done}/{total} tiles of {args.tile} px in {seconds:.0f}s")
    print(
        f"peak memory {peak_mb() / 1024:.2f} GB (model loaded: {before / 1024:.2f} GB) for a "
        f"{args.size}x{args.size} image whose pixels alone take {pixels_gb:.1f} GB "
        f"({peak_mb() / 1024 / pixels_gb:.2f}x)"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
