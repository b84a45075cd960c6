"""Training hooks registered in MMSeg's registry."""

from __future__ import annotations

from typing import Any

import numpy as np
import torch
from mmengine.hooks import Hook
from mmengine.logging.history_buffer import HistoryBuffer
from mmseg.registry import HOOKS

from coral_core import __version__
from coral_core.inference.scaling import inference_resize_from_config

META_KEY = "coralseg"
_BUFFER_TAG = "__history_buffer__"


@HOOKS.register_module()
class CoralsegCheckpointMetaHook(Hook):
    """Makes checkpoints self-describing and loadable with ``torch.load(weights_only=True)``.

    * ``meta['coralseg']['encoding']``: the mask encoding (taxonomy, colours, background
      convention), so inference needs no separate class file;
    * ``meta['coralseg']['inference_resize']``: the test pipeline's resize (None: native
      resolution) and ``long_side``: ``coralseg prepare --size`` of the training photos
      (None: kept), which inference applies the same way;
    * every value is a plain type: config dicts become dicts, and the message hub's
      ``HistoryBuffer`` objects become tagged dicts of tensors, turned back into buffers when
      MMEngine resumes (``after_load_checkpoint`` runs before it restores the hub).
    """

    priority = "LOW"

    def before_save_checkpoint(self, runner, checkpoint: dict) -> None:
        meta = checkpoint.setdefault("meta", {})
        encoding = runner.cfg.get("coralseg_encoding")
        resize = inference_resize_from_config(runner.cfg)
        meta[META_KEY] = {
            "version": __version__,
            "encoding": _plain(encoding),
            "inference_resize": resize.to_dict() if resize else None,
            "long_side": runner.cfg.get("coralseg_long_side"),
        }
        for key in list(meta):
            meta[key] = _plain(meta[key])
        if "message_hub" in checkpoint:
            checkpoint["message_hub"] = _plain(checkpoint["message_hub"])

    def after_load_checkpoint(self, runner, checkpoint: dict) -> None:
        hub = checkpoint.get("message_hub")
        if isinstance(hub, dict) and isinstance(hub.get("log_scalars"), dict):
            hub["log_scalars"] = {
                key: _history_buffer(value) if _is_tagged_buffer(value) else value
                for key, value in hub["log_scalars"].items()
            }


def _plain(value: Any) -> Any:
    """Plain dicts, lists, tuples, numbers, strings and tensors only."""
    if isinstance(value, HistoryBuffer):
        logs, counts = value.data
        return {
            _BUFFER_TAG: True,
            "log_history": torch.from_numpy(np.asarray(logs, dtype=np.float64)),
            "count_history": torch.from_numpy(np.asarray(counts, dtype=np.float64)),
            "max_length": value.max_length,
        }
    if isinstance(value, dict):
        return {key: _plain(item) for key, item in value.items()}
    if isinstance(value, tuple):
        return tuple(_plain(item) for item in value)
    if isinstance(value, list):
        return [_plain(item) for item in value]
    if isinstance(value, np.generic):
        return value.item()
    if isinstance(value, np.ndarray):
        return torch.from_numpy(value)
    return value


def _is_tagged_buffer(value: Any) -> bool:
    return isinstance(value, dict) and value.get(_BUFFER_TAG) is True


def _history_buffer(value: dict) -> HistoryBuffer:
    return HistoryBuffer(
        value["log_history"].numpy(), value["count_history"].numpy(), value["max_length"]
    )
