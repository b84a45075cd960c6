"""Train a model for the ``train_model`` operator (delegated): options in, best checkpoint out.

The same :mod:`coral_core.training.runner` run as ``coralseg train``, with a progress callback
(iterations, latest validation mIoU) instead of a terminal.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from mmengine.hooks import Hook

from coral_core.errors import CoralsegError
from coral_core.training.progress import TrainProgress


@dataclass(frozen=True)
class TrainOutcome:
    """Where a finished run put its results; ``best_miou`` in percent (None: no validation)."""

    work_dir: Path
    best_checkpoint: Path | None
    best_miou: float | None
    last_checkpoint: Path | None


class _RunBestCheckpoint(Hook):
    """Remembers the best checkpoint MMEngine's CheckpointHook saved in this run: the work
    folder may hold an earlier run's ``best_mIoU_iter_N.pth`` with a larger N."""

    def __init__(self) -> None:
        self.path: Path | None = None

    def after_train(self, runner) -> None:
        recorded = runner.message_hub.get_info("best_ckpt")
        self.path = Path(recorded) if recorded else None


def parse_overrides(text: str | None) -> dict[str, Any]:
    """``"train_cfg.max_iters=100 optim_wrapper.optimizer.lr=0.0005"`` -> a dict of values.

    Values are read as MMEngine's ``--cfg-options`` reads them (numbers, booleans, lists,
    tuples); keys are dotted config paths. Pairs are separated by spaces or new lines.
    """
    from mmengine.config import DictAction

    overrides: dict[str, Any] = {}
    for item in (text or "").split():
        key, sep, value = item.partition("=")
        if not sep or not key:
            raise CoralsegError(
                f"config override {item!r} is not key=value (e.g. train_cfg.max_iters=100)"
            )
        overrides[key] = DictAction._parse_iterable(value)
    return overrides


def check_prepared_folder(data_dir: str | None) -> Path:
    """A ``coralseg prepare`` / export-masks folder (it has a ``manifest.json``)."""
    if not data_dir or not str(data_dir).strip():
        raise CoralsegError("give the prepared data folder (the export masks output)")
    path = Path(str(data_dir).strip()).expanduser()
    if not (path / "manifest.json").is_file():
        raise CoralsegError(
            f"{path} is not a prepared data folder (no manifest.json); run export masks "
            "(or coralseg prepare) first"
        )
    return path.resolve()


def train_model(
    config: str | Path,
    data_dir: str | Path,
    work_dir: str | Path,
    overrides: Mapping[str, Any] | None = None,
    progress: Callable[[TrainProgress], Any] | None = None,
    every: int = 1,
) -> TrainOutcome:
    """Train ``config`` on a prepared folder; returns the best checkpoint and its mIoU.

    Args:
        config: an MMSeg config (``configs/*.py``).
        data_dir: a prepared folder; its classes replace the config's.
        work_dir: checkpoints and logs.
        overrides: ``--cfg-options`` style ``{dotted key: value}``.
        progress: called after every ``every`` iterations and each validation.
    """
    from coral_core.training.progress import ProgressHook
    from coral_core.training.runner import TrainOptions, prepare_config, train

    options = TrainOptions(
        work_dir=str(work_dir), data_dir=str(data_dir), cfg_options=dict(overrides or {})
    )
    cfg = prepare_config(config, options)
    hook = ProgressHook(progress or (lambda _: None), every=every)
    best = _RunBestCheckpoint()
    out = train(cfg, hooks=[hook, best])
    last = out / "last_checkpoint"
    last_path = Path(last.read_text().strip()) if last.is_file() else None
    return TrainOutcome(out, best.path, hook.best_miou, last_path)
