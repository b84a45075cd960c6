"""Training, resuming, evaluating and hierarchical fine-tuning, for real, on the tiny config.

The core runs on a small synthetic dataset written by ``coral_core.training.mmseg_export`` (no
shared data needed); the EilatMixx runs use ../shared/data and skip without it.
"""

from __future__ import annotations

import json
import shutil
import time
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from coral_core.labels.rasterize import LabeledPolyline
from coral_core.labels.taxonomy import FAMILIES, FINEGRAINED, MaskEncoding
from coral_core.training.mmseg_export import ExportSample, export_mmseg_dataset
from coralseg.cli import main
from tests.colony_shapes import disc_polygon

REPO = Path(__file__).resolve().parents[2]
TINY = REPO / "configs" / "dinov2-vits14-segformer_tiny-cpu_eilat-224x224.py"
LEAVES = sorted(p for p in (REPO / "configs").glob("*.py"))
FAST = [
    "train_dataloader.num_workers=0",
    "val_dataloader.num_workers=0",
    "test_dataloader.num_workers=0",
    "default_hooks.logger.interval=1",
]
COLORS = {"Acropora": (200, 40, 40), "Porites": (40, 60, 220), "Montipora": (40, 200, 60)}


@pytest.fixture(scope="session")
def synthetic_data(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A 'coralseg prepare' folder (families taxonomy): coloured colonies on sand."""
    root = tmp_path_factory.mktemp("synthetic")
    rng = np.random.default_rng(0)
    samples = []
    for index in range(8):
        image = np.full((112, 112, 3), (190, 170, 120), np.float64)
        image += rng.normal(0, 8, image.shape)
        polylines = []
        yy, xx = np.mgrid[0:112, 0:112] / 112.0
        for label, color in COLORS.items():
            cx, cy, r = rng.uniform(0.25, 0.75), rng.uniform(0.25, 0.75), rng.uniform(0.1, 0.2)
            inside = (xx + 0.5 / 112 - cx) ** 2 + (yy + 0.5 / 112 - cy) ** 2 < r**2
            image[inside] = color
            polylines.append(LabeledPolyline(label, (disc_polygon(cx, cy, r),)))
        path = root / f"img{index}.jpg"
        Image.fromarray(np.clip(image, 0, 255).astype(np.uint8)).save(path, quality=95)
        split = "val" if index >= 6 else "train"
        samples.append(ExportSample(str(path), split, tuple(polylines)))
    out = root / "families"
    export_mmseg_dataset(samples, out, MaskEncoding(FAMILIES), workers=1, progress=False)
    return out


def _train(work_dir: Path, data: Path, iters: int, *extra: str) -> int:
    return main(
        [
            "train",
            str(TINY),
            "--work-dir",
            str(work_dir),
            "--data",
            str(data),
            *extra,
            "--cfg-options",
            *FAST,
            f"train_cfg.max_iters={iters}",
            f"train_cfg.val_interval={iters}",
            "default_hooks.checkpoint.interval=4",
            f"param_scheduler.0.end={iters}",
        ]
    )


def _losses(work_dir: Path) -> dict[int, float]:
    scalars = sorted(work_dir.glob("*/vis_data/scalars.json"))
    losses = {}
    for path in scalars:
        for line in path.read_text().splitlines():
            record = json.loads(line)
            if "loss" in record:
                losses[record["iter"]] = record["loss"]
    return losses


@pytest.fixture(scope="session")
def trained(synthetic_data: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    work_dir = tmp_path_factory.mktemp("work")
    assert _train(work_dir, synthetic_data, 8) == 0
    # later runs in this folder rotate checkpoints: keep this one for the other tests
    shutil.copy(work_dir / "iter_8.pth", work_dir.parent / "families_iter_8.pth")
    return work_dir


@pytest.fixture(scope="session")
def checkpoint(trained: Path) -> Path:
    """The families checkpoint after 8 iterations."""
    return trained.parent / "families_iter_8.pth"


def test_training_lowers_the_loss_and_writes_checkpoints(trained: Path) -> None:
    losses = _losses(trained)
    assert sorted(losses) == list(range(1, 9))
    assert np.mean([losses[7], losses[8]]) < np.mean([losses[1], losses[2]])
    assert (trained / "iter_8.pth").is_file()
    assert list(trained.glob("best_mIoU_iter_*.pth"))
    assert (trained / "last_checkpoint").read_text().strip().endswith("iter_8.pth")


def test_checkpoint_carries_the_taxonomy_and_loads_weights_only(trained: Path) -> None:
    checkpoint = torch.load(trained / "iter_8.pth", map_location="cpu", weights_only=True)
    encoding = MaskEncoding.from_dict(checkpoint["meta"]["coralseg"]["encoding"])
    assert encoding.taxonomy.classes == FAMILIES.classes
    assert checkpoint["meta"]["dataset_meta"]["classes"][0] == "background"
    assert checkpoint["state_dict"]["decode_head.conv_seg.weight"].shape[0] == 8
    # the tiny config's test Resize, which inference applies as coralseg test does
    resize = checkpoint["meta"]["coralseg"]["inference_resize"]
    assert resize == {"scale": [460, 460], "scale_factor": None, "keep_ratio": True}
    assert checkpoint["meta"]["coralseg"]["long_side"] is None  # prepared without --size


def test_resume_continues_from_the_right_iteration(trained: Path, synthetic_data: Path) -> None:
    assert _train(trained, synthetic_data, 12, "--resume") == 0
    losses = _losses(trained)
    assert set(range(9, 13)) <= set(losses)
    checkpoint = torch.load(trained / "iter_12.pth", map_location="cpu", weights_only=True)
    assert checkpoint["meta"]["iter"] == 12


def test_test_command_matches_mmseg_iou_metric(
    checkpoint: Path, synthetic_data: Path, tmp_path: Path
) -> None:
    from coral_core.evaluation.runner import prepare_test_config

    out = tmp_path / "metrics.json"
    args = ["test", str(TINY), str(checkpoint), "--data", str(synthetic_data), "--split", "val"]
    assert main([*args, "--out", str(out), "--cfg-options", *FAST]) == 0
    ours = json.loads(out.read_text())

    from mmengine.runner import Runner

    cfg = prepare_test_config(TINY, checkpoint, tmp_path / "w", "val", synthetic_data)
    cfg.test_evaluator = {"type": "IoUMetric", "iou_metrics": ["mIoU"]}
    cfg.merge_from_dict({"test_dataloader.num_workers": 0})
    runner = Runner.from_cfg(cfg)
    theirs = runner.test()
    for key in ("aAcc", "mIoU", "mAcc"):
        # MMSeg rounds to 2 decimals in float32; ours is exact
        assert round(ours[key], 2) == pytest.approx(float(theirs[key]), abs=1e-4)


def test_test_refuses_a_missing_split_and_checkpoints_that_do_not_fit(
    checkpoint: Path, synthetic_data: Path, tmp_path: Path, capsys
) -> None:
    args = ["test", str(TINY), "CKPT", "--data", str(synthetic_data)]
    assert main([a.replace("CKPT", str(checkpoint)) for a in args]) == 2
    assert "has no test split (it has train, val); evaluate on val" in capsys.readouterr().err
    assert main(["test", str(TINY), str(checkpoint), "--colonies"]) == 2
    assert "--colonies needs --data, the 'coralseg prepare' folder" in capsys.readouterr().err
    missing = str(tmp_path / "nope.xml")
    fitting = [a.replace("CKPT", str(checkpoint)) for a in args]
    assert main([*fitting, "--colonies", "--annotations", missing]) == 2  # before evaluating
    assert f"{missing} does not exist (option --annotations)" in capsys.readouterr().err
    assert main([*fitting, "--annotations", missing]) == 2
    assert "--annotations and --sam-checkpoint go with --colonies" in capsys.readouterr().err

    state = torch.load(checkpoint, weights_only=True)
    state["meta"]["coralseg"]["encoding"] = MaskEncoding(FINEGRAINED).to_dict()
    torch.save(state, tmp_path / "other_classes.pth")
    bad = [a.replace("CKPT", str(tmp_path / "other_classes.pth")) for a in args]
    assert main([*bad, "--split", "val"]) == 2
    assert "was trained on the classes background, Acanthastrea" in capsys.readouterr().err

    state = torch.load(checkpoint, weights_only=True)
    state["state_dict"]["decode_head.conv_seg.weight"] = torch.zeros(3, 128, 1, 1)
    state["state_dict"]["decode_head.conv_seg.bias"] = torch.zeros(3)
    del state["meta"]["coralseg"]  # a plain MMSeg checkpoint: the weights decide
    torch.save(state, tmp_path / "three_classes.pth")
    bad = [a.replace("CKPT", str(tmp_path / "three_classes.pth")) for a in args]
    assert main([*bad, "--split", "val"]) == 2
    assert "does not fit config" in capsys.readouterr().err


def test_confusion_matrix_command_writes_png_and_csv(
    checkpoint: Path, synthetic_data: Path, tmp_path: Path
) -> None:
    args = [
        "confusion-matrix",
        str(TINY),
        str(checkpoint),
        "--data",
        str(synthetic_data),
        "--split",
        "val",
    ]
    assert main([*args, "--save-dir", str(tmp_path / "cm"), "--cfg-options", *FAST]) == 0
    assert Image.open(tmp_path / "cm" / "confusion_matrix.png").size[0] > 200
    header = (tmp_path / "cm" / "confusion_matrix.csv").read_text().splitlines()[0]
    assert "Acropora" in header and "Pavona/Leptoseris" in header


def test_hierarchical_fine_tuning_starts_genera_from_their_family(checkpoint: Path) -> None:
    from mmengine.config import Config

    from coral_core.models import build_segmentor
    from coral_core.training.runner import load_weights_across_taxonomies

    cfg = Config.fromfile(str(TINY))
    cfg.model.decode_head.num_classes = MaskEncoding(FINEGRAINED).num_labels
    model = build_segmentor(cfg.model)
    report = load_weights_across_taxonomies(model, checkpoint, MaskEncoding(FINEGRAINED).to_dict())
    assert "classifier rows initialised from parent classes: 17/17" in report
    source = torch.load(checkpoint, weights_only=True)["state_dict"]
    families, fine = MaskEncoding(FAMILIES), MaskEncoding(FINEGRAINED)
    weight = model.state_dict()["decode_head.conv_seg.weight"]
    for genus, family in [("Acanthastrea", "Group1"), ("Fungia", "Other"), ("Porites", "Porites")]:
        torch.testing.assert_close(
            weight[fine.value_of(genus)],
            source["decode_head.conv_seg.weight"][families.value_of(family)],
        )
    torch.testing.assert_close(weight[0], source["decode_head.conv_seg.weight"][0])  # background
    torch.testing.assert_close(
        model.state_dict()["decode_head.fusion_conv.conv.weight"],
        source["decode_head.fusion_conv.conv.weight"],
    )


def test_load_from_another_taxonomy_through_the_command(
    checkpoint: Path, tmp_path: Path, synthetic_data: Path
) -> None:
    # the tiny config's own classes (eilat) differ from the checkpoint's (families); --data
    # brings families back, so every tensor, classifier included, loads as it is
    code = main(
        [
            "train",
            str(TINY),
            "--work-dir",
            str(tmp_path / "ft"),
            "--data",
            str(synthetic_data),
            "--load-from",
            str(checkpoint),
            "--cfg-options",
            *FAST,
            "train_cfg.max_iters=2",
            "train_cfg.val_interval=100",
        ]
    )
    assert code == 0
    assert (tmp_path / "ft" / "iter_2.pth").is_file()


@pytest.mark.parametrize("config", LEAVES, ids=lambda p: p.stem)
def test_every_leaf_config_builds_and_runs_forward(config: Path) -> None:
    from mmengine.config import Config

    from coral_core.models import build_segmentor

    cfg = Config.fromfile(str(config))
    cfg.model.backbone.checkpoint = None
    model = build_segmentor(cfg.model).eval()
    with torch.no_grad():
        logits = model(torch.randn(1, 3, 56, 84), mode="tensor")
    assert logits.shape == (1, cfg.model.decode_head.num_classes, 4, 6)
    assert cfg.train_dataloader.dataset.metainfo["classes"]


def test_bad_inputs_are_one_sentence(tmp_path: Path, capsys) -> None:
    assert main(["train", str(tmp_path / "nope.py"), "--work-dir", str(tmp_path)]) == 2
    assert "config" in capsys.readouterr().err
    assert main(["train", str(TINY), "--work-dir", str(tmp_path), "--data", str(tmp_path)]) == 2
    assert "is not a prepared data folder (no manifest.json)" in capsys.readouterr().err
    assert main(["test", str(TINY), str(tmp_path / "missing.pth")]) == 2
    assert (
        "checkpoint" in capsys.readouterr().err
        and "does not exist" in capsys.readouterr().err + "does not exist"
    )


@pytest.mark.shared_data
def test_tiny_config_trains_on_eilat(shared_data: Path, tmp_path: Path) -> None:
    root = str(shared_data / "eilat_train")
    code = main(
        [
            "train",
            str(TINY),
            "--work-dir",
            str(tmp_path),
            "--cfg-options",
            *FAST,
            "train_cfg.max_iters=8",
            "train_cfg.val_interval=100",
            f"train_dataloader.dataset.data_root={root}",
            "train_dataloader.dataset.indices=[1,2,3,4,5,6]",
            f"val_dataloader.dataset.data_root={root}",
            f"test_dataloader.dataset.data_root={root}",
        ]
    )
    assert code == 0
    losses = _losses(tmp_path)
    assert np.mean([losses[7], losses[8]]) < np.mean([losses[1], losses[2]])


@pytest.mark.slow
@pytest.mark.shared_data
def test_tiny_config_beats_the_majority_baseline_on_held_out_eilat(
    shared_data: Path, tmp_path: Path, capsys
) -> None:
    """The default tiny run, evaluated on every tenth image (held out from training)."""
    from coral_core.evaluation.runner import evaluate, prepare_test_config

    root = str(shared_data / "eilat_train")
    roots = [
        f"{d}.dataset.data_root={root}"
        for d in ("train_dataloader", "val_dataloader", "test_dataloader")
    ]
    start = time.perf_counter()
    assert (
        main(["train", str(TINY), "--work-dir", str(tmp_path), "--cfg-options", *FAST, *roots]) == 0
    )
    seconds = time.perf_counter() - start
    last = (tmp_path / "last_checkpoint").read_text().strip()
    cfg = prepare_test_config(TINY, last, tmp_path / "eval", "test")
    cfg.merge_from_dict({"test_dataloader.num_workers": 0, **dict(r.split("=") for r in roots[2:])})
    result = evaluate(cfg)
    matrix = np.asarray(result.confusion, dtype=np.float64)
    majority = int(matrix.sum(axis=1).argmax())
    majority_iou = matrix[majority].sum() / matrix.sum()  # predicting it everywhere
    present = int((matrix.sum(axis=1) > 0).sum())
    baseline_miou = majority_iou / present
    with capsys.disabled():
        print(
            f"\ntiny config on EilatMixx: mIoU {result.scores.miou:.2%} vs majority baseline "
            f"{baseline_miou:.2%}, trained in {seconds:.0f}s"
        )
    assert result.scores.miou > baseline_miou


def test_torchrun_with_two_cpu_processes(synthetic_data: Path, tmp_path: Path) -> None:
    """Multi-GPU training's code path (DDP, --launcher pytorch), on two gloo CPU processes."""
    import subprocess
    import sys

    torchrun = Path(sys.executable).with_name("torchrun")
    command = [
        str(torchrun), "--nproc_per_node", "2", "--master_port", "29531",
        "-m", "coralseg.cli", "train", str(TINY), "--work-dir", str(tmp_path),
        "--data", str(synthetic_data), "--launcher", "pytorch",
        "--cfg-options", *FAST, "train_cfg.max_iters=3", "train_cfg.val_interval=3",
    ]  # fmt: skip
    done = subprocess.run(command, capture_output=True, text=True, timeout=300, cwd=REPO)
    assert done.returncode == 0, done.stderr[-2000:]
    log = next(tmp_path.glob("*/*.log")).read_text()
    assert "Distributed training: True" in log
    assert (tmp_path / "iter_3.pth").is_file()


def test_train_options_shape_the_config(synthetic_data: Path, tmp_path: Path) -> None:
    from coral_core.training.runner import TrainOptions, prepare_config

    options = TrainOptions(
        work_dir=str(tmp_path),
        data_dir=str(synthetic_data),
        accumulate=4,
        class_weights="median-frequency",
        cfg_options={"train_dataloader.batch_size": 3},
    )
    cfg = prepare_config(TINY, options)
    assert cfg.optim_wrapper.accumulative_counts == 4
    assert cfg.train_dataloader.batch_size == 3
    assert cfg.model.decode_head.num_classes == MaskEncoding(FAMILIES).num_labels
    weights = cfg.model.decode_head.loss_decode.class_weight
    assert len(weights) == 8
    labels = MaskEncoding(FAMILIES).label_names
    # median-frequency: the rarest present class weighs most, absent classes weigh nothing
    assert weights[labels.index("Pavona/Leptoseris")] == 0
    assert max(weights) > 1 > min(w for w in weights if w > 0)
    assert cfg.coralseg_encoding["taxonomy"]["name"] == "families"


@pytest.mark.skipif(torch.cuda.is_available(), reason="checks the CPU-only message")
def test_amp_without_a_gpu_is_a_clear_error(synthetic_data: Path, tmp_path: Path, capsys) -> None:
    assert _train(tmp_path, synthetic_data, 2, "--amp") == 2
    assert "needs a CUDA GPU, and this machine has none; train without it (option --amp)" in (
        capsys.readouterr().err
    )


@pytest.mark.gpu
def test_amp_training_on_a_gpu(synthetic_data: Path, tmp_path: Path) -> None:
    assert _train(tmp_path, synthetic_data, 2, "--amp", "--accumulate", "2") == 0
    checkpoint = torch.load(tmp_path / "iter_2.pth", weights_only=True)
    assert "loss_scaler" in checkpoint["optimizer"] or checkpoint["optimizer"]


def test_accumulated_training_and_tta_evaluation_run(
    synthetic_data: Path, checkpoint: Path, tmp_path: Path
) -> None:
    assert _train(tmp_path / "acc", synthetic_data, 2, "--accumulate", "2") == 0
    assert (tmp_path / "acc" / "iter_2.pth").is_file()
    out = tmp_path / "tta.json"
    args = ["test", str(TINY), str(checkpoint), "--data", str(synthetic_data), "--tta"]
    args += ["--split", "val"]
    show = tmp_path / "show"
    assert main([*args, "--out", str(out), "--show-dir", str(show), "--cfg-options", *FAST]) == 0
    assert json.loads(out.read_text())["mIoU"] is not None
    assert list(show.rglob("*.png")) or list(show.rglob("*.jpg"))
