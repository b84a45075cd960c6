"""``coralseg test CONFIG CHECKPOINT``: per-class IoU/Acc, mIoU, mAcc, aAcc of a checkpoint."""

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
    add_cfg_options_argument(parser)
    parser.set_defaults(run=run)


def run(args: argparse.Namespace) -> int:
    from coralseg.options import run_evaluation

    result = run_evaluation(args, tta=args.tta, show_dir=args.show_dir)
    print(result.scores.format_table())
    if args.out:
        out = Path(args.out)
        out.parent.mkdir(parents=True, exist_ok=True)
        out.write_text(json.dumps(result.scores.to_dict(), indent=2) + "\n")
        print(f"metrics written to {out}")
    return 0
