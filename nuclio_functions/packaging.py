"""``nuclio.zip``: a function folder that ``nuctl deploy --path`` builds, made from a trained
model. The logic behind ``coralseg package-nuclio``.

:func:`plan_package` checks everything first (function kind and name, files, the config
builds, the weights fit it strictly, the SAM checkpoint's kind, the label spec against CVAT's
rules); :func:`write_package` then exports the semantic model to ONNX and writes the zip
atomically. The zip holds, at its root:

* ``function.yaml`` and ``function-gpu.yaml`` with the function's name and the label spec of
  the checkpoint's taxonomy, ``main.py`` (the kind's handler);
* ``nuclio_functions/`` (the shared serving code) and exactly the ``coral_core`` modules
  those import at module level, found by reading their import statements;
* ``best_segformer.onnx`` + ``best_segformer.onnx.json`` (the semantic model for
  onnxruntime), ``best_segformer_config.py`` (the flattened training config, for the record)
  and, for the two-stage kind, ``vit_b_coralscop.pth``;
* ``coralseg_package.json``: what was packaged from which files.
"""

from __future__ import annotations

import ast
import hashlib
import json
import re
import tempfile
import time
import zipfile
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

from coral_core import __version__
from coral_core.atomic import atomic_path
from coral_core.errors import CoralsegError
from nuclio_functions import SAM_WEIGHTS, SEMANTIC_CONFIG, SEMANTIC_ONNX

PACKAGE_ROOT = Path(__file__).resolve().parent
REPO_ROOT = PACKAGE_ROOT.parent
FUNCTION_FILES = ("function.yaml", "function-gpu.yaml")
# DNS-1123 label: Nuclio names containers and Kubernetes objects after the function.
_NAME = re.compile(r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?$")
_LABEL_TYPES = ("any", "mask", "polygon", "rectangle", "ellipse", "points", "polyline", "tag")
_ATTRIBUTE_TYPES = ("checkbox", "radio", "number", "text", "select")


@dataclass(frozen=True)
class FunctionKind:
    """A served model kind: its folder in ``nuclio_functions`` and what it needs."""

    name: str
    folder: str
    needs_sam: bool
    default_name: str
    display_name: str
    # modules imported inside functions on this kind's path (see serving.load_predictor)
    lazy_modules: tuple[str, ...]


KINDS: dict[str, FunctionKind] = {
    kind.name: kind
    for kind in (
        FunctionKind(
            "two-stage",
            "two_stage",
            True,
            "pth-mmseg-coralscopsegformer",
            "coralseg SegFormer + CoralSCoP",
            ("nuclio_functions.onnx_semantic", "coral_core.inference.sam_models"),
        ),
        FunctionKind(
            "semantic",
            "semantic",
            False,
            "pth-mmseg-segformer",
            "coralseg SegFormer",
            ("nuclio_functions.onnx_semantic",),
        ),
    )
}


def check_label_spec(spec: Any) -> None:
    """Raise unless CVAT's lambda manager accepts ``spec`` (``metadata.annotations.spec``).

    From ``cvat/apps/lambda_manager/views.py`` (``LambdaFunction.__init__``): a list of labels,
    each with a ``name`` (unique: CVAT skips a function with duplicate labels) and optionally
    a ``type`` and ``attributes`` (each with ``name`` unique within its label,
    ``input_type`` and ``values``). Ids, which CVAT ignores here, must be distinct integers
    for cvat-sdk's auto-annotation functions.
    """
    if not isinstance(spec, list) or not spec:
        raise CoralsegError("the label spec must be a non-empty list of labels")
    names, ids = [], []
    for label in spec:
        if not isinstance(label, dict) or not isinstance(label.get("name"), str):
            raise CoralsegError(f"every label needs a name, got {label!r}")
        if not label["name"].strip():
            raise CoralsegError("a label has an empty name")
        names.append(label["name"])
        if "id" in label:
            if isinstance(label["id"], bool) or not isinstance(label["id"], int):
                raise CoralsegError(f"label {label['name']!r} has a non-integer id")
            ids.append(label["id"])
        if label.get("type", "any") not in _LABEL_TYPES:
            raise CoralsegError(f"label {label['name']!r} has unknown type {label['type']!r}")
        attributes = label.get("attributes", [])
        attribute_names = []
        for attribute in attributes:
            missing = [k for k in ("name", "input_type", "values") if k not in attribute]
            if missing:
                raise CoralsegError(
                    f"an attribute of label {label['name']!r} lacks {', '.join(missing)}"
                )
            if attribute["input_type"] not in _ATTRIBUTE_TYPES:
                raise CoralsegError(
                    f"attribute {attribute['name']!r} has unknown type {attribute['input_type']!r}"
                )
            attribute_names.append(attribute["name"])
        if len(set(attribute_names)) != len(attribute_names):
            raise CoralsegError(
                f"label {label['name']!r} has duplicate attribute names; CVAT would skip the "
                "function"
            )
    duplicates = sorted({n for n in names if names.count(n) > 1})
    if duplicates:
        raise CoralsegError(
            f"duplicate label names {', '.join(duplicates)}; CVAT would skip the function"
        )
    if len(set(ids)) != len(ids):
        raise CoralsegError("label ids must be distinct")


def check_function_name(name: str) -> None:
    if not _NAME.match(name) or len(name) > 63:
        raise CoralsegError(
            f"function name {name!r} must be lowercase letters, digits and '-', start and end "
            "with a letter or digit, at most 63 characters (e.g. pth-mmseg-coralscopsegformer)"
        )


class _LiteralDumper(yaml.SafeDumper):
    """Multi-line strings as ``|`` blocks, so the label spec stays readable in the yaml."""


def _represent_str(dumper: yaml.SafeDumper, value: str) -> yaml.ScalarNode:
    style = "|" if "\n" in value else None
    return dumper.represent_scalar("tag:yaml.org,2002:str", value, style=style)


_LiteralDumper.add_representer(str, _represent_str)


def render_function_yaml(
    template: str, name: str, display_name: str, spec: Sequence[dict[str, Any]]
) -> str:
    """A function.yaml template with the function's name, display name and label spec."""
    document = yaml.safe_load(template)
    document["metadata"]["name"] = name
    annotations = document["metadata"]["annotations"]
    annotations["name"] = display_name
    annotations["spec"] = spec_text(spec)
    return yaml.dump(document, Dumper=_LiteralDumper, sort_keys=False, width=100)


def spec_text(spec: Sequence[dict[str, Any]]) -> str:
    """The label spec as CVAT's function.yaml files write it: one JSON label per line."""
    lines = ",\n".join("  " + json.dumps(label) for label in spec)
    return f"[\n{lines}\n]\n"


def module_file(module: str, roots: Sequence[Path] = (REPO_ROOT,)) -> Path | None:
    """The source file of a dotted module name under ``roots`` (None: not found there)."""
    parts = module.split(".")
    for root in roots:
        package = root.joinpath(*parts) / "__init__.py"
        if package.is_file():
            return package
        plain = root.joinpath(*parts[:-1], parts[-1] + ".py")
        if plain.is_file():
            return plain
    return None


def module_level_imports(path: Path, module: str) -> set[str]:
    """Dotted names a module imports outside its functions and classes (relative resolved)."""
    tree = ast.parse(path.read_text(encoding="utf-8"), filename=str(path))
    package = module if path.name == "__init__.py" else module.rpartition(".")[0]
    found: set[str] = set()

    def visit(nodes: Iterable[ast.stmt]) -> None:
        for node in nodes:
            if isinstance(node, ast.Import):
                found.update(alias.name for alias in node.names)
            elif isinstance(node, ast.ImportFrom):
                base = node.module or ""
                if node.level:
                    anchor = package.split(".")[: len(package.split(".")) - node.level + 1]
                    base = ".".join([*anchor, base] if base else anchor)
                found.add(base)
                found.update(f"{base}.{alias.name}" for alias in node.names)
            elif isinstance(node, ast.If | ast.Try | ast.With):
                for block in ("body", "orelse", "finalbody", "handlers"):
                    for child in getattr(node, block, []):
                        visit(child.body if isinstance(child, ast.ExceptHandler) else [child])

    visit(tree.body)
    return found


def local_closure(
    entries: Iterable[str], prefixes: Sequence[str], roots: Sequence[Path] = (REPO_ROOT,)
) -> dict[str, Path]:
    """Modules under ``prefixes`` reachable from ``entries`` by module-level imports, with
    every enclosing package's ``__init__.py``: ``{dotted name: source file}``."""
    found: dict[str, Path] = {}
    pending = list(entries)
    while pending:
        name = pending.pop()
        if name in found or not name.startswith(tuple(prefixes)):
            continue
        path = module_file(name, roots)
        if path is None:
            continue  # a name imported from a module (a function or class), not a module
        found[name] = path
        parents = [".".join(name.split(".")[:i]) for i in range(1, name.count(".") + 1)]
        pending.extend(parents)
        pending.extend(module_level_imports(path, name))
    return found


@dataclass(frozen=True)
class PackagePlan:
    """Everything :func:`write_package` needs, already checked."""

    kind: FunctionKind
    name: str
    display_name: str
    config: Path
    weights: Path
    sam_checkpoint: Path | None
    spec: tuple[dict[str, Any], ...]
    sam_kind: str | None
    semantic: Any  # the loaded SemanticModel, exported to ONNX when writing


def plan_package(
    kind: str,
    config: str | Path,
    weights: str | Path,
    sam_checkpoint: str | Path | None = None,
    name: str | None = None,
    display_name: str | None = None,
) -> PackagePlan:
    """Check every input of a package; nothing is written.

    Raises:
        CoralsegError: with a sentence naming the first problem found.
    """
    if kind not in KINDS:
        raise CoralsegError(f"unknown function kind {kind!r}; use one of {', '.join(KINDS)}")
    function = KINDS[kind]
    name = name or function.default_name
    check_function_name(name)
    config, weights = Path(config).expanduser(), Path(weights).expanduser()
    for label, path in (("config", config), ("weights", weights)):
        if not path.is_file():
            raise CoralsegError(f"the SegFormer {label} {path} does not exist")
    sam_path = None
    if function.needs_sam:
        if not sam_checkpoint:
            raise CoralsegError(
                "the two-stage function needs --sam-checkpoint (vit_b_coralscop.pth or "
                "sam_vit_b_01ec64.pth); use --kind semantic for a function without SAM"
            )
        sam_path = Path(sam_checkpoint).expanduser()
        if not sam_path.is_file():
            raise CoralsegError(f"the SAM checkpoint {sam_path} does not exist")
    elif sam_checkpoint:
        raise CoralsegError(
            "the semantic function runs no SAM; drop --sam-checkpoint or use --kind two-stage"
        )

    from coral_core.formats.cvat_shapes import label_spec
    from coral_core.inference.semantic import load_semantic_model

    semantic = load_semantic_model(config, weights, device="cpu")  # builds + strict load
    sam_kind = None
    if sam_path is not None:
        from coral_core.inference.sam_models import load_sam

        _, sam_spec = load_sam(sam_path)  # layout recognised + strict load
        sam_kind = f"{sam_spec.variant} {sam_spec.size}"
    spec = tuple(label_spec(semantic.encoding))
    check_label_spec(list(spec))
    return PackagePlan(
        kind=function,
        name=name,
        display_name=display_name or function.display_name,
        config=config,
        weights=weights,
        sam_checkpoint=sam_path,
        spec=spec,
        sam_kind=sam_kind,
        semantic=semantic,
    )


def code_files(kind: FunctionKind) -> dict[str, Path]:
    """``{path in the zip: source}`` of the function's code: main.py, nuclio_functions and
    the coral_core modules they import."""
    folder = PACKAGE_ROOT / kind.folder
    entries = ["nuclio_functions.serving", *kind.lazy_modules]
    entries += module_level_imports(folder / "main.py", "main")
    modules = local_closure(entries, ("coral_core", "nuclio_functions"))
    files = {"main.py": folder / "main.py"}
    for path in sorted(modules.values()):
        files[path.relative_to(REPO_ROOT).as_posix()] = path
    return files


def write_package(
    plan: PackagePlan, out: str | Path, progress: Callable[[str], None] = lambda _: None
) -> Path:
    """Export the semantic model and write the function zip at ``out`` (atomically)."""
    from mmengine.config import Config

    from coral_core.inference.onnx_export import export_onnx

    out = Path(out)
    with tempfile.TemporaryDirectory(prefix="coralseg-nuclio-") as scratch:
        staging = Path(scratch)
        progress("exporting the semantic model to ONNX")
        onnx_path, sidecar = export_onnx(plan.semantic, staging / SEMANTIC_ONNX)
        Config.fromfile(str(plan.config)).dump(str(staging / SEMANTIC_CONFIG))
        texts = {
            file: render_function_yaml(
                (PACKAGE_ROOT / plan.kind.folder / file).read_text(encoding="utf-8"),
                plan.name,
                plan.display_name,
                plan.spec,
            )
            for file in FUNCTION_FILES
        }
        files = {**code_files(plan.kind)}
        files[SEMANTIC_ONNX] = onnx_path
        files[sidecar.name] = sidecar
        files[SEMANTIC_CONFIG] = staging / SEMANTIC_CONFIG
        if plan.sam_checkpoint is not None:
            files[SAM_WEIGHTS] = plan.sam_checkpoint
        texts["coralseg_package.json"] = json.dumps(_manifest(plan, files), indent=2) + "\n"
        progress(f"writing {out}")
        with atomic_path(out) as temporary, zipfile.ZipFile(temporary, "w") as archive:
            for arcname, text in texts.items():
                entry = zipfile.ZipInfo(arcname, date_time=time.localtime()[:6])
                entry.external_attr = 0o644 << 16  # rw-r--r--, as the copied files
                archive.writestr(entry, text, compress_type=zipfile.ZIP_DEFLATED)
            for arcname, source in sorted(files.items()):
                compress = zipfile.ZIP_DEFLATED if source.suffix == ".py" else zipfile.ZIP_STORED
                archive.write(source, arcname, compress_type=compress)
    return out


def _manifest(plan: PackagePlan, files: dict[str, Path]) -> dict[str, Any]:
    return {
        "format": "coralseg-nuclio/1",
        "coralseg_version": __version__,
        "kind": plan.kind.name,
        "name": plan.name,
        "semantic_runtime": "onnxruntime",
        "sources": {
            "segformer_config": str(plan.config),
            "segformer_weights": str(plan.weights),
            "segformer_weights_sha256": _sha256(plan.weights),
            "sam_checkpoint": None if plan.sam_checkpoint is None else str(plan.sam_checkpoint),
            "sam_kind": plan.sam_kind,
        },
        "labels": [label["name"] for label in plan.spec],
        "files": sorted([*files, *FUNCTION_FILES]),
    }


def _sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as stream:
        for block in iter(lambda: stream.read(2**20), b""):
            digest.update(block)
    return digest.hexdigest()
