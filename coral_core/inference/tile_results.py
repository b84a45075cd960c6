"""The file one tile of a large image leaves behind: ``tiles/<image>/r<row>_c<column>.npz``.

A batch run (:mod:`coral_core.inference.batch_runner`) refines an orthomosaic tile by tile,
each tile a unit of work that may run on any worker of a cluster; the tile's file holds what
the merge needs from it, so the merge (:func:`coral_core.inference.tiled.merge_tile_pieces`)
gives the same colonies as when the tiles are refined in one process. A compressed NumPy
``.npz`` (no pickles) with:

* ``meta``: a JSON string: ``format`` (:data:`FORMAT`), ``model_version``, ``core``
  (``[x0, y0, x1, y1]`` in image pixels) and ``pieces`` (``value``, ``label``, ``score``,
  ``box``, the box ``[x0, y0, x1, y1]`` in image pixels);
* ``semantic_raw`` / ``semantic``: ``(y1 - y0, x1 - x0)`` uint8, the core of the raw and
  refined semantic maps;
* ``masks``: the pieces' masks, each flattened row by row inside its box, concatenated and
  bit-packed (``numpy.packbits``).

Written atomically: the file exists whole or not at all, so its presence marks the tile done.
"""

from __future__ import annotations

import json
import zipfile
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from coral_core.atomic import atomic_path
from coral_core.errors import CoralsegError
from coral_core.inference.tiled import Piece, Window

FORMAT = "coralseg-tile-result/1"
_DAMAGED = (OSError, ValueError, EOFError, zipfile.BadZipFile)  # what a cut or bad file raises


@dataclass(frozen=True)
class TileResult:
    """One tile's share of a large image's inference.

    Attributes:
        model_version: the version of the model that made it.
        core: the tile's core ``(x0, y0, x1, y1)`` in image pixels.
        semantic_raw / semantic: ``(y1 - y0, x1 - x0)`` uint8 class values of the core.
        pieces: the colonies clipped to the core (:func:`coral_core.inference.tiled.tile_pieces`).
    """

    model_version: str
    core: Window
    semantic_raw: np.ndarray
    semantic: np.ndarray
    pieces: list[Piece]


def tile_result_path(output_dir: Path, stem: str, row: int, column: int) -> Path:
    return output_dir / "tiles" / stem / f"r{row:04d}_c{column:04d}.npz"


def write_tile_result(path: Path, result: TileResult) -> None:
    """Write ``result`` to ``path`` atomically."""
    meta = {
        "format": FORMAT,
        "model_version": result.model_version,
        "core": list(result.core),
        "pieces": [
            {"value": p.value, "label": p.label, "score": p.score, "box": list(p.box)}
            for p in result.pieces
        ],
    }
    bits = [p.mask.reshape(-1) for p in result.pieces]
    masks = np.packbits(np.concatenate(bits)) if bits else np.zeros(0, np.uint8)
    with atomic_path(path) as temporary, temporary.open("wb") as out:
        np.savez_compressed(
            out,
            meta=np.array(json.dumps(meta)),
            semantic_raw=np.ascontiguousarray(result.semantic_raw, dtype=np.uint8),
            semantic=np.ascontiguousarray(result.semantic, dtype=np.uint8),
            masks=masks,
        )


def read_tile_version(path: Path) -> str:
    """The model version recorded in a tile's file (its masks are not read)."""
    with _open(path) as data:
        return _meta(path, data)["model_version"]


def read_tile_result(path: Path) -> TileResult:
    """Read a tile's file.

    Raises:
        CoralsegError: the file is missing, of another format, or inconsistent.
    """
    with _open(path) as data:
        meta = _meta(path, data)
        try:
            raw, refined, bits = data["semantic_raw"], data["semantic"], data["masks"]
        except KeyError as err:
            raise _bad(path, f"it has no {err} array") from None
        except _DAMAGED as err:
            raise _bad(path, err) from None
    x0, y0, x1, y1 = core = tuple(int(v) for v in meta["core"])
    if raw.shape != (y1 - y0, x1 - x0) or refined.shape != raw.shape:
        raise _bad(path, f"its maps are {raw.shape} and {refined.shape}, its core {core}")
    sizes = [(b[3] - b[1]) * (b[2] - b[0]) for b in (item["box"] for item in meta["pieces"])]
    flat = np.unpackbits(bits, count=sum(sizes)).astype(bool) if sizes else bits[:0]
    if flat.size != sum(sizes):
        raise _bad(path, f"its masks hold {flat.size} pixels, its boxes {sum(sizes)}")
    pieces = []
    offset = 0
    for item, size in zip(meta["pieces"], sizes, strict=True):
        bx0, by0, bx1, by1 = box = tuple(int(v) for v in item["box"])
        mask = flat[offset : offset + size].reshape(by1 - by0, bx1 - bx0)
        offset += size
        pieces.append(Piece(int(item["value"]), item["label"], item["score"], box, mask))
    return TileResult(meta["model_version"], core, raw, refined, pieces)


def _open(path: Path):
    try:
        return np.load(path, allow_pickle=False)
    except FileNotFoundError:
        raise _bad(path, "it does not exist") from None
    except _DAMAGED as err:
        raise _bad(path, err) from None


def _meta(path: Path, data) -> dict:
    try:
        meta = json.loads(str(data["meta"]))
    except (KeyError, *_DAMAGED) as err:
        raise _bad(path, f"its meta is unreadable ({err})") from None
    if not isinstance(meta, dict) or meta.get("format") != FORMAT:
        raise _bad(path, f"it is not a {FORMAT} file")
    missing = {"model_version", "core", "pieces"} - meta.keys()
    if missing:
        raise _bad(path, f"its meta lacks {', '.join(sorted(missing))}")
    return meta


def _bad(path: Path, reason: object) -> CoralsegError:
    return CoralsegError(
        f"tile result {path} is unusable: {reason}; delete it (or redo it) so the "
        "tile is refined again",
        settings=("redo",),
    )
