"""Command-line options shared by several commands."""

from __future__ import annotations

import argparse


def add_cfg_options_argument(parser: argparse.ArgumentParser) -> None:
    """``--cfg-options key=value ...``: override config entries, as MMSeg's tools do."""
    from mmengine.config import DictAction

    parser.add_argument(
        "--cfg-options",
        nargs="+",
        action=DictAction,
        metavar="KEY=VALUE",
        help="override config entries, e.g. train_dataloader.batch_size=2 "
        "model.backbone.frozen=False",
    )


def add_evaluation_arguments(parser: argparse.ArgumentParser) -> None:
    """CONFIG CHECKPOINT and the options every evaluation command shares."""
    parser.add_argument("config", help="the MMSeg config the checkpoint was trained with")
    parser.add_argument("checkpoint", help="a .pth checkpoint, e.g. WORK_DIR/best_mIoU_epoch_N.pth")
    parser.add_argument(
        "--split", choices=("val", "test"), default="test", help="which split (default: test)"
    )
    parser.add_argument("--data", metavar="DIR", help="a 'coralseg prepare' folder to test on")
    parser.add_argument("--work-dir", help="keep the run's logs here (default: a temp folder)")


def run_evaluation(args: argparse.Namespace, **settings):
    """Evaluate ``args.checkpoint`` as the evaluation arguments say; ``settings`` go to
    :func:`coral_core.evaluation.runner.prepare_test_config` (``tta``, ``show_dir``,
    ``output_dir``).
    """
    import tempfile

    from coral_core.evaluation.runner import evaluate, prepare_test_config

    with tempfile.TemporaryDirectory(prefix="coralseg-eval-") as work_dir:
        cfg = prepare_test_config(
            args.config,
            args.checkpoint,
            work_dir=args.work_dir or work_dir,
            split=args.split,
            data_dir=args.data,
            cfg_options=args.cfg_options,
            **settings,
        )
        return evaluate(cfg)
