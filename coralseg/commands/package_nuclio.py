"""``coralseg package-nuclio``: a trained model as a Nuclio function zip for CVAT."""

from __future__ import annotations

import argparse

EXAMPLES = """\
examples:
  # the two-stage function (genus model + CoralSCoP) as nuclio.zip
  coralseg package-nuclio \\
      --segformer-config configs/dinov2-vitb14-segformer_150e_criobe-finegrained-518x518.py \\
      --segformer-weights work_dirs/finegrained/best_mIoU_epoch_140.pth \\
      --sam-checkpoint checkpoints/vit_b_coralscop.pth

  # the semantic-only function under another name
  coralseg package-nuclio --kind semantic --name coralseg-families \\
      --segformer-config CONFIG.py --segformer-weights CKPT.pth --out families.zip

  # then deploy it (see docs/cvat-functions.md)
  unzip nuclio.zip -d fn && nuctl deploy --project-name cvat --path fn \\
      --file fn/function.yaml --platform local \\
      --platform-config '{"attributes": {"network": "cvat_cvat"}}'
"""


def register(subparsers: argparse._SubParsersAction) -> None:
    from nuclio_functions.packaging import KINDS

    parser = subparsers.add_parser(
        "package-nuclio",
        help="package a trained model as a Nuclio function zip that CVAT calls as a detector",
        description="Check the model files (the config builds, the weights fit it, the SAM "
        "checkpoint is SAM or CoralSCoP, the labels pass CVAT's rules), then write a zip that "
        "`nuctl deploy --path` builds: function.yaml and function-gpu.yaml with the "
        "checkpoint's labels, the handler, the coral_core code it needs, the semantic model "
        "as ONNX (no mmcv in the image) and the SAM weights. Nothing is written if a check "
        "fails, and the zip appears only once complete.",
        epilog=EXAMPLES,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument(
        "--kind",
        choices=sorted(KINDS),
        default="two-stage",
        help="two-stage: colonies refined by SAM / CoralSCoP (default); semantic: colonies "
        "are connected regions of one class",
    )
    parser.add_argument("--segformer-config", required=True, help="the MMSeg config")
    parser.add_argument("--segformer-weights", required=True, help="its trained .pth")
    parser.add_argument(
        "--sam-checkpoint",
        help="vit_b_coralscop.pth or a segment-anything sam_vit_*.pth (two-stage only)",
    )
    parser.add_argument(
        "--name",
        help="Nuclio function name (default: pth-mmseg-coralscopsegformer for two-stage, "
        "pth-mmseg-segformer for semantic)",
    )
    parser.add_argument("--display-name", help="the name CVAT shows in its model list")
    parser.add_argument("--out", default="nuclio.zip", help="the zip to write (nuclio.zip)")
    parser.set_defaults(run=run)


def run(args: argparse.Namespace) -> int:
    from nuclio_functions.packaging import plan_package, write_package

    print("checking the model files ...")
    plan = plan_package(
        args.kind,
        args.segformer_config,
        args.segformer_weights,
        sam_checkpoint=args.sam_checkpoint,
        name=args.name,
        display_name=args.display_name,
    )
    out = write_package(plan, args.out, progress=lambda step: print(f"{step} ..."))
    print(
        f"wrote {out}: function {plan.name} ({plan.kind.name}), {len(plan.spec)} labels"
        + (f", SAM: {plan.sam_kind}" if plan.sam_kind else "")
    )
    return 0
