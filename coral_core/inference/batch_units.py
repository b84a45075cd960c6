"""One unit of a batch inference run (``coralseg infer``, the App's predict operator on a
cluster), as a worker does it: a photo, or a tile of a large image (an orthomosaic), and what
each leaves in the output folder. :mod:`coral_core.inference.batch_runner` plans and runs them.

A worker (:class:`UnitWorker`) holds one model copy and does units one after another, in
this process or on a cluster's node (:mod:`coral_core.cluster`); the output folder must be
the same folder for every worker (one machine, or a shared file system). Every file a unit
writes appears whole or not at all (:mod:`coral_core.atomic`), and each unit's last file
marks it done and records the version of the model that made it:

* a photo: ``semantic/``, ``semantic_raw/``, ``visualizations/``, ``masks/<image>/``, then
  its record ``instances/<image>.json``;
* a tile: ``tiles/<image>/r<row>_c<column>.npz`` (:mod:`coral_core.inference.tile_results`).
  Once all tiles of an image are done, :func:`assemble_large_image` merges them, in one place, into
  the image's tiled GeoTIFFs and its record, and removes the tiles.

An image record (``instances/<image>.json``) is the format of
:mod:`coral_core.inference.instance_records`, with the ``model_version`` that made it.
"""

from __future__ import annotations

import hashlib
import json
import shutil
from dataclasses import asdict, dataclass, field
from pathlib import Path

import cv2
import numpy as np

from coral_core.atomic import atomic_path
from coral_core.errors import CoralsegError
from coral_core.formats.label_rasters import LabelRasterWriter
from coral_core.formats.raster_io import ImageSource, open_image
from coral_core.inference.instance_records import InstanceRecord, write_instance_record
from coral_core.inference.instances import CoralInstance, RefineSettings
from coral_core.inference.overlay import render_overlay
from coral_core.inference.pipeline import DEFAULT_OVERLAP, TwoStagePredictor
from coral_core.inference.tile_results import (
    TileResult,
    read_tile_result,
    tile_result_path,
    write_tile_result,
)
from coral_core.inference.tiled import TileGrid, merge_tile_pieces, tile_pieces
from coral_core.labels.taxonomy import MaskEncoding

RECORDS = "instances"  # the folder of image records
_HASH_CHUNK = 2**22


@dataclass(frozen=True)
class PhotoUnit:
    """A photo, inferred whole. ``stem`` names its outputs; ``name`` is its path relative to
    the input folder, as messages show it."""

    path: Path
    stem: str
    name: str

    @property
    def label(self) -> str:
        return self.name


@dataclass(frozen=True)
class TileUnit:
    """Tile ``(row, column)`` of the ``tile``-pixel grid over a large image."""

    path: Path
    stem: str
    name: str
    row: int
    column: int
    tile: int

    @property
    def label(self) -> str:
        return f"{self.name} tile (row {self.row}, column {self.column})"


@dataclass(frozen=True)
class ModelSpec:
    """Where a model's files are and how to run it: what a worker needs to load its own copy.

    Attributes:
        config / checkpoint: the MMSeg config and its ``.pth``.
        sam_checkpoint: SAM or CoralSCoP weights (None: colonies are the semantic regions).
        device: ``cpu``, ``cuda`` or ``cuda:N`` (on a cluster, ``cuda`` is the worker's GPU).
        settings: the instance stage's thresholds.
        overlap: of the sliding windows (None: the config's stride; by default the one
            every path uses, :data:`coral_core.inference.pipeline.DEFAULT_OVERLAP`).
    """

    config: Path
    checkpoint: Path
    sam_checkpoint: Path | None = None
    device: str = "cpu"
    settings: RefineSettings = field(default_factory=RefineSettings)
    overlap: float | None = DEFAULT_OVERLAP

    def __post_init__(self) -> None:
        if self.overlap is not None:  # refused here, before a worker or a file is made
            from coral_core.inference.semantic import check_overlap

            check_overlap(self.overlap)

    def load(self, threads: int | None = None) -> TwoStagePredictor:
        """The predictor; ``threads``: torch's CPU threads in this process (None: as is)."""
        if threads is not None:
            import torch

            torch.set_num_threads(threads)
        return TwoStagePredictor.from_files(
            self.config,
            self.checkpoint,
            sam_checkpoint=self.sam_checkpoint,
            device=self.device,
            settings=self.settings,
            overlap=self.overlap,
        )

    def encoding(self) -> MaskEncoding:
        """The model's mask encoding, read from its files without building the network.

        Raises:
            CoralsegError: a file is missing or unreadable.
        """
        from coral_core.checkpoint import load_checkpoint_file
        from coral_core.config_files import read_config
        from coral_core.inference.semantic import encoding_from_checkpoint

        config = read_config(self.config)
        if self.sam_checkpoint is not None and not Path(self.sam_checkpoint).is_file():
            raise CoralsegError(f"SAM checkpoint {self.sam_checkpoint} does not exist")
        state = load_checkpoint_file(self.checkpoint)
        return encoding_from_checkpoint(state, config)

    def version(self) -> str:
        """A fingerprint of everything that decides the outputs: the files' contents, the
        thresholds and the overlap (not the device)."""
        digest = hashlib.sha256()
        files = [self.config, self.checkpoint, self.sam_checkpoint]
        for path in files:
            digest.update(b"\0" if path is None else _file_digest(Path(path)))
        digest.update(json.dumps([asdict(self.settings), self.overlap]).encode())
        return digest.hexdigest()[:16]


def _file_digest(path: Path) -> bytes:
    digest = hashlib.sha256()
    with path.open("rb") as source:
        while chunk := source.read(_HASH_CHUNK):
            digest.update(chunk)
    return digest.digest()


def predictor_version(predictor: TwoStagePredictor) -> str:
    """A fingerprint of a loaded predictor: its weights, windows and thresholds."""
    import torch

    digest = hashlib.sha256()
    networks = [predictor.semantic.network]
    if predictor.sam is not None:
        networks.append(predictor.sam.model)
    for network in networks:
        for name, tensor in network.state_dict().items():
            digest.update(name.encode())
            flat = tensor.detach().cpu().contiguous().reshape(-1)
            digest.update(flat.view(torch.uint8).numpy().tobytes())
    semantic = predictor.semantic
    described = [asdict(predictor.settings), semantic.window, semantic.stride]
    digest.update(json.dumps([*described, str(semantic.resize), semantic.long_side]).encode())
    return digest.hexdigest()[:16]


class UnitWorker:
    """Does units with one predictor, writing their outputs under ``output_dir``.

    Calling it with a unit returns the number of colonies (a photo) or colony pieces (a
    tile) it found; an unreadable image raises :class:`CoralsegError`.
    """

    def __init__(self, predictor: TwoStagePredictor, output_dir: Path, model_version: str):
        self.predictor = predictor
        self.output_dir = Path(output_dir)
        self.model_version = model_version
        self._source: ImageSource | None = None  # the large image of the last tile

    @classmethod
    def from_spec(
        cls, spec: ModelSpec, output_dir: Path, model_version: str, threads: int | None = None
    ) -> UnitWorker:
        """A worker with its own model copy (what each cluster worker calls once)."""
        return cls(spec.load(threads), output_dir, model_version)

    def __call__(self, unit: PhotoUnit | TileUnit) -> int:
        if isinstance(unit, TileUnit):
            return self._tile(unit)
        return self._photo(unit)

    def _photo(self, unit: PhotoUnit) -> int:
        with open_image(unit.path) as source:
            image = source.read()
        result = self.predictor(image)
        instances = result.instances.instances
        out = self.output_dir
        _write_image(out / "semantic" / f"{unit.stem}.png", result.instances.semantic)
        _write_image(out / "semantic_raw" / f"{unit.stem}.png", result.semantic_raw)
        overlay = render_overlay(
            image, result.instances.semantic, self.predictor.encoding, instances
        )
        _write_image(
            out / "visualizations" / f"{unit.stem}.jpg",
            cv2.cvtColor(overlay, cv2.COLOR_RGB2BGR),
            [cv2.IMWRITE_JPEG_QUALITY, 90],
        )
        mask_dir = out / "masks" / unit.stem
        mask_dir.mkdir(parents=True, exist_ok=True)
        for old in mask_dir.glob("instance_*.png"):
            old.unlink()
        height, width = image.shape[:2]
        for index, instance in enumerate(instances, start=1):
            mask = instance.full_mask(height, width).astype(np.uint8) * 255
            _write_image(mask_dir / f"instance_{index:03d}.png", mask)
        # written last: its presence marks the photo as done
        self._write_record(unit.stem, unit.path, width, height, instances)
        return len(instances)

    def _tile(self, unit: TileUnit) -> int:
        if self._source is None or self._source.path != Path(unit.path):
            if self._source is not None:
                self._source.close()
                self._source = None
            self._source = open_image(unit.path)
        source = self._source
        grid = self.predictor.tile_grid(source.height, source.width, unit.tile)
        if not (0 <= unit.row < grid.rows and 0 <= unit.column < grid.columns):
            raise CoralsegError(f"{unit.label} is outside its {grid.rows}x{grid.columns} tiles")
        result = self.predictor.refine_tile(source, grid, unit.row, unit.column)
        x0, y0, x1, y1 = core = grid.core(unit.row, unit.column)
        region = grid.region(unit.row, unit.column)
        inside = (slice(y0 - region[1], y1 - region[1]), slice(x0 - region[0], x1 - region[0]))
        pieces = tile_pieces(grid, unit.row, unit.column, result)
        tile = TileResult(
            self.model_version,
            core,
            result.semantic_raw[inside],
            result.instances.semantic[inside],
            pieces,
        )
        write_tile_result(tile_result_path(self.output_dir, unit.stem, unit.row, unit.column), tile)
        return len(pieces)

    def _write_record(self, stem, path, width, height, instances, tiled=False) -> None:
        write_image_record(
            self.output_dir, stem, str(path), width, height, instances, self.model_version, tiled
        )


def _write_image(path: Path, array: np.ndarray, params: list[int] | None = None) -> None:
    """Encode ``array`` as the format of ``path``'s suffix and write it atomically."""
    ok, encoded = cv2.imencode(path.suffix, array, params or [])
    if not ok:
        raise CoralsegError(f"could not encode {path.name}")
    with atomic_path(path) as temporary:
        temporary.write_bytes(encoded.tobytes())


def tile_count(height: int, width: int, tile: int) -> tuple[int, int]:
    """``(rows, columns)`` of the tile grid over a ``height x width`` image."""
    return -(-height // tile), -(-width // tile)


def assemble_large_image(
    output_dir: Path,
    unit: TileUnit,
    encoding: MaskEncoding,
    model_version: str,
) -> int:
    """Merge the done tiles of ``unit.path`` (any of its tile units) into its raw and refined
    semantic maps (tiled GeoTIFFs with the image's georeferencing) and its record, then
    remove the tiles. Colonies cut by tile borders are joined as in one process
    (:func:`coral_core.inference.tiled.merge_tile_pieces`). Returns the colony count.

    Raises:
        CoralsegError: the image or a tile's file is unreadable, or a tile was made by
            another model version.
    """
    with open_image(unit.path) as source:
        height, width, geo = source.height, source.width, source.geo
    grid = TileGrid(height, width, unit.tile, margin=0)
    palette = dict(enumerate(encoding.palette))
    with (
        LabelRasterWriter(
            output_dir / "semantic_raw" / f"{unit.stem}.tif", height, width, geo, palette
        ) as raw,
        LabelRasterWriter(
            output_dir / "semantic" / f"{unit.stem}.tif", height, width, geo, palette
        ) as refined,
    ):

        def pieces_of(row: int, column: int):
            path = tile_result_path(output_dir, unit.stem, row, column)
            tile = read_tile_result(path)
            if tile.model_version != model_version:
                raise CoralsegError(
                    f"tile result {path} was made by model version {tile.model_version}, "
                    f"not {model_version}; redo it",
                    settings=("redo",),
                )
            if tile.core != grid.core(row, column):
                raise CoralsegError(
                    f"tile result {path} covers {tile.core}, not {grid.core(row, column)}; redo it",
                    settings=("redo",),
                )
            raw.write(tile.core, tile.semantic_raw)
            refined.write(tile.core, tile.semantic)
            return tile.pieces

        instances = list(merge_tile_pieces(grid, pieces_of))
    instances.sort(key=lambda instance: -instance.score)
    write_image_record(
        output_dir, unit.stem, str(unit.path), width, height, instances, model_version, True
    )
    shutil.rmtree(output_dir / "tiles" / unit.stem, ignore_errors=True)
    return len(instances)


def record_path(output_dir: Path, stem: str) -> Path:
    return output_dir / RECORDS / f"{stem}.json"


def write_image_record(
    output_dir: Path,
    stem: str,
    file_name: str,
    width: int,
    height: int,
    instances: list[CoralInstance],
    model_version: str,
    tiled: bool = False,
) -> None:
    """Write an image's record atomically (:mod:`coral_core.inference.instance_records`)."""
    record = InstanceRecord(file_name, width, height, tuple(instances), tiled, model_version)
    write_instance_record(record_path(output_dir, stem), record)
