"""``coralseg infer``: two-stage inference over a folder of images."""

from __future__ import annotations

import argparse

from coral_core.inference.instances import (
    DEFAULT_MIN_AREA,
    DEFAULT_MIN_THICKNESS,
    DEFAULT_MIN_THRESHOLD,
    DEFAULT_NECK_RATIO,
    DEFAULT_UNSURE_THRESHOLD,
)

DESCRIPTION = """\
Segment every image of --input-dir with a trained semantic model, refine the result into
coral colonies with SAM or CoralSCoP (--sam-checkpoint; without it, colonies are the
semantic regions), and write to --output-dir:

  visualizations/<image>.jpg        colours per class, colony outlines, a legend
  masks/<image>/instance_NNN.png    one binary mask per colony
  semantic/<image>.png              refined semantic mask (pixel value = class, see classes.txt)
  semantic_raw/<image>.png          the semantic model's own argmax
  instances/<image>.json            each image's colonies and the model version that made them
  predictions.json                  COCO instances (RLE masks, scores; pycocotools-readable)
  classes.txt, palette.txt          the class of each pixel value, and its colour
  encoding.json                     which classes are colonies and which are cover only
  inference_log.txt                 what happened to each image

Images are seen at the scale the model was trained for (its config's test Resize), like
'coralseg test'. Only colony classes make colonies; cover-only classes (bare substrate,
sand, ...) stay in the semantic masks. A pixel's coral probability is the summed
probability of the colony classes: below --min-threshold it is not coral; between
--min-threshold and --unsure-threshold it is unsure, and SAM's colony mask decides it;
above, it is coral. Images over 8192 px (orthomosaics, BigTIFF) are processed tile by tile
at native resolution: semantic maps as tiled GeoTIFFs with their geotransform, colonies
merged across tiles into predictions.json. Images already done are skipped unless --redo.

Photos and the tiles of large images are units of work: with --cluster they are spread over
the workers of a Ray cluster (one model copy per worker; pip install 'coralseg[ray]'), with
the same outputs as in one process. The output folder must then be the same folder on every
node (a shared file system). Each unit's outputs are written whole or not at all and record
the model version, so a rerun after a crash or Ctrl-C finishes only what is missing; a unit
whose worker dies is retried on another. The exit status is 1 when any image failed (the
others are still done), 2 for a usage error.

Example:
  coralseg infer --input-dir photos/ --output-dir predictions/ \\
      --segformer-config configs/dinov2-vitb14-segformer_150e_criobe-finegrained-518x518.py \\
      --segformer-weights work_dirs/finegrained/best_mIoU_epoch_140.pth \\
      --sam-checkpoint checkpoints/vit_b_coralscop.pth --device cuda
  # the same over a Ray cluster's GPUs, two workers per GPU
  coralseg infer ... --device cuda --cluster ray://head-node:10001 --workers-per-gpu 2
"""


def register(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser(
        "infer",
        help="two-stage inference (semantic model + SAM/CoralSCoP) over a folder of images",
        description=DESCRIPTION,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument(
        "--input-dir", required=True, help="folder of images (searched recursively)"
    )
    parser.add_argument("--output-dir", required=True, help="where results go")
    parser.add_argument("--segformer-config", required=True, help="MMSeg config of the model")
    parser.add_argument("--segformer-weights", required=True, help="its checkpoint (.pth)")
    parser.add_argument(
        "--sam-checkpoint",
        help="SAM (sam_vit_b/l/h) or CoralSCoP (vit_b_coralscop.pth) checkpoint; type detected",
    )
    parser.add_argument("--device", default="cpu", help="cpu, cuda or cuda:N (default: cpu)")
    parser.add_argument(
        "--min-threshold",
        type=float,
        default=DEFAULT_MIN_THRESHOLD,
        help=f"below: not coral (default {DEFAULT_MIN_THRESHOLD})",
    )
    parser.add_argument(
        "--unsure-threshold",
        type=float,
        default=DEFAULT_UNSURE_THRESHOLD,
        help=f"below (and above --min-threshold): SAM decides (default {DEFAULT_UNSURE_THRESHOLD})",
    )
    parser.add_argument(
        "--min-area",
        type=int,
        default=DEFAULT_MIN_AREA,
        help=f"smallest colony in pixels at the model's working scale (default {DEFAULT_MIN_AREA})",
    )
    parser.add_argument(
        "--min-thickness",
        type=float,
        default=DEFAULT_MIN_THICKNESS,
        help="thinner regions are slivers, not colonies: pixels at the model's working scale "
        f"(default {DEFAULT_MIN_THICKNESS})",
    )
    parser.add_argument(
        "--neck-ratio",
        type=float,
        default=DEFAULT_NECK_RATIO,
        help="touching colonies of one genus split where the neck is narrower than this times "
        f"the thinner lobe, 0 never (default {DEFAULT_NECK_RATIO})",
    )
    parser.add_argument(
        "--overlap",
        type=float,
        default=0.0,
        help="overlap of the sliding windows, 0 to <1 (default 0: each pixel seen once; 0.5 is "
        "the config's test setting, about 3-4x slower on large images)",
    )
    parser.add_argument("--redo", action="store_true", help="process images already done again")
    parser.add_argument(
        "--tile-above",
        type=int,
        help="images with a side over this many pixels are processed tile by tile at native "
        "resolution (default 8192)",
    )
    parser.add_argument(
        "--tile-size",
        type=int,
        help="side of those tiles in pixels (default 2048); each is refined with a margin of "
        "context, and colonies cut by tile borders are joined again",
    )
    cluster = parser.add_argument_group("running on a Ray cluster")
    cluster.add_argument(
        "--cluster",
        metavar="ADDRESS",
        help="spread the work over a Ray cluster: 'local' (start one on this machine), "
        "'auto' (the cluster this machine is a node of), HOST:PORT (its head, from a node) or "
        "ray://HOST:PORT (Ray Client, from outside it). Default: one process, no Ray",
    )
    cluster.add_argument(
        "--workers",
        type=int,
        help="workers (model copies) to start (default: as many as the cluster's CPUs, or "
        "GPUs with --device cuda, hold)",
    )
    cluster.add_argument(
        "--cpus-per-worker",
        type=int,
        default=1,
        help="CPUs (and torch threads, on a CPU) reserved per worker (default 1)",
    )
    cluster.add_argument(
        "--workers-per-gpu",
        type=int,
        default=1,
        help="workers sharing each GPU with --device cuda (default 1)",
    )
    parser.set_defaults(run=run)


def run(args: argparse.Namespace) -> int:
    import sys
    from pathlib import Path

    from coral_core.inference.batch_runner import infer_folder
    from coral_core.inference.batch_units import ModelSpec
    from coral_core.inference.instances import RefineSettings

    settings = RefineSettings(
        min_threshold=args.min_threshold,
        unsure_threshold=args.unsure_threshold,
        min_area=args.min_area,
        min_thickness=args.min_thickness,
        neck_ratio=args.neck_ratio,
    )
    spec = ModelSpec(
        Path(args.segformer_config),
        Path(args.segformer_weights),
        sam_checkpoint=Path(args.sam_checkpoint) if args.sam_checkpoint else None,
        device=args.device,
        settings=settings,
        overlap=args.overlap,
    )
    cluster = _cluster_options(args)
    with _ProgressBar() as bar:
        summary = infer_folder(
            spec,
            Path(args.input_dir),
            Path(args.output_dir),
            redo=args.redo,
            cluster=cluster,
            tile_above=args.tile_above,
            tile_size=args.tile_size,
            progress=bar.show,
        )
    print(summary.describe())
    if summary.failed:
        names = ", ".join(name for name, _ in summary.failed[:3])
        more = f" and {len(summary.failed) - 3} more" if len(summary.failed) > 3 else ""
        print(
            f"coralseg infer: {len(summary.failed)} of {summary.images} image(s) failed "
            f"({names}{more}); the others are done",
            file=sys.stderr,
        )
        return 1
    return 0


def _cluster_options(args: argparse.Namespace):
    from coral_core.cluster import ClusterOptions, check_address
    from coral_core.errors import CoralsegError

    if args.cluster is None:
        if args.workers is not None:
            raise CoralsegError("--workers needs --cluster (local, auto or an address)")
        return None
    if args.workers is not None and args.workers < 1:
        raise CoralsegError(f"--workers must be at least 1, got {args.workers}")
    if args.cpus_per_worker < 1 or args.workers_per_gpu < 1:
        raise CoralsegError("--cpus-per-worker and --workers-per-gpu must be at least 1")
    on_gpu = args.device.startswith("cuda")
    return ClusterOptions(
        address=check_address(args.cluster),
        workers=args.workers,
        cpus_per_worker=args.cpus_per_worker,
        gpus_per_worker=1 / args.workers_per_gpu if on_gpu else 0.0,
    )


class _ProgressBar:
    """The run's progress in the terminal: units done / total, rate and time left, and a
    line per failed unit above the bar."""

    def __init__(self) -> None:
        self.bar = None

    def show(self, progress) -> None:
        from tqdm import tqdm

        if self.bar is None:
            self.bar = tqdm(total=progress.total, desc="inferring", unit="unit")
        if progress.failure:
            self.bar.write(f"failed: {progress.failure}")
        self.bar.update(progress.done - self.bar.n)

    def __enter__(self) -> _ProgressBar:
        return self

    def __exit__(self, *exc_info) -> None:
        if self.bar is not None:
            self.bar.close()
