"""``coralseg export-onnx CONFIG CHECKPOINT --out model.onnx``: the semantic model as ONNX."""

from __future__ import annotations

import argparse


def register(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser(
        "export-onnx",
        help="export the semantic model to ONNX (with a JSON sidecar: window, normalisation, "
        "classes)",
        description="Write the model of CONFIG + CHECKPOINT as ONNX: input a batch of "
        "normalised sliding windows, output their logits. OUT.json says how to prepare the "
        "input and read the output, and which class each channel is.",
    )
    parser.add_argument("config", help="the MMSeg config the checkpoint was trained with")
    parser.add_argument("checkpoint", help="its .pth checkpoint")
    parser.add_argument("--out", required=True, help="the .onnx file to write")
    parser.set_defaults(run=run)


def run(args: argparse.Namespace) -> int:
    from coral_core.inference.onnx_export import export_onnx
    from coral_core.inference.semantic import load_semantic_model

    model = load_semantic_model(args.config, args.checkpoint)
    onnx_path, sidecar = export_onnx(model, args.out)
    print(f"wrote {onnx_path} and {sidecar}")
    return 0
