"""Training hooks registered in MMSeg's registry."""

from __future__ import annotations

from mmengine.hooks import Hook
from mmseg.registry import HOOKS

from coral_core import __version__

META_KEY = "coralseg"


@HOOKS.register_module()
class CoralsegCheckpointMetaHook(Hook):
    """Writes the mask encoding (taxonomy + background convention) into checkpoint metadata.

    With it a checkpoint alone says which pixel value is which genus and colour, so inference
    needs no separate class file: ``checkpoint['meta']['coralseg']['encoding']``.
    """

    priority = "LOW"

    def before_save_checkpoint(self, runner, checkpoint: dict) -> None:
        encoding = runner.cfg.get("coralseg_encoding")
        meta = checkpoint.setdefault("meta", {})
        meta[META_KEY] = {"version": __version__, "encoding": _plain(encoding)}
        if "dataset_meta" in meta:
            meta["dataset_meta"] = _plain(meta["dataset_meta"])


def _plain(value):
    """Config values as plain dicts/lists, which torch's weights-only loader accepts."""
    if isinstance(value, dict):
        return {str(k): _plain(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return type(value)(_plain(v) for v in value) if isinstance(value, tuple) else [
            _plain(v) for v in value
        ]
    return value
