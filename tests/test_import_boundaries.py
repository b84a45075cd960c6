"""The architecture rule: coral_core imports no adapter framework; adapters never import each
other, the CLI, or another host's framework. Checked statically (every import statement, also
inside functions) and at run time (what importing every coral_core module actually loads)."""

from __future__ import annotations

import ast
import json
import subprocess
import sys
from pathlib import Path

import pytest

REPO_ROOT = Path(__file__).resolve().parents[1]
ADAPTERS = ("coralseg", "fiftyone_plugin", "cvat_bridge", "nuclio_functions")
FRAMEWORKS = (
    "fiftyone",
    "cvat_sdk",
    "nuclio_sdk",
    "fastapi",
    "starlette",
    "uvicorn",
    "huey",
    "redis",
)

# Layers: coral_core (library) <- adapters <- the coralseg CLI, which composes them. Adapters
# never import each other or the CLI; each imports only the frameworks of its own host.
FORBIDDEN: dict[str, tuple[str, ...]] = {
    "coral_core": FRAMEWORKS + ADAPTERS,
    "fiftyone_plugin": ("coralseg", "cvat_bridge", "nuclio_functions", "nuclio_sdk", "fastapi"),
    "cvat_bridge": ("coralseg", "fiftyone_plugin", "nuclio_functions", "fiftyone", "nuclio_sdk"),
    "nuclio_functions": ("coralseg", "fiftyone_plugin", "cvat_bridge", "fiftyone", "fastapi"),
}


def _imported_roots(path: Path) -> set[str]:
    tree = ast.parse(path.read_text(encoding="utf-8"), filename=str(path))
    roots: set[str] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            roots.update(alias.name.split(".")[0] for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            roots.add(node.module.split(".")[0])
        elif (
            isinstance(node, ast.Call)
            and isinstance(node.func, ast.Attribute | ast.Name)
            and getattr(node.func, "attr", getattr(node.func, "id", None)) == "import_module"
            and node.args
            and isinstance(node.args[0], ast.Constant)
            and isinstance(node.args[0].value, str)
        ):
            roots.add(node.args[0].value.split(".")[0])
    return roots


@pytest.mark.parametrize("package", sorted(FORBIDDEN))
def test_no_forbidden_import_statements(package: str) -> None:
    files = sorted((REPO_ROOT / package).rglob("*.py"))
    if package == "coral_core":
        assert files, "coral_core has no modules"
    violations = {
        str(path.relative_to(REPO_ROOT)): sorted(_imported_roots(path) & set(FORBIDDEN[package]))
        for path in files
    }
    violations = {file: names for file, names in violations.items() if names}
    assert violations == {}, f"{package} must not import {FORBIDDEN[package]}"


def test_importing_all_of_coral_core_loads_no_framework() -> None:
    script = """
import importlib, json, pkgutil, sys
import coral_core
names = [m.name for m in pkgutil.walk_packages(coral_core.__path__, "coral_core.")]
for name in names:
    importlib.import_module(name)
print(json.dumps({"modules": names, "loaded": sorted(sys.modules)}))
"""
    result = subprocess.run(
        [sys.executable, "-c", script], capture_output=True, text=True, cwd=REPO_ROOT, check=True
    )
    report = json.loads(result.stdout.strip().splitlines()[-1])
    assert "coral_core.labels.taxonomy" in report["modules"]
    loaded_roots = {name.split(".")[0] for name in report["loaded"]}
    assert loaded_roots.isdisjoint(FRAMEWORKS + ADAPTERS), sorted(
        loaded_roots & set(FRAMEWORKS + ADAPTERS)
    )
    assert "ray" not in loaded_roots  # imported inside coral_core.cluster's functions only


# Ray, an optional dependency (coralseg[ray]), is imported by the one cluster runner that the
# CLI and the adapters share; nothing else may depend on it.
RAY_RUNNER = "coral_core/cluster.py"


def test_only_the_cluster_runner_imports_ray() -> None:
    importers = sorted(
        str(path.relative_to(REPO_ROOT))
        for package in ("coral_core", *ADAPTERS)
        for path in (REPO_ROOT / package).rglob("*.py")
        if "ray" in _imported_roots(path)
    )
    assert importers == [RAY_RUNNER]


def test_the_checker_sees_imports_inside_functions(tmp_path: Path) -> None:
    module = tmp_path / "m.py"
    module.write_text(
        "import os\n"
        "def f():\n    import fiftyone.core.labels as fol\n"
        "def g():\n    from cvat_sdk import make_client\n"
        "def h():\n    importlib.import_module('nuclio_sdk')\n"
        "from . import sibling\n"
    )
    assert _imported_roots(module) == {"os", "fiftyone", "cvat_sdk", "nuclio_sdk"}


# Files, encodings and labels over plain arrays: importing them must not load a deep-learning
# stack (a CVAT bridge or a COCO tool reads and writes these without torch installed). Every
# module of PURE_PACKAGES is checked, so a module added there is held to the rule too.
PURE_PACKAGES = ("coral_core.formats", "coral_core.labels")
PURE_ENCODERS = (
    "coral_core.formats.annotations",
    "coral_core.formats.coco",
    "coral_core.formats.cvat_polylines",
    "coral_core.formats.cvat_shapes",
    "coral_core.formats.dataset_manifest",
    "coral_core.formats.polygons",
    "coral_core.formats.rle",
    "coral_core.inference.instance_records",
    "coral_core.labels.taxonomy",
)
DEEP_LEARNING = ("torch", "torchvision", "mmengine", "mmcv", "mmseg", "onnxruntime")


def test_pure_encoders_load_no_deep_learning_stack_at_run_time() -> None:
    script = f"""
import importlib, json, pkgutil, sys
names = {list(PURE_ENCODERS)!r}
for package in {list(PURE_PACKAGES)!r}:
    found = pkgutil.walk_packages(importlib.import_module(package).__path__, package + ".")
    names += [package, *(module.name for module in found)]
for name in names:
    importlib.import_module(name)
print(json.dumps({{"modules": names, "loaded": sorted({{m.split(".")[0] for m in sys.modules}})}}))
"""
    result = subprocess.run(
        [sys.executable, "-c", script], capture_output=True, text=True, cwd=REPO_ROOT, check=True
    )
    report = json.loads(result.stdout.strip().splitlines()[-1])
    assert "coral_core.formats.raster_io" in report["modules"]  # the walk reached the packages
    assert "coral_core.labels.rasterize" in report["modules"]
    loaded = set(report["loaded"])
    assert "coral_core" in loaded
    assert loaded.isdisjoint(DEEP_LEARNING), sorted(loaded & set(DEEP_LEARNING))
