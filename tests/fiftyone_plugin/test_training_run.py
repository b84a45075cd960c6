"""fiftyone_plugin.training_run: the train_model operator's options checked with a sentence,
and a real (two-iteration) MMSeg run reporting its progress and this run's best checkpoint."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch

from coral_core.errors import CoralsegError
from coral_core.labels.taxonomy import FAMILIES, MaskEncoding
from fiftyone_plugin.mask_export import export_masks
from fiftyone_plugin.training_run import check_prepared_folder, parse_overrides, train_model
from tests.model_fixtures import TINY

TWO_ITERATIONS = {
    "train_dataloader.num_workers": 0,
    "val_dataloader.num_workers": 0,
    "test_dataloader.num_workers": 0,
    "train_cfg.max_iters": 2,
    "train_cfg.val_interval": 2,
    "param_scheduler.0.end": 2,
    "default_hooks.checkpoint.interval": 2,
    # validate the 96 px photos at their size, not blown up to 460 px: 7 s a photo less
    "val_dataloader.dataset.pipeline.1.scale": (96, 96),
}


def test_overrides_are_read_as_mmengine_reads_cfg_options() -> None:
    text = "train_cfg.max_iters=100  optimizer.lr=5e-4\nflip=True crop=(64,64) ids=[1,2] name=x"
    assert parse_overrides(text) == {
        "train_cfg.max_iters": 100,
        "optimizer.lr": 5e-4,
        "flip": True,
        "crop": (64, 64),
        "ids": [1, 2],
        "name": "x",
    }
    assert parse_overrides(None) == {} == parse_overrides(" \n ")
    for bad in ("max_iters", "=3"):
        with pytest.raises(CoralsegError, match=f"config override '{bad}' is not key=value"):
            parse_overrides(f"a=1 {bad}")


def test_the_prepared_folder_must_hold_a_manifest(tmp_path: Path) -> None:
    with pytest.raises(CoralsegError, match="give the prepared data folder"):
        check_prepared_folder("  ")
    with pytest.raises(CoralsegError) as caught:
        check_prepared_folder(str(tmp_path))
    assert str(caught.value) == (
        f"{tmp_path} is not a prepared data folder (no manifest.json); run export masks "
        "(or coralseg prepare) first"
    )
    (tmp_path / "manifest.json").write_text("{}")
    assert check_prepared_folder(f" {tmp_path} ") == tmp_path.resolve()


def test_a_real_run_reports_progress_and_returns_its_own_best_checkpoint(
    reef, tmp_path: Path
) -> None:
    data = export_masks(reef, tmp_path / "prepared", FAMILIES, workers=1).summary.out_dir
    work = tmp_path / "work"
    work.mkdir()
    # an earlier, longer run in the same folder left its best checkpoint behind
    (work / "best_mIoU_iter_500.pth").write_bytes(b"an earlier run")
    reports = []

    outcome = train_model(TINY, data, work, TWO_ITERATIONS, progress=reports.append)

    assert [(p.iteration, p.max_iters) for p in reports][:2] == [(1, 2), (2, 2)]
    assert reports[0].latest_miou is None
    final = reports[-1]
    assert (final.iteration, final.fraction) == (2, 1.0)
    assert final.latest_miou is not None and 0 <= final.latest_miou <= 100
    assert outcome.work_dir == work and outcome.best_miou == final.best_miou
    assert outcome.best_checkpoint == work / "best_mIoU_iter_2.pth"
    assert outcome.last_checkpoint == work / "iter_2.pth"
    saved = torch.load(outcome.best_checkpoint, map_location="cpu", weights_only=False)
    encoding = MaskEncoding.from_dict(saved["meta"]["coralseg"]["encoding"])
    assert encoding.taxonomy.classes == FAMILIES.classes
