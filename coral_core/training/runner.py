"""Training with MMEngine's runner: configuration options, resume, hierarchical fine-tuning.

:func:`prepare_config` turns a config file and the user's options into the final
``Config``; :func:`train` runs it. Checkpoints are read with ``weights_only=True``
(see :mod:`coral_core.checkpoint`).
"""

from __future__ import annotations

import secrets
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch
from mmengine.config import Config

from coral_core.checkpoint import load_checkpoint_file
from coral_core.config_files import read_config
from coral_core.errors import CoralsegError
from coral_core.formats.dataset_manifest import read_dataset_manifest
from coral_core.labels.taxonomy import BACKGROUND_NAME, MaskEncoding
from coral_core.training.mmseg_config import median_frequency_weights, use_prepared_dataset


@dataclass(frozen=True)
class TrainOptions:
    """The ``coralseg train`` options that change a config.

    Attributes:
        work_dir: where logs and checkpoints go.
        data_dir: a ``coralseg prepare`` folder replacing the config's data (and classes).
        resume: ``True`` resumes from the last checkpoint in ``work_dir``; a path resumes
            from that checkpoint.
        load_from: initial weights (another run's checkpoint; another taxonomy is fine).
        amp: mixed precision (fp16 with dynamic loss scaling; needs a CUDA GPU).
        accumulate: gradient accumulation steps (effective batch = batch x accumulate).
        class_weights: ``"median-frequency"`` weights the loss by the train split's pixels.
        cfg_options: ``key=value`` overrides, applied last.
        launcher: ``none`` or ``pytorch`` (torchrun).
    """

    work_dir: str
    data_dir: str | None = None
    resume: bool | str = False
    load_from: str | None = None
    amp: bool = False
    accumulate: int = 1
    class_weights: str | None = None
    cfg_options: dict[str, Any] = field(default_factory=dict)
    launcher: str = "none"


def load_config(path: str | Path) -> Config:
    """A config file, with an experiment name of its own for the run that will use it.

    MMEngine names a run's message hub and visualizer after the experiment and the second
    it started; two runs of one process within a second would share (and mix) them. MMEngine
    appends the start time to this name.
    """
    path = Path(path)
    cfg = read_config(path)
    cfg.experiment_name = f"{path.stem}_{secrets.token_hex(3)}"
    return cfg


def prepare_config(config_path: str | Path, options: TrainOptions) -> Config:
    """The config a run will use: the file, then the options, then ``cfg_options``."""
    cfg = load_config(config_path)
    cfg.work_dir = str(Path(options.work_dir).resolve())
    cfg.launcher = options.launcher
    if options.launcher != "none" and not torch.cuda.is_available():
        # CPU processes (tests, laptops): gloo, and DDP without device ids. MMEngine's own
        # init_dist always selects a CUDA device, so train() starts the process group itself.
        cfg.env_cfg.dist_cfg = {"backend": "gloo"}
        cfg.model_wrapper_cfg = {
            "type": "MMDistributedDataParallel",
            "device_ids": None,
            "broadcast_buffers": False,
        }
    if options.launcher != "none" and torch.cuda.is_available():
        cfg.sync_bn = "torch"
    if options.data_dir:
        encoding = use_prepared_dataset(cfg, options.data_dir)
        cfg.coralseg_encoding = encoding.to_dict()
        # the photos' scale in training, which inference reproduces (inference.scaling)
        cfg.coralseg_long_side = read_dataset_manifest(options.data_dir).long_side
    if options.amp:
        if not torch.cuda.is_available():
            raise CoralsegError(
                "mixed precision (amp) needs a CUDA GPU, and this machine has none; train "
                "without it",
                settings=["amp"],
            )
        cfg.optim_wrapper.type = "AmpOptimWrapper"
        cfg.optim_wrapper.dtype = "float16"
        cfg.optim_wrapper.setdefault("loss_scale", "dynamic")
    if options.accumulate < 1:
        raise CoralsegError(
            f"gradient accumulation must be >= 1 step, got {options.accumulate}",
            settings=["accumulate"],
        )
    if options.accumulate > 1:
        cfg.optim_wrapper.accumulative_counts = options.accumulate
    if options.class_weights:
        cfg.model.decode_head.loss_decode.class_weight = _class_weights(cfg, options)
    if options.resume:
        cfg.resume = True
        cfg.load_from = None if options.resume is True else str(options.resume)
    if options.cfg_options:
        cfg.merge_from_dict(options.cfg_options)
    if not torch.cuda.is_available():
        # CPU runs: no pinned memory, and persistent workers only help with several.
        for loader in ("train_dataloader", "val_dataloader", "test_dataloader"):
            if cfg.get(loader):
                cfg[loader].pop("pin_memory", None)
    return cfg


def _class_weights(cfg: Config, options: TrainOptions) -> list[float]:
    if options.class_weights != "median-frequency":
        raise CoralsegError(
            f"unknown class weighting {options.class_weights!r}; use median-frequency"
        )
    if not options.data_dir:
        raise CoralsegError(
            "class weights need a prepared data folder (pixel counts come from its manifest)",
            settings=["class_weights", "data_dir"],
        )
    manifest = read_dataset_manifest(options.data_dir)
    pixels = manifest.splits["train"].pixels
    return median_frequency_weights(pixels, manifest.encoding.label_names)


def train(cfg: Config, load_from: str | None = None, hooks: Sequence[Any] = ()) -> Path:
    """Run training; returns the work dir. ``load_from`` may come from another taxonomy.

    ``hooks``: extra MMEngine hook objects
    (e.g. :class:`coral_core.training.progress.ProgressHook`).
    """
    from mmengine.runner import Runner

    import coral_core.models  # noqa: F401  (registers the backbone, metric and hooks)

    if cfg.get("launcher", "none") != "none" and not torch.cuda.is_available():
        import torch.distributed as dist

        if not dist.is_initialized():
            dist.init_process_group(backend="gloo")
    runner = Runner.from_cfg(cfg)
    for hook in hooks:
        runner.register_hook(hook)
    if load_from and not cfg.get("resume"):
        model = runner.model.module if hasattr(runner.model, "module") else runner.model
        report = load_weights_across_taxonomies(model, load_from, cfg.get("coralseg_encoding"))
        runner.logger.info(f"initial weights from {load_from}: {report}")
    runner.train()
    return Path(cfg.work_dir)


def load_weights_across_taxonomies(
    model: torch.nn.Module, checkpoint_path: str | Path, target_encoding: dict | None
) -> str:
    """Load a checkpoint's weights into ``model``, also across taxonomies.

    Everything whose shape matches is copied. When the classifier sizes differ (e.g. a
    families checkpoint for a finegrained model), each target class's classifier row starts
    from its parent's row in the checkpoint: the class the checkpoint's taxonomy maps it to
    (Acanthastrea <- Group1); background from background. Classes without a parent keep their
    fresh initialisation.

    Returns:
        A one-line summary of what was loaded.
    """
    checkpoint = load_checkpoint_file(checkpoint_path)
    source_state = checkpoint.get("state_dict", checkpoint)
    target_state = model.state_dict()
    copied, reshaped = 0, []
    new_state = {}
    for key, value in source_state.items():
        if key in target_state and target_state[key].shape == value.shape:
            new_state[key] = value
            copied += 1
        elif key in target_state:
            reshaped.append(key)
    parent_rows = None
    if reshaped:
        source_encoding = checkpoint.get("meta", {}).get("coralseg", {}).get("encoding")
        if not (source_encoding and target_encoding):
            raise CoralsegError(
                f"{checkpoint_path} has other shapes for {', '.join(reshaped[:3])} and no "
                "taxonomy metadata to map its classes with"
            )
        parent_rows = parent_rows_for(
            MaskEncoding.from_dict(source_encoding), MaskEncoding.from_dict(target_encoding)
        )
        for key in reshaped:
            if not key.startswith("decode_head.conv_seg."):
                raise CoralsegError(
                    f"{checkpoint_path}: {key} has shape {tuple(source_state[key].shape)}, "
                    f"the model {tuple(target_state[key].shape)}; only the classifier may differ"
                )
            rows = target_state[key].clone()
            for target_row, source_row in enumerate(parent_rows):
                if source_row >= 0:
                    rows[target_row] = source_state[key][source_row]
            new_state[key] = rows
    missing = set(target_state) - set(new_state)
    model.load_state_dict({**target_state, **new_state}, strict=True)
    summary = f"{copied} tensors copied"
    if parent_rows is not None:
        mapped = sum(r >= 0 for r in parent_rows)
        summary += f"; classifier rows initialised from parent classes: {mapped}/{len(parent_rows)}"
    if missing:
        summary += f"; {len(missing)} tensors not in the checkpoint kept their initialisation"
    return summary


def parent_rows_for(source: MaskEncoding, target: MaskEncoding) -> list[int]:
    """For each target label value, the source label value of its parent class, or -1."""
    rows = []
    for name in target.label_names:
        if name == BACKGROUND_NAME:
            rows.append(0 if not source.background_is_ignore else -1)
            continue
        parent = source.taxonomy.resolve(name)
        rows.append(source.value_of(parent) if parent is not None else -1)
    return rows
