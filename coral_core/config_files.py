"""MMSeg/MMEngine config files, read in one place for training, evaluation and inference.

A config is a Python file; MMEngine runs it, so it can fail in any way a Python file can.
:func:`read_config` turns those failures into one sentence. The commonest after an upgrade:
a config of the user's own that imports a ``coral_core`` module by the name it had before
``coral_core`` was grouped into packages (``import coral_core.mmseg_config as coral``).
:data:`MOVED_MODULES` is the one list of those old names; the file is read for them before it
runs (MMEngine imports a config's modules lazily, so a missing one would only fail later, as
an empty RuntimeError), and the sentence names the new place.
"""

from __future__ import annotations

import ast
from pathlib import Path
from typing import TYPE_CHECKING

from coral_core.errors import CoralsegError

if TYPE_CHECKING:
    from mmengine.config import Config

# Old module name -> its place since coral_core was grouped by concern (CHANGELOG.md).
MOVED_MODULES: dict[str, str] = {
    "coral_core.raster_io": "coral_core.formats.raster_io",
    "coral_core.rle": "coral_core.formats.rle",
    "coral_core.polygons": "coral_core.formats.polygons",
    "coral_core.coco": "coral_core.formats.coco",
    "coral_core.cvat_shapes": "coral_core.formats.cvat_shapes",
    "coral_core.cvat_polylines": "coral_core.formats.cvat_polylines",
    "coral_core.dataset_manifest": "coral_core.formats.dataset_manifest",
    "coral_core.tagged_json": "coral_core.formats.tagged_json",
    "coral_core.annotation_formats": "coral_core.formats.annotations",
    "coral_core.taxonomy": "coral_core.labels.taxonomy",
    "coral_core.palette": "coral_core.labels.palette",
    "coral_core.rasterize": "coral_core.labels.rasterize",
    "coral_core.point_labels": "coral_core.labels.point_labels",
    "coral_core.densify": "coral_core.labels.densify",
    "coral_core.superpixels": "coral_core.labels.superpixels",
    "coral_core.training_progress": "coral_core.training.progress",
    "coral_core.mmseg_config": "coral_core.training.mmseg_config",
    "coral_core.mmseg_export": "coral_core.training.mmseg_export",
    "coral_core.splits": "coral_core.training.splits",
    "coral_core.metrics": "coral_core.evaluation.metrics",
    "coral_core.colony_metrics": "coral_core.evaluation.colony_metrics",
    "coral_core.confusion_plot": "coral_core.evaluation.confusion_plot",
    "coral_core.uncertainty": "coral_core.evaluation.uncertainty",
    "coral_core.sam_models": "coral_core.inference.sam_models",
    "coral_core.sam_upscaling": "coral_core.inference.sam_upscaling",
    "coral_core.overlay": "coral_core.inference.overlay",
    "coral_core.cpu_math": "coral_core.inference.cpu_math",
}


def read_config(path: str | Path) -> Config:
    """The MMEngine config in the Python file ``path``.

    Raises:
        CoralsegError: the file is missing, imports a ``coral_core`` module by its former
            name (the sentence names the new one), or running it fails (the reason in one
            sentence).
    """
    from mmengine.config import Config

    path = Path(path)
    if not path.is_file():
        raise CoralsegError(f"config {path} does not exist (the ones shipped are in configs/)")
    moved = moved_imports(path.read_text(encoding="utf-8", errors="replace"))
    if moved:
        old, new = moved[0]
        raise CoralsegError(
            f"config {path} imports {old!r}, which is now {new!r} (coral_core was grouped "
            "into packages; see CHANGELOG.md): change that import in the config"
        )
    try:
        return Config.fromfile(str(path))
    except Exception as err:  # MMEngine raises anything a Python file can
        text = " ".join(str(err).split()) or type(err).__name__
        raise CoralsegError(f"config {path} does not load: {text}") from None


def moved_imports(source: str) -> list[tuple[str, str]]:
    """``(old name, new name)`` of each module the Python ``source`` imports by a former
    ``coral_core`` name (:data:`MOVED_MODULES`); [] for source that
    does not parse (running it reports that)."""
    try:
        tree = ast.parse(source)
    except SyntaxError:
        return []
    found: list[tuple[str, str]] = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            candidates = [[alias.name] for alias in node.names]
        elif isinstance(node, ast.ImportFrom) and node.module and not node.level:
            # the module itself, else a module imported from its package
            candidates = [[node.module, *(f"{node.module}.{a.name}" for a in node.names)]]
        else:
            continue
        for names in candidates:
            moved = next(((n, _new_name(n)) for n in names if _new_name(n)), None)
            if moved is not None:
                found.append(moved)
    return found


def _new_name(name: str) -> str | None:
    """Where the module ``name`` is now, if it (or its package) moved; else None."""
    for old, new in MOVED_MODULES.items():
        if name == old or name.startswith(old + "."):
            return new + name[len(old) :]
    return None
