"""Serving overhead of the Nuclio function, like for like, and the parity of its ONNX runtime.

**Overhead.** One image (default: a 1920 x 1920 mosaic of four quadrat photos from
../shared/data/quadrats) goes

* through the handler, end to end: CVAT's JSON request (base64 JPEG) deserialized as
  Nuclio's Python wrapper deserializes the processor's message (nuclio-sdk parses the
  JSON), ``main.handler`` (decode the JPEG, both stages, encode the detections), the answer
  serialised as the wrapper serialises it;
* through ``TwoStagePredictor`` directly, the Python API ``coralseg infer`` uses, on the
  already decoded image.

Both sides run the same predictor object (the same models, runtime, windows and thresholds:
``coralseg infer``'s defaults), each warmed up once, then timed alternately; the medians and
their ratio are printed. The difference is the serving: JSON, base64, JPEG decoding, and
the encoding of the detections (polygons and 0/255 masks).

Random weights give a class map of per-token noise; as in ``bench_infer.py`` the decode
head's logits are smoothed (``_common.make_coherent``) so the instance stage sees
colony-sized regions, before the model is exported to ONNX.

**Parity** (``--parity``, instead of the overhead): the semantic argmax of the ONNX runtime
(what the packaged function runs) against the PyTorch/MMSeg path, pixel by pixel, on each
quadrat photo.

    .venv/bin/python bench/bench_nuclio.py --config tiny            # what the lead runs first
    .venv/bin/python bench/bench_nuclio.py --config tiny --size 640 --repeats 1
    .venv/bin/python bench/bench_nuclio.py --config tiny --parity
    .venv/bin/python bench/bench_nuclio.py --config vitb --runtime torch [--device cuda]
"""

from __future__ import annotations

import argparse
import base64
import io
import json
import statistics
import sys
import tempfile
from pathlib import Path

import numpy as np
from _common import (
    DATA,
    TINY_CONFIG,
    VITB_CONFIG,
    agreement,
    cli_defaults,
    device_description,
    make_coherent,
    quadrat_mosaic,
    random_sam_checkpoint,
    random_semantic_checkpoint,
    ratio,
    timed,
)

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))


def build_predictor(args, folder: Path):
    """The predictor both sides share, and the torch semantic model it was made from."""
    from coral_core.inference.instances import RefineSettings
    from coral_core.inference.pipeline import TwoStagePredictor
    from coral_core.inference.sam_models import SamRunner, load_sam
    from coral_core.inference.semantic import load_semantic_model, with_overlap
    from coral_core.labels.taxonomy import EILAT, FINEGRAINED, MaskEncoding

    config = TINY_CONFIG if args.config == "tiny" else VITB_CONFIG
    encoding = MaskEncoding(EILAT if args.config == "tiny" else FINEGRAINED)
    config, checkpoint = random_semantic_checkpoint(config, folder, encoding)
    defaults = cli_defaults("infer", "overlap", "min_threshold", "unsure_threshold", "min_area")
    torch_model = load_semantic_model(config, checkpoint, device=args.device)
    if defaults.overlap is not None:
        torch_model = with_overlap(torch_model, defaults.overlap)
    make_coherent(torch_model.network)
    semantic = torch_model
    if args.runtime == "onnx":
        semantic = export_and_load(torch_model, folder, args.device)
    settings = RefineSettings(
        min_threshold=defaults.min_threshold,
        unsure_threshold=defaults.unsure_threshold,
        min_area=defaults.min_area,
    )
    sam, _ = load_sam(random_sam_checkpoint(folder), device=args.device)
    predictor = TwoStagePredictor(
        semantic, SamRunner(sam, prompts_per_batch=settings.prompts_per_batch), settings
    )
    return predictor, torch_model


def export_and_load(torch_model, folder: Path, device: str):
    from dataclasses import replace

    from coral_core.inference.onnx_export import export_onnx
    from nuclio_functions.onnx_semantic import load_onnx_semantic_model

    float_model = replace(torch_model, half=False, network=torch_model.network.float())
    onnx_path, _ = export_onnx(float_model, folder / "best_segformer.onnx")
    loaded = load_onnx_semantic_model(onnx_path, device=device)
    return replace(loaded, stride=torch_model.stride)


def handler_call(predictor, raw: bytes) -> dict:
    """One request through ``main.handler`` as the Nuclio Python wrapper makes it."""
    import logging

    import nuclio_sdk
    from nuclio_sdk import Event, Response
    from nuclio_sdk.event import EventDeserializerKinds

    from nuclio_functions.two_stage import main

    context = handler_call.context
    if context is None:
        logger = nuclio_sdk.Logger(logging.WARNING)
        context = nuclio_sdk.Context(logger, None)
        context.user_data.predictor = predictor
        handler_call.context = context
    # the processor's message (msgpack, raw mode) as nuclio-sdk deserializes it
    message = {b"body": raw, b"content_type": b"application/json", b"fields": {},
               b"trigger": {b"kind": b"http", b"name": b"myHttpTrigger"}, b"headers": {},
               b"id": b"1", b"method": b"POST", b"path": b"/", b"size": len(raw),
               b"timestamp": 0, b"url": b"", b"shard_id": 0, b"num_shards": 0, b"type": b"",
               b"type_version": b"", b"version": 0}  # fmt: skip
    event = Event.deserialize(message, kind=EventDeserializerKinds.msgpack_raw)
    return Response.from_entrypoint_output(json.dumps, main.handler(context, event))


handler_call.context = None


def overhead(args) -> None:
    from PIL import Image

    image = quadrat_mosaic(args.size, args.data)
    buffer = io.BytesIO()
    Image.fromarray(image).save(buffer, format="JPEG", quality=95)
    raw = json.dumps({"image": base64.b64encode(buffer.getvalue()).decode("ascii")}).encode()
    sent = np.asarray(Image.open(io.BytesIO(buffer.getvalue())).convert("RGB"))
    with tempfile.TemporaryDirectory() as scratch:
        predictor, _ = build_predictor(args, Path(scratch))
        print(f"device: {device_description(args.device)}; semantic runtime: {args.runtime}")
        print(f"image: {args.size} x {args.size} JPEG, request {len(raw) / 2**20:.1f} MiB")
        warm = handler_call(predictor, raw)
        if warm["status_code"] != 200:
            raise SystemExit(f"the handler answered {warm['status_code']}: {warm['body']}")
        predictor(sent)
        served, direct = [], []
        for _ in range(args.repeats):
            answer, seconds = timed(lambda: handler_call(predictor, raw), args.device)
            served.append(seconds)
            result, seconds = timed(lambda: predictor(sent), args.device)
            direct.append(seconds)
        colonies = len(json.loads(answer["body"]))
        assert colonies == len(result.instances.instances), "both sides found the same colonies"
        handler_s, api_s = statistics.median(served), statistics.median(direct)
        print(f"colonies: {colonies}; answer {len(answer['body']) / 2**20:.1f} MiB of JSON")
        print(f"handler end to end : {handler_s:7.2f} s/request (median of {args.repeats})")
        print(f"TwoStagePredictor  : {api_s:7.2f} s/image")
        print(
            f"serving overhead   : {100 * (handler_s - api_s) / api_s:+.1f}% "
            f"(handler / API = {ratio(handler_s, api_s)})"
        )


def parity(args) -> None:
    """Pixel agreement of the ONNX and PyTorch semantic argmax on every quadrat photo."""
    from PIL import Image

    from coral_core.inference.semantic import load_semantic_model, predict
    from coral_core.labels.taxonomy import EILAT, FINEGRAINED, MaskEncoding

    config = TINY_CONFIG if args.config == "tiny" else VITB_CONFIG
    encoding = MaskEncoding(EILAT if args.config == "tiny" else FINEGRAINED)
    photos = sorted((args.data or DATA / "quadrats").glob("*.jpg"))
    with tempfile.TemporaryDirectory() as scratch:
        folder = Path(scratch)
        config, checkpoint = random_semantic_checkpoint(config, folder, encoding)
        torch_model = load_semantic_model(config, checkpoint, device="cpu")
        onnx_model = export_and_load(torch_model, folder, "cpu")
        same = total = 0
        for path in photos:
            image = np.asarray(Image.open(path).convert("RGB"))
            a = predict(torch_model, image).labels
            b = predict(onnx_model, image).labels
            same += int((a == b).sum())
            total += a.size
            print(f"  {path.name}: {100 * agreement(a, b):.4f}% of pixels agree")
        print(
            f"ONNX vs PyTorch argmax ({args.config}, {len(photos)} photos): "
            f"{100 * same / total:.5f}% of {total} pixels agree ({total - same} differ)"
        )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--config", choices=["tiny", "vitb"], default="tiny")
    parser.add_argument("--runtime", choices=["onnx", "torch"], default="onnx")
    parser.add_argument("--size", type=int, default=1920)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--data", type=Path, help="quadrat photos (default ../shared/data)")
    parser.add_argument(
        "--parity", action="store_true", help="measure ONNX vs PyTorch argmax instead"
    )
    args = parser.parse_args()
    if args.parity:
        parity(args)
    else:
        overhead(args)


if __name__ == "__main__":
    main()
