"""Model files for the operators: checked cheaply for forms, loaded once per process.

An operator form shows :func:`check_model_files`'s sentence under the field while the user
types; :func:`semantic_model` and :func:`two_stage_predictor` keep the last loaded model, so
running an operator twice on one model (or evaluate after predict) loads it once.
"""

from __future__ import annotations

import functools
from pathlib import Path

from coral_core.config_files import read_config
from coral_core.errors import CoralsegError
from coral_core.labels.taxonomy import MaskEncoding


def resolve_file(path: str | None, what: str, suffixes: tuple[str, ...] = ()) -> Path:
    """``path`` as an existing file, else a :class:`CoralsegError` naming ``what``."""
    if not path or not str(path).strip():
        raise CoralsegError(f"give the {what}")
    resolved = Path(str(path).strip()).expanduser()
    if not resolved.is_file():
        raise CoralsegError(f"the {what} {resolved} does not exist")
    if suffixes and resolved.suffix not in suffixes:
        raise CoralsegError(f"the {what} {resolved} is not a {' or '.join(suffixes)} file")
    return resolved.resolve()


def check_config(config: str | None) -> Path:
    """An MMSeg config file that parses (``configs/*.py``)."""
    path = resolve_file(config, "config", (".py",))
    _parsed_config(str(path), path.stat().st_mtime_ns)
    return path


@functools.lru_cache(maxsize=8)
def _parsed_config(path: str, mtime: int) -> None:
    cfg = read_config(path)
    if "model" not in cfg or "decode_head" not in cfg.model:
        raise CoralsegError(f"config {path} defines no segmentation model (model.decode_head)")


def check_model_files(config: str | None, checkpoint: str | None) -> MaskEncoding:
    """Check that ``checkpoint`` loads into ``config``'s model; returns its mask encoding.

    Builds the model once per (config, checkpoint, modification times); later calls are free.

    Raises:
        CoralsegError: a missing file, a config that does not build, or a checkpoint whose
            weights do not fit the config's model.
    """
    config_path = check_config(config)
    checkpoint_path = resolve_file(checkpoint, "checkpoint", (".pth", ".pt"))
    model = _semantic(
        str(config_path),
        config_path.stat().st_mtime_ns,
        str(checkpoint_path),
        checkpoint_path.stat().st_mtime_ns,
        "cpu",
    )
    return model.encoding


def semantic_model(config: str | Path, checkpoint: str | Path, device: str = "cpu"):
    """The :class:`coral_core.inference.semantic.SemanticModel` of a config and checkpoint."""
    config_path = check_config(str(config))
    checkpoint_path = resolve_file(str(checkpoint), "checkpoint", (".pth", ".pt"))
    return _semantic(
        str(config_path),
        config_path.stat().st_mtime_ns,
        str(checkpoint_path),
        checkpoint_path.stat().st_mtime_ns,
        device,
    )


@functools.lru_cache(maxsize=2)
def _semantic(config: str, config_mtime: int, checkpoint: str, checkpoint_mtime: int, device: str):
    from coral_core.inference.semantic import load_semantic_model

    return load_semantic_model(config, checkpoint, device=device)


def two_stage_predictor(
    config: str | Path,
    checkpoint: str | Path,
    sam_checkpoint: str | Path | None = None,
    device: str = "cpu",
    settings=None,
):
    """A :class:`coral_core.inference.pipeline.TwoStagePredictor` (SAM optional), with the
    defaults ``coralseg infer`` has, so both give the same colonies."""
    from coral_core.inference.pipeline import TwoStagePredictor

    semantic = semantic_model(config, checkpoint, device)
    sam = None
    if sam_checkpoint:
        sam_path = resolve_file(str(sam_checkpoint), "SAM checkpoint", (".pth", ".pt"))
        sam = _sam(str(sam_path), sam_path.stat().st_mtime_ns, device, settings)
    return TwoStagePredictor.from_models(semantic, sam, settings)


@functools.lru_cache(maxsize=1)
def _sam(path: str, mtime: int, device: str, settings):
    from coral_core.inference.instances import RefineSettings
    from coral_core.inference.sam_models import load_sam_runner

    return load_sam_runner(path, device, (settings or RefineSettings()).prompts_per_batch)
