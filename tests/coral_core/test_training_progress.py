"""Training progress reports and finding the best checkpoint (the train operator's view)."""

from __future__ import annotations

from types import SimpleNamespace

import pytest

from coral_core.training.progress import ProgressHook, TrainProgress


def test_hook_reports_iterations_and_the_latest_and_best_miou() -> None:
    seen: list[TrainProgress] = []
    hook = ProgressHook(seen.append, every=2)
    runner = SimpleNamespace(iter=0, max_iters=4)
    for done in range(4):
        runner.iter = done  # MMEngine counts the current iteration after its hooks
        hook.after_train_iter(runner, done)
        if done == 1:
            runner.iter = 2
            hook.after_val_epoch(runner, {"mIoU": 40.5, "aAcc": 80.0})
            hook.after_val_epoch(runner, {"mIoU": 30.0})
    assert [p.iteration for p in seen] == [2, 2, 2, 4]
    assert seen[-1] == TrainProgress(4, 4, latest_miou=30.0, best_miou=40.5)
    assert seen[-1].fraction == 1.0
    assert seen[-1].describe() == "iteration 4/4, latest mIoU 30.00"
    assert TrainProgress(1, 4).describe() == "iteration 1/4"
    with pytest.raises(ValueError, match="every"):
        ProgressHook(seen.append, every=0)
