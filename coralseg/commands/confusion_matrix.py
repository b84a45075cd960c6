"""``coralseg confusion-matrix CONFIG CHECKPOINT --save-dir DIR``: normalised matrix, PNG + CSV."""

from __future__ import annotations

import argparse


def register(subparsers: argparse._SubParsersAction) -> None:
    from coralseg.options import add_cfg_options_argument, add_evaluation_arguments

    parser = subparsers.add_parser(
        "confusion-matrix",
        help="plot the normalised confusion matrix of a checkpoint (PNG + CSV)",
        description="Evaluate a checkpoint and save its confusion matrix, normalised per true "
        "class, as confusion_matrix.png and confusion_matrix.csv (raw counts in "
        "confusion_matrix_counts.csv), with metrics.json beside them.",
    )
    add_evaluation_arguments(parser)
    parser.add_argument("--save-dir", required=True, help="folder for the PNG, CSVs and JSON")
    add_cfg_options_argument(parser)
    parser.set_defaults(run=run)


def run(args: argparse.Namespace) -> int:
    from coralseg.options import run_evaluation

    result = run_evaluation(args, output_dir=args.save_dir)
    print(result.scores.format_table())
    print(f"confusion matrix saved to {result.output_dir}/confusion_matrix.png (and .csv)")
    return 0
