"""``coralseg package-nuclio``: checks before writing, the zip's contents in CVAT's
conventions, the unpacked function running on its own in a separate process, and the ONNX
runtime's parity with PyTorch. Tests that need a zip are slow: the ONNX export takes about
a minute per zip on two busy cores."""

from __future__ import annotations

import dataclasses
import io
import json
import os
import subprocess
import sys
import sysconfig
import textwrap
import zipfile
from pathlib import Path

import pytest
import torch
import yaml
from PIL import Image

from coral_core.errors import CoralsegError
from coralseg.cli import main
from nuclio_functions.packaging import (
    FUNCTION_FILES,
    KINDS,
    check_label_spec,
    code_files,
    plan_package,
)
from tests.nuclio_functions.conftest import FUNCTION_ENV, request_body
from tests.nuclio_functions.cvat_rules import check_detections, check_spec

FOUR_K_JPEG_BASE64 = 4000 * 3000 * 3 // 4 * 4 // 3  # a high-quality 4000 x 3000 JPEG, base64


def _args(config, weights, out, *extra) -> list[str]:
    return ["package-nuclio", "--segformer-config", str(config), "--segformer-weights",
            str(weights), "--out", str(out), *extra]  # fmt: skip


@pytest.mark.slow
@pytest.mark.data_guard
def test_function_yaml_follows_cvat_conventions(packaged, tiny_checkpoint) -> None:
    from coral_core.formats.cvat_shapes import label_spec
    from coral_core.inference.semantic import load_semantic_model

    encoding = load_semantic_model(*tiny_checkpoint).encoding
    expected = [label["name"] for label in label_spec(encoding)]
    assert "Bare-subst." not in expected  # cover classes are not colonies
    for kind, archive in packaged.items():
        with zipfile.ZipFile(archive) as opened:
            names = set(opened.namelist())
            documents = {f: yaml.safe_load(opened.read(f)) for f in FUNCTION_FILES}
            manifest = json.loads(opened.read("coralseg_package.json"))
        for file, document in documents.items():
            metadata, spec = document["metadata"], document["spec"]
            assert metadata["name"] == KINDS[kind].default_name
            assert metadata["annotations"]["type"] == "detector"
            labels = check_spec(metadata["annotations"]["spec"])
            assert [label["name"] for label in labels] == expected
            assert {label["type"] for label in labels} == {"mask"}
            assert spec["handler"] == "main:handler"
            assert spec["runtime"] in ("python:3.10", "python:3.11", "python:3.12")
            trigger = spec["triggers"]["myHttpTrigger"]
            assert trigger["kind"] == "http"
            assert trigger["attributes"]["maxRequestBodySize"] >= 2 * FOUR_K_JPEG_BASE64
            assert int(spec["eventTimeout"].rstrip("s")) >= 60
            installs = " ".join(d["value"] for d in spec["build"]["directives"]["preCopy"])
            assert "mmcv" not in installs and "mmsegmentation" not in installs
            assert "onnxruntime" in installs
            if file == "function-gpu.yaml":
                assert spec["resources"]["limits"]["nvidia.com/gpu"] == 1
                assert trigger["numWorkers"] >= 1
                assert "onnxruntime-gpu" in installs
        assert {"main.py", "best_segformer.onnx", "best_segformer.onnx.json"} <= names
        assert ("vit_b_coralscop.pth" in names) == (kind == "two-stage")
        assert "coral_core/inference/pipeline.py" in names
        assert "coral_core/formats/cvat_shapes.py" in names
        assert not any(
            n.startswith(("coral_core/models/", "coralseg/", "cvat_bridge/")) for n in names
        )
        assert "coral_core/training/runner.py" not in names
        assert manifest["kind"] == kind and manifest["labels"] == expected


def test_code_files_are_exactly_what_imports_reach() -> None:
    files = code_files(KINDS["two-stage"])
    assert "coral_core/inference/sam_models.py" in files
    assert "nuclio_functions/onnx_semantic.py" in files
    assert "nuclio_functions/packaging.py" not in files
    semantic_files = code_files(KINDS["semantic"])
    assert "coral_core/inference/sam_models.py" not in semantic_files
    for arcname, source in files.items():
        assert source.is_file(), arcname


# import name -> pip name, for what the packaged code imports
PIP_NAMES = {
    "numpy": "numpy", "cv2": "opencv-python-headless", "PIL": "pillow", "yaml": "pyyaml",
    "pycocotools": "pycocotools", "tqdm": "tqdm", "torch": "torch", "mmengine": "mmengine",
    "onnxruntime": "onnxruntime", "segment_anything": "segment-anything", "rasterio": "rasterio",
}  # fmt: skip


@pytest.mark.parametrize("kind", sorted(KINDS))
def test_the_images_install_what_the_packaged_code_imports(kind: str) -> None:
    """Every third-party module the zip's code imports is in both yamls' pip installs
    (a fresh venv with exactly that list ran the semantic function; see the report)."""
    from nuclio_functions.packaging import PACKAGE_ROOT, module_level_imports

    roots = set()
    for arcname, source in code_files(KINDS[kind]).items():
        module = arcname.removesuffix(".py").removesuffix("/__init__").replace("/", ".")
        roots |= {name.split(".")[0] for name in module_level_imports(source, module)}
    third_party = roots - set(sys.stdlib_module_names) - {"coral_core", "nuclio_functions"}
    unknown = third_party - set(PIP_NAMES)
    assert not unknown, f"map {unknown} to pip names here and add them to the yamls"
    if kind == "two-stage":
        third_party.add("torchvision")  # segment-anything imports it but does not require it
    for file in FUNCTION_FILES:
        document = yaml.safe_load((PACKAGE_ROOT / KINDS[kind].folder / file).read_text())
        commands = [d["value"] for d in document["spec"]["build"]["directives"]["preCopy"]]
        words = {w.split("==")[0] for c in commands if "pip install" in c for w in c.split()}
        for module in sorted(third_party):
            wanted = PIP_NAMES.get(module, module)
            if file == "function-gpu.yaml" and wanted == "onnxruntime":
                wanted = "onnxruntime-gpu"
            assert wanted in words, f"{file} of {kind} does not install {wanted}"


def test_every_check_runs_before_anything_is_written(
    tiny_checkpoint, sam_checkpoint, tmp_path: Path, capsys
) -> None:
    config, weights = tiny_checkpoint
    out = tmp_path / "out" / "nuclio.zip"
    broken = tmp_path / "missing_key.pth"
    state = torch.load(weights, weights_only=True)
    state["state_dict"].pop(next(iter(state["state_dict"])))
    torch.save(state, broken)
    sam = ["--sam-checkpoint", str(sam_checkpoint)]
    semantic = ["--kind", "semantic"]
    cases = {
        "does not exist": _args(tmp_path / "nope.py", weights, out, *sam),
        "SAM checkpoint": _args(config, weights, out, "--sam-checkpoint", str(tmp_path / "no.pth")),
        "needs --sam-checkpoint": _args(config, weights, out),
        "runs no SAM": _args(config, weights, out, *semantic, *sam),
        "does not fit": _args(config, broken, out, *sam),
        "not a Segment Anything": _args(config, weights, out, "--sam-checkpoint", str(weights)),
        "function name": _args(config, weights, out, *semantic, "--name", "Coral_Seg"),
    }
    for words, args in cases.items():
        assert main(args) == 2, words
        error = capsys.readouterr().err
        assert words in error and "Traceback" not in error, (words, error)
        assert not out.parent.exists() or not any(out.parent.iterdir()), words
    with pytest.raises(CoralsegError, match="unknown function kind"):
        plan_package("panoptic", config, weights)


def test_a_failed_write_leaves_the_previous_zip(tiny_checkpoint, tmp_path: Path) -> None:
    from nuclio_functions.packaging import write_package

    config, weights = tiny_checkpoint
    out = tmp_path / "nuclio.zip"
    out.write_bytes(b"the previous package")
    plan = plan_package("semantic", config, weights)
    half = dataclasses.replace(plan, semantic=dataclasses.replace(plan.semantic, half=True))
    with pytest.raises(CoralsegError, match="float32"):
        write_package(half, out)
    assert out.read_bytes() == b"the previous package"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["nuclio.zip"]


@pytest.mark.parametrize(
    "spec, words",
    [
        ([{"id": 1, "name": "Acropora"}, {"id": 2, "name": "Acropora"}], "duplicate label"),
        ([], "non-empty"),
        ([{"id": 1, "name": " "}], "empty name"),
        ([{"id": 1, "name": "A", "attributes": [{"name": "n"}]}], "lacks input_type"),
        (
            [{"id": 1, "name": "A", "attributes": [
                {"name": "n", "input_type": "number", "values": ["0", "9", "1"]},
                {"name": "n", "input_type": "text", "values": [""]}]}],
            "duplicate attribute",
        ),
        ([{"id": 1, "name": "A"}, {"id": 1, "name": "B"}], "distinct"),
        ([{"id": 1, "name": "A", "type": "blob"}], "unknown type"),
    ],
)  # fmt: skip
def test_label_spec_rules(spec, words) -> None:
    with pytest.raises(CoralsegError, match=words):
        check_label_spec(spec)


@pytest.mark.slow
@pytest.mark.data_guard
def test_unpacked_zip_runs_alone_in_another_process(unpacked, photo, tmp_path: Path) -> None:
    """Only the unpacked tree and the venv's site-packages on the import path: no repository,
    no editable install; and the semantic stage runs without mmcv or MMSegmentation."""
    folder = unpacked["two-stage"]
    (tmp_path / "request.json").write_bytes(request_body(photo))
    script = textwrap.dedent(
        """
        import json, sys
        HEAVY = ("mmcv", "mmseg", "fiftyone", "cvat_sdk")
        from nuclio_sdk import Event, Response
        from nuclio_sdk.event import EventDeserializerKinds
        from nuclio_sdk.test import Platform
        import main
        raw = open(sys.argv[1], "rb").read()
        message = {b"body": raw, b"content_type": b"application/json", b"fields": {},
                   b"trigger": {b"kind": b"http", b"name": b"myHttpTrigger"},
                   b"headers": {}, b"id": b"1", b"method": b"POST", b"path": b"/",
                   b"size": len(raw), b"timestamp": 0, b"url": b"", b"shard_id": 0,
                   b"num_shards": 0, b"type": b"", b"type_version": b"", b"version": 0}
        event = Event.deserialize(message, kind=EventDeserializerKinds.msgpack_raw)
        output = Platform().call_handler(main.handler, event)
        answer = Response.from_entrypoint_output(json.dumps, output)
        import coral_core
        print(json.dumps({
            "status": answer["status_code"], "body": answer["body"],
            "coral_core": coral_core.__file__, "path": sys.path,
            "heavy": sorted(m for m in HEAVY if m in sys.modules),
        }))
        """
    )
    site_packages = sysconfig.get_paths()["purelib"]
    env = {
        "PATH": os.environ.get("PATH", ""),
        "PYTHONPATH": os.pathsep.join([str(folder), site_packages]),
        "CORALSEG_MODEL_DIR": "",
        **FUNCTION_ENV,
        # few, large colonies: SAM decodes each on the CPU (thousands at 16 px, minutes)
        "CORALSEG_MIN_AREA": "4096",
    }
    done = subprocess.run(
        [sys.executable, "-S", "-s", "-c", script, str(tmp_path / "request.json")],
        cwd=folder, env=env, capture_output=True, text=True, timeout=600,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr[-3000:]
    report = json.loads(done.stdout.strip().splitlines()[-1])
    assert Path(report["coral_core"]).is_relative_to(folder)
    assert not any(
        p and Path(p).resolve() == Path(__file__).resolve().parents[2] for p in report["path"]
    )
    assert report["heavy"] == []
    assert report["status"] == 200
    width, height = Image.open(io.BytesIO(photo)).size
    labels = yaml.safe_load((folder / "function.yaml").read_text())["metadata"]["annotations"]
    items = json.loads(report["body"])
    assert items
    check_detections(items, check_spec(labels["spec"]), height, width)


@pytest.mark.slow
@pytest.mark.data_guard
def test_onnx_runtime_gives_the_pytorch_argmax(unpacked, tiny_checkpoint, shared_data) -> None:
    """The packaged ONNX model against the PyTorch/MMSeg model, on every quadrat photo."""
    import numpy as np

    from coral_core.inference.semantic import load_semantic_model, predict
    from nuclio_functions.onnx_semantic import load_onnx_semantic_model

    torch_model = load_semantic_model(*tiny_checkpoint)
    onnx_model = load_onnx_semantic_model(unpacked["semantic"] / "best_segformer.onnx")
    assert onnx_model.resize == torch_model.resize and onnx_model.window == torch_model.window
    same = total = 0
    for path in sorted((shared_data / "quadrats").glob("*.jpg")):
        image = np.asarray(Image.open(path).convert("RGB"))
        expected, found = predict(torch_model, image), predict(onnx_model, image)
        same += int((expected.labels == found.labels).sum())
        total += expected.labels.size
    assert total > 0
    assert same / total >= 0.9999, f"{same / total:.6f} of the pixels agree"
