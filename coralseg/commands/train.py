"""``coralseg train CONFIG``: train a segmentation model with MMSegmentation."""

from __future__ import annotations

import argparse

EPILOG = """\
examples:
  coralseg train configs/dinov2-vitb14-segformer_150e_criobe-finegrained-518x518.py \\
      --data data/criobe_finegrained --work-dir work_dirs/finegrained --amp
  coralseg train CONFIG --work-dir work_dirs/finegrained --resume        # continue a killed run
  coralseg train CONFIG --data data/criobe_finegrained --work-dir work_dirs/fine \\
      --load-from work_dirs/families/best_mIoU_epoch_140.pth             # families -> genera
  torchrun --nproc_per_node 4 -m coralseg.cli train CONFIG --work-dir DIR --launcher pytorch

Logs go to WORK_DIR (text, JSON scalars under vis_data/, TensorBoard events); checkpoints
keep the best by mIoU (best_mIoU_epoch_N.pth) and the last.
"""


def register(subparsers: argparse._SubParsersAction) -> None:
    from coralseg.options import add_cfg_options_argument

    parser = subparsers.add_parser(
        "train",
        help="train a DINOv2 + SegFormer model (MMSegmentation)",
        description="Train a segmentation model from an MMSeg config (see configs/).",
        epilog=EPILOG,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("config", help="MMSeg config file, e.g. from configs/")
    parser.add_argument("--work-dir", required=True, help="folder for logs and checkpoints")
    parser.add_argument(
        "--data",
        metavar="DIR",
        help="a folder written by 'coralseg prepare': its data, classes and palette replace "
        "the config's",
    )
    parser.add_argument(
        "--resume",
        nargs="?",
        const=True,
        default=False,
        metavar="CKPT",
        help="resume from the last checkpoint in --work-dir, or from CKPT",
    )
    parser.add_argument(
        "--load-from",
        metavar="CKPT",
        help="start from these weights; a checkpoint of a coarser taxonomy initialises each "
        "class from its parent",
    )
    parser.add_argument("--amp", action="store_true", help="mixed-precision training")
    parser.add_argument(
        "--accumulate", type=int, default=1, metavar="N", help="gradient accumulation steps"
    )
    parser.add_argument(
        "--class-weights",
        choices=("median-frequency",),
        help="weight the loss per class from the --data folder's pixel counts",
    )
    parser.add_argument(
        "--launcher",
        choices=("none", "pytorch"),
        default="none",
        help="'pytorch' under torchrun for several GPUs (or CPU processes)",
    )
    add_cfg_options_argument(parser)
    parser.set_defaults(run=run)


def run(args: argparse.Namespace) -> int:
    from coral_core.training.runner import TrainOptions, prepare_config, train

    options = TrainOptions(
        work_dir=args.work_dir,
        data_dir=args.data,
        resume=args.resume,
        load_from=args.load_from,
        amp=args.amp,
        accumulate=args.accumulate,
        class_weights=args.class_weights,
        cfg_options=args.cfg_options or {},
        launcher=args.launcher,
    )
    cfg = prepare_config(args.config, options)
    work_dir = train(cfg, load_from=args.load_from)
    print(f"training finished; checkpoints and logs in {work_dir}")
    return 0
