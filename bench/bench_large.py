"""Orthomosaic benchmark: `coralseg infer` on whole synthetic BigTIFFs of two sizes, same run.

For each size (default 10,000 and 40,000 px square) a tiled, compressed BigTIFF of synthetic
content is written (``tests/raster_fixtures.py``), then ``coralseg infer`` runs on the whole
image in a fresh child process, with the CLI's defaults, the tiny model and a random SAM
ViT-B (``--no-sam`` for the semantic stage only). Each child reports its own wall time and
peak resident memory (``getrusage``), measured over the whole image: nothing is
extrapolated from a part of it, and no memory figure is computed from the image size.

The sizes are compared like for like (same command, same model, same settings): time should
grow with the pixels and memory should not. Ratios are printed.

The tiny model's checkpoint records "native resolution" (no test-time resize), as a model for
orthomosaics would; random weights give per-token noise, so its logits are smoothed inside
the network as in bench_infer.py (``_common.make_coherent``), giving colony-sized regions.

    .venv/bin/python bench/bench_large.py                         # 10,000 and 40,000 px
    .venv/bin/python bench/bench_large.py --sizes 600 1200 --tiled-above 512  # quick check
"""

from __future__ import annotations

import argparse
import json
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from _common import (
    REPO,
    TINY_CONFIG,
    quiet_mmengine,
    random_sam_checkpoint,
    ratio,
)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--sizes", type=int, nargs="+", default=[10_000, 40_000])
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--no-sam", action="store_true", help="semantic stage only")
    parser.add_argument(
        "--tiled-above",
        type=int,
        help="for quick checks: take the orthomosaic path above this side (and tiles of half "
        "of it) instead of the CLI's limit, so that small images exercise it",
    )
    parser.add_argument("--child", nargs=argparse.REMAINDER, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child is not None:
        return _child(args.child, args.tiled_above)

    from tests.raster_fixtures import write_test_tiff

    print(f"coralseg infer on whole synthetic BigTIFFs, device {args.device}, CLI defaults")
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp)
        config, checkpoint = _tiny_checkpoint(folder)
        sam = None if args.no_sam else random_sam_checkpoint(folder)
        tiled = ["--tiled-above", str(args.tiled_above)] if args.tiled_above else []
        for size in args.sizes:
            images = folder / f"in{size}"
            images.mkdir()
            start = time.perf_counter()
            write_test_tiff(images / "ortho.tif", size, size)
            print(f"{size} x {size}: BigTIFF written in {time.perf_counter() - start:.0f}s")
            argv = [
                "infer", "--input-dir", str(images), "--output-dir", str(folder / f"out{size}"),
                "--segformer-config", str(config), "--segformer-weights", str(checkpoint),
                "--device", args.device,
            ]  # fmt: skip
            if sam is not None:
                argv += ["--sam-checkpoint", str(sam)]
            # The child's progress bars and errors go to this terminal; its result to stdout.
            done = subprocess.run(
                [sys.executable, __file__, *tiled, "--child", *argv],
                cwd=REPO,
                stdout=subprocess.PIPE,
                text=True,
                check=False,
            )
            if done.returncode != 0:
                print(f"  failed with exit code {done.returncode} (its messages are above)")
                return 1
            measured = json.loads(done.stdout.strip().splitlines()[-1])
            predictions = folder / f"out{size}" / "predictions.json"
            colonies = (
                len(json.loads(predictions.read_text())["annotations"])
                if predictions.is_file()
                else 0
            )
            rows.append((size, measured))
            print(
                f"  whole image in {measured['seconds']:.0f}s, "
                f"peak memory {measured['peak_gb']:.2f} GB, {colonies} colonies, "
                f"exit code {measured['rc']}"
            )
            (images / "ortho.tif").unlink()

    print(f"\n{'side':>8}{'pixels':>10}{'time':>10}{'peak RSS':>11}")
    for size, measured in rows:
        print(
            f"{size:>8}{size * size / 1e6:>9.1f}M{measured['seconds']:>9.0f}s"
            f"{measured['peak_gb']:>9.2f}GB"
        )
    if len(rows) > 1:
        (small, a), (large, b) = rows[0], rows[-1]
        print(
            f"{large} px vs {small} px: {large**2 / small**2:.1f}x the pixels, "
            f"{ratio(b['seconds'], a['seconds'])} the time, "
            f"{ratio(b['peak_gb'], a['peak_gb'])} the peak memory"
        )
    return 0


def _tiny_checkpoint(folder: Path) -> tuple[Path, Path]:
    import torch
    from mmengine.config import Config

    from coral_core.labels.taxonomy import EILAT, MaskEncoding
    from coral_core.models import build_segmentor

    cfg = Config.fromfile(str(TINY_CONFIG))
    encoding = MaskEncoding(EILAT, background_is_ignore=True)
    cfg.model.decode_head.num_classes = encoding.num_labels
    torch.manual_seed(0)
    network = build_segmentor(cfg.model)
    with quiet_mmengine():
        network.init_weights()
    checkpoint = folder / "tiny.pth"
    # Recorded native resolution: the tiny config's test pipeline shrinks photos to 460 px.
    meta = {"coralseg": {"encoding": encoding.to_dict(), "inference_resize": None}}
    torch.save({"state_dict": network.state_dict(), "meta": meta}, checkpoint)
    config = folder / TINY_CONFIG.name
    cfg.dump(str(config))
    return config, checkpoint


def _child(argv: list[str], tiled_above: int | None) -> int:
    """Run ``coralseg infer`` in this process with a coherent random model; print the
    wall time and this process's peak RSS as JSON on the last line."""
    from _common import make_coherent

    from coral_core.inference import batch_runner, pipeline
    from coralseg.cli import main as coralseg_main

    if tiled_above:
        batch_runner.MAX_INSTANCE_SIDE = tiled_above
        batch_runner.LARGE_TILE = max(256, tiled_above // 2)

    loader = pipeline.TwoStagePredictor.from_files.__func__

    def coherent_from_files(cls, *args, **kwargs):
        predictor = loader(cls, *args, **kwargs)
        make_coherent(predictor.semantic.network)
        return predictor

    pipeline.TwoStagePredictor.from_files = classmethod(coherent_from_files)
    start = time.perf_counter()
    rc = coralseg_main(argv)
    seconds = time.perf_counter() - start
    peak_gb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 2**20
    print(json.dumps({"rc": rc, "seconds": seconds, "peak_gb": peak_gb}))
    return 0


if __name__ == "__main__":
    sys.exit(main())
