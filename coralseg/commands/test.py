"""``coralseg test CONFIG CHECKPOINT``: per-class IoU/Acc, mIoU, mAcc, aAcc of a checkpoint;
with ``--colonies``, colony PQ, count error and size KS of its two-stage colonies."""

from __future__ import annotations

import argparse
import json
from pathlib import Path


def register(subparsers: argparse._SubParsersAction) -> None:
    from coralseg.options import add_cfg_options_argument, add_evaluation_arguments

    parser = subparsers.add_parser(
        "test",
        help="evaluate a checkpoint: per-class IoU and Acc, mIoU, mAcc, aAcc",
        description="Evaluate a trained checkpoint on the val or test split of its config "
        "(or of --data). Prints the per-class table; --out writes the numbers as JSON.",
    )
    add_evaluation_arguments(parser)
    parser.add_argument("--tta", action="store_true", help="test-time augmentation (scales + flip)")
    parser.add_argument("--show-dir", metavar="DIR", help="save prediction overlays here")
    parser.add_argument("--out", metavar="JSON", help="write the metrics to this JSON file")
    parser.add_argument(
        "--colonies",
        action="store_true",
        help="also judge the colonies 'coralseg infer' finds (needs --data): PQ, count error, "
        "size KS, against the connected regions of the label masks or --annotations",
    )
    parser.add_argument(
        "--annotations",
        metavar="FILE",
        help="with --colonies: the CVAT XML or COCO JSON the data was prepared from; its "
        "polygons are the drawn colonies",
    )
    parser.add_argument("--sam-checkpoint", help="with --colonies: SAM or CoralSCoP weights")
    add_cfg_options_argument(parser)
    parser.set_defaults(run=run)


def run(args: argparse.Namespace) -> int:
    from coral_core.errors import CoralsegError
    from coralseg.options import run_evaluation

    if args.colonies and not args.data:
        raise CoralsegError("--colonies needs --data, the 'coralseg prepare' folder to test on")
    if (args.annotations or args.sam_checkpoint) and not args.colonies:
        raise CoralsegError("--annotations and --sam-checkpoint go with --colonies")
    for name in ("annotations", "sam_checkpoint"):  # checked before the long evaluation
        path = getattr(args, name)
        if path and not Path(path).is_file():
            raise CoralsegError(f"{path} does not exist", settings=[name])
    result = run_evaluation(args, tta=args.tta, show_dir=args.show_dir)
    print(result.scores.format_table())
    metrics = result.scores.to_dict()
    if args.colonies:
        from coral_core.evaluation.split_colonies import evaluate_split_colonies

        colonies, regions = evaluate_split_colonies(
            args.config,
            args.checkpoint,
            args.data,
            args.split,
            sam_checkpoint=args.sam_checkpoint,
            annotations=args.annotations,
        )
        print("Colonies (two-stage, as 'coralseg infer' finds them):")
        print(colonies.format_table())
        print(colonies.summary_line())
        print(f"connected regions of the semantic map instead: {regions.summary_line()}")
        metrics["colonies"] = colonies.to_dict()
        metrics["colonies_as_regions"] = regions.to_dict()
    if args.out:
        out = Path(args.out)
        out.parent.mkdir(parents=True, exist_ok=True)
        out.write_text(json.dumps(metrics, indent=2) + "\n")
        print(f"metrics written to {out}")
    return 0
