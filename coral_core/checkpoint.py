"""Reading model checkpoints with ``torch.load(weights_only=True)``, MMEngine's included.

Since torch 2.6, ``torch.load`` defaults to its weights-only unpickler, which refuses
MMEngine's training state (``HistoryBuffer`` objects holding numpy arrays, ``ConfigDict``).
Rather than falling back to full unpickling, which runs code from the file, coralseg allows
exactly those types while it reads a checkpoint (:func:`checkpoint_globals`), and installs
that rule for MMEngine's own loader of local files, used by ``resume`` and ``load_from``.
Checkpoints written by coralseg keep their metadata in plain types (see
``coral_core.models.hooks``), so the weights and the taxonomy load with torch's defaults alone.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import torch
from mmengine.config import ConfigDict
from mmengine.logging.history_buffer import HistoryBuffer
from mmengine.runner.checkpoint import CheckpointLoader

from coral_core.errors import CoralsegError

# numpy's pickles of arrays and dtypes reach their classes through getattr; the weights-only
# unpickler still calls nothing but these allowed globals.
_TRAINING_STATE_GLOBALS: list[Any] = [
    HistoryBuffer,
    ConfigDict,
    getattr,
    np.ndarray,
    np.dtype,
    np.dtypes.Float64DType,
    np.dtypes.Float32DType,
    np.dtypes.Int64DType,
    np.dtypes.Int32DType,
    np.core.multiarray._reconstruct,
    np.core.multiarray.scalar,
]


@contextlib.contextmanager
def checkpoint_globals() -> Iterator[None]:
    """Allow MMEngine's training-state types for ``torch.load(weights_only=True)``."""
    with torch.serialization.safe_globals(_TRAINING_STATE_GLOBALS):
        yield


def load_checkpoint_file(path: str | Path) -> dict[str, Any]:
    """Load a checkpoint on the CPU with ``weights_only=True``.

    Raises:
        CoralsegError: the file is missing or not a readable checkpoint.
    """
    path = Path(path).expanduser()
    if not path.is_file():
        raise CoralsegError(f"checkpoint {path} does not exist")
    try:
        with checkpoint_globals():
            checkpoint = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as err:  # zip, pickle and torch errors all mean an unusable file
        raise CoralsegError(f"cannot read checkpoint {path}: {err}") from None
    if not isinstance(checkpoint, dict):
        raise CoralsegError(f"checkpoint {path} does not hold a dictionary of weights")
    return checkpoint


def load_weights_strictly(
    network: torch.nn.Module, checkpoint: dict[str, Any], checkpoint_path: str | Path, config: str
) -> None:
    """Load a checkpoint's ``state_dict`` into a network, every key and shape matching.

    Raises:
        CoralsegError: the weights do not fit the network (another config, another number of
            classes); the sentence names the first mismatches.
    """
    weights = checkpoint.get("state_dict", checkpoint)
    try:
        network.load_state_dict(weights, strict=True)
    except RuntimeError as err:
        first = "; ".join(str(err).splitlines()[:3])
        raise CoralsegError(
            f"{checkpoint_path} does not fit config {config}: {first}. Use the config the "
            "checkpoint was trained with"
        ) from None


@CheckpointLoader.register_scheme(prefixes="", force=True)
def _load_local_checkpoint(filename: str, map_location: Any = None) -> dict[str, Any]:
    """MMEngine's loader for local paths, with the allowed types above (weights-only)."""
    path = Path(filename).expanduser()
    if not path.is_file():
        raise FileNotFoundError(f"{filename} can not be found.")
    with checkpoint_globals():
        return torch.load(path, map_location=map_location, weights_only=True)
