"""``coralseg demo``: the whole job on this machine, from annotations to colonies in the App."""

from __future__ import annotations

import argparse
from pathlib import Path

from coralseg.demo_run import DEFAULT_WORK_DIR, STEPS

DESCRIPTION = """\
Run coralseg's main job end to end on this machine, with FiftyOne's own database and the
CPU, in one command:

  1. data: your images and a CVAT or COCO export (--images, --annotations), or, with
     neither, a small synthetic reef sample the demo draws itself;
  2. import it into a FiftyOne dataset (as 'coralseg import' does);
  3. export training masks (as 'coralseg prepare' does);
  4. train the tiny DINOv2 ViT-S/14 + SegFormer config for a few minutes;
  5. two-stage inference on a few held-out images: colonies, overlays, COCO predictions;
  6. evaluate on the held-out images and write per-class IoU onto the samples (the
     inferred images' semantic maps are reused: each model runs once per image);
  7. percent cover of every image and the model's cover error ('coralseg cover');

then print what was made, where, the numbers, and the command that opens the App.
Everything goes into --work-dir (default ~/coralseg-demo, printed first). A rerun reuses
every finished step and imports the FiftyOne dataset again when only it is gone; a finished
model is replaced only when asked (--redo train).
"""

EPILOG = """\
examples:
  coralseg demo                                  # the synthetic sample, minutes on 2 cores
  coralseg demo --app                            # the same, reused, then open the FiftyOne App
  coralseg demo --iterations 600 --redo train    # train again (and redo what follows)
  coralseg demo --images photos/ --annotations annotations.xml --iterations 1000
  coralseg demo --images eilat/images --annotations instances_default.json --size 512

The model starts from random weights (no download): its numbers show that the pipeline
works, not what a DINOv2-initialised model reaches. Put Meta's dinov2_vits14_pretrain.pth in
checkpoints/ and train with 'coralseg train' for real results.
"""


def register(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser(
        "demo",
        help="run the whole job on this machine: data, masks, training, evaluation, colonies",
        description=DESCRIPTION,
        epilog=EPILOG,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    data = parser.add_argument_group("data (default: a synthetic sample)")
    data.add_argument("--images", type=Path, metavar="DIR", help="folder of your photos")
    data.add_argument(
        "--annotations",
        type=Path,
        action="append",
        default=[],
        metavar="FILE",
        help="CVAT for images 1.1 XML or COCO JSON export of them (repeatable)",
    )
    data.add_argument(
        "--taxonomy",
        help="class list to train (a built-in name or a .yaml/.json file; default: the "
        "labels found in the annotations)",
    )
    data.add_argument(
        "--sample-images",
        type=int,
        default=30,
        metavar="N",
        help="images in the synthetic sample (default: 30)",
    )
    parser.add_argument(
        "--work-dir",
        type=Path,
        default=DEFAULT_WORK_DIR,
        metavar="DIR",
        help=f"where everything is written (default: {DEFAULT_WORK_DIR}, outside the clone)",
    )
    parser.add_argument(
        "--dataset",
        default="coralseg-demo",
        metavar="NAME",
        help="FiftyOne dataset name (default: coralseg-demo)",
    )
    parser.add_argument(
        "--iterations",
        type=int,
        default=300,
        metavar="N",
        help="training iterations (default: 300, the tiny config's own schedule)",
    )
    parser.add_argument(
        "--size",
        type=int,
        metavar="PX",
        help="shrink images so the long side has PX pixels when exporting masks (faster "
        "training on large photos; default: keep)",
    )
    parser.add_argument(
        "--infer-images",
        type=int,
        default=4,
        metavar="N",
        help="held-out images to run two-stage inference on (default: 4)",
    )
    parser.add_argument(
        "--sam-checkpoint",
        type=Path,
        metavar="PTH",
        help="Segment Anything or CoralSCoP checkpoint for the instance stage (default: "
        "colonies from the semantic regions alone)",
    )
    parser.add_argument("--device", default="cpu", help="cpu (default) or cuda")
    parser.add_argument(
        "--redo",
        action="append",
        default=[],
        choices=(*STEPS, "all"),
        metavar="STEP",
        help=f"redo this step even if finished ({', '.join(STEPS)} or all; repeatable); a "
        "finished model is replaced only with --redo train",
    )
    parser.add_argument("--overwrite", action="store_true", help="redo every step (--redo all)")
    parser.add_argument(
        "--app", action="store_true", help="open the FiftyOne App on the dataset at the end"
    )
    parser.add_argument(
        "--port", type=int, default=5151, help="port of the App with --app (default: 5151)"
    )
    parser.set_defaults(run=run)


def run(args: argparse.Namespace) -> int:
    from coral_core.errors import CoralsegError
    from coralseg.demo_run import DemoOptions, run_demo

    for name in ("iterations", "sample_images", "infer_images"):
        if getattr(args, name) < 1:
            raise CoralsegError(f"--{name.replace('_', '-')} must be at least 1")
    if args.sample_images < 3:
        raise CoralsegError("--sample-images must be at least 3 (train, val and test)")
    if args.sam_checkpoint and not args.sam_checkpoint.is_file():
        raise CoralsegError(f"--sam-checkpoint {args.sam_checkpoint} does not exist")
    options = DemoOptions(
        work_dir=args.work_dir,
        dataset=args.dataset,
        images=args.images,
        annotations=tuple(args.annotations),
        taxonomy=args.taxonomy,
        sample_images=args.sample_images,
        iterations=args.iterations,
        size=args.size,
        infer_images=args.infer_images,
        sam_checkpoint=args.sam_checkpoint,
        device=args.device,
        redo=frozenset(args.redo) | ({"all"} if args.overwrite else set()),
    )
    report = run_demo(options, say=lambda line: print(line, flush=True))
    print()
    print(describe(report, args))
    if args.app:
        from coralseg.demo_app import open_app

        open_app(report.dataset, port=args.port)
    return 0


def describe(report, args: argparse.Namespace) -> str:
    """The closing summary: what was made, where, the numbers, and how to look at it."""
    total = sum(report.seconds.values())
    splits = ", ".join(f"{k} {v}" for k, v in report.splits.items())
    lines = [
        f"coralseg demo finished in {total / 60:.1f} min"
        + (f" (reused: {', '.join(report.reused)})" if report.reused else ""),
        "",
        f"FiftyOne dataset {report.dataset!r}: {report.samples} images ({splits})",
        "  ground truth 'gt_polylines'; on the images held out: genus map 'coralseg_semantic', "
        "per-class IoU 'coralseg_eval_iou_<class>', colonies 'coralseg_colonies'",
        f"training masks      {report.data_dir}",
        f"model config        {report.config}",
        f"model checkpoint    {report.checkpoint}",
        f"confusion matrix    {report.confusion_png}",
        f"colonies, overlays  {report.inference_dir} (visualizations/, predictions.json)",
    ]
    if report.cover_dir:
        lines.append(f"percent cover       {report.cover_dir} (cover_per_image.csv, ...)")
    lines += ["", f"Per-class IoU on {_images(report.evaluated)} held out (percent):"]
    lines += ["  " + line for line in report.scores_table.splitlines()]
    found = sum(report.colonies.values())
    by_class = ", ".join(f"{k} {v}" for k, v in report.colonies_by_class.items()) or "none"
    lines += [
        "",
        f"Colonies found on {_images(len(report.colonies))}: {found} ({by_class})",
    ]
    lines += [f"  {name}: {count}" for name, count in sorted(report.colonies.items())]
    if report.colony_lines:
        heading, *rest = report.colony_lines
        lines += ["", heading, *("  " + line for line in rest)]
    if report.cover_error is not None:
        lines.append(
            f"Predicted cover differs from the annotated by {report.cover_error:.1f} "
            "percentage points on average (mean absolute error over classes and images)"
        )
    lines += [
        "",
        "Open it in the FiftyOne App (the coralseg operators are in its menu, key `); their "
        "forms offer this model as 'coralseg demo', or give:",
        f"  Config      {report.config}",
        f"  Checkpoint  {report.checkpoint}",
    ]
    command = rerun_command(args) + " --app"
    lines.append(f"  {command}")
    return "\n".join(lines)


def rerun_command(args: argparse.Namespace) -> str:
    """The ``coralseg demo`` command line that finds this run's results again."""
    import shlex

    words = ["coralseg", "demo"]
    if args.images:
        words += ["--images", str(args.images)]
    for path in args.annotations:
        words += ["--annotations", str(path)]
    defaults = {
        "taxonomy": None,
        "sample_images": 30,
        "work_dir": DEFAULT_WORK_DIR,
        "dataset": "coralseg-demo",
        "iterations": 300,
        "size": None,
        "infer_images": 4,
        "sam_checkpoint": None,
        "device": "cpu",
    }
    for name, default in defaults.items():
        value = getattr(args, name)
        if value != default:
            words += [f"--{name.replace('_', '-')}", str(value)]
    return shlex.join(words)


def _images(count: int) -> str:
    return f"{count} image" + ("" if count == 1 else "s")
