"""Training benchmark: images per second and peak memory of one training step, for a frozen
and a fine-tuned DINOv2 backbone, in fp32 and with mixed precision.

Each setting runs in its own process (so peak memory is its own), on the same random images
and labels with the real model of a config (random weights), with the same batch, the same
number of threads, ``--warmup`` untimed steps and then ``--steps`` timed ones. The first
setting, frozen fp32, is the baseline the others are compared with, in the same run.

Mixed precision is float16 on a GPU and bfloat16 on a CPU. A CPU without native bfloat16
kernels (no AVX512-BF16 or AMX; the header line says) emulates them, so "amp" is slower
there than fp32: that is a property of the CPU, not of training.

    .venv/bin/python bench/bench_train.py                       # ViT-S/14, 224 crop (CPU)
    .venv/bin/python bench/bench_train.py --arch vitb14 --crop 518 --batch 5 --device cuda
"""

from __future__ import annotations

import argparse
import json
import resource
import subprocess
import sys
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
SETTINGS = {
    "frozen fp32": dict(frozen=True, amp=False, checkpointing=False),
    "frozen amp": dict(frozen=True, amp=True, checkpointing=False),
    "fine-tuned fp32": dict(frozen=False, amp=False, checkpointing=False),
    "fine-tuned amp": dict(frozen=False, amp=True, checkpointing=False),
    "fine-tuned amp + grad ckpt": dict(frozen=False, amp=True, checkpointing=True),
}


def run_setting(args: argparse.Namespace, setting: dict) -> dict:
    import torch
    from mmengine.config import Config
    from mmengine.structures import PixelData
    from mmseg.structures import SegDataSample

    from coral_core.models import build_segmentor
    from coral_core.models.dinov2 import ARCHS

    torch.manual_seed(0)
    cfg = Config.fromfile(str(args.config))
    dim = ARCHS[args.arch].embed_dim
    cfg.model.backbone.update(
        arch=args.arch,
        checkpoint=None,
        out_indices=None,
        frozen=setting["frozen"],
        grad_checkpointing=setting["checkpointing"],
    )
    cfg.model.decode_head.in_channels = [dim] * 4
    model = build_segmentor(cfg.model).to(args.device).train()
    params = [p for p in model.parameters() if p.requires_grad]
    optimizer = torch.optim.AdamW(params, lr=1e-4)
    num_classes = cfg.model.decode_head.num_classes
    crop = args.crop
    images = torch.randn(args.batch, 3, crop, crop, device=args.device)
    samples = []
    for _ in range(args.batch):
        sample = SegDataSample(metainfo=dict(img_shape=(crop, crop), pad_shape=(crop, crop)))
        labels = torch.randint(0, num_classes, (1, crop, crop), device=args.device)
        sample.gt_sem_seg = PixelData(data=labels)
        samples.append(sample)
    dtype = torch.float16 if args.device == "cuda" else torch.bfloat16
    scaler = torch.amp.GradScaler(enabled=setting["amp"] and args.device == "cuda")

    def step() -> None:
        optimizer.zero_grad(set_to_none=True)
        with torch.autocast(args.device, dtype=dtype, enabled=setting["amp"]):
            losses = model.loss(images, samples)
        loss = sum(v for k, v in losses.items() if "loss" in k)
        scaler.scale(loss).backward()
        scaler.step(optimizer)
        scaler.update()

    for _ in range(args.warmup):
        step()
    if args.device == "cuda":
        torch.cuda.synchronize()
        torch.cuda.reset_peak_memory_stats()
    start = time.perf_counter()
    for _ in range(args.steps):
        step()
    if args.device == "cuda":
        torch.cuda.synchronize()
        peak_mb = torch.cuda.max_memory_allocated() / 2**20
    else:
        peak_mb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    seconds = time.perf_counter() - start
    return {"images_per_s": args.batch * args.steps / seconds, "peak_mb": peak_mb}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument(
        "--config",
        type=Path,
        default=REPO / "configs" / "dinov2-vits14-segformer_tiny-cpu_eilat-224x224.py",
    )
    parser.add_argument("--arch", default="vits14", help="vits14, vitb14, vitl14 or vitg14")
    parser.add_argument("--crop", type=int, default=224)
    parser.add_argument("--batch", type=int, default=2)
    parser.add_argument("--steps", type=int, default=5)
    parser.add_argument("--warmup", type=int, default=2)
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--setting", help=argparse.SUPPRESS)  # child process mode
    args = parser.parse_args()

    if args.setting:
        print(json.dumps(run_setting(args, SETTINGS[args.setting])))
        return 0

    from _common import device_description

    device_name = device_description(args.device)
    print(
        f"{args.arch} at {args.crop}x{args.crop}, batch {args.batch}, {args.steps} steps, "
        f"device: {device_name}"
    )
    baseline = None
    for name in SETTINGS:
        command = [sys.executable, __file__, "--setting", name, *sys.argv[1:]]
        done = subprocess.run(command, capture_output=True, text=True, check=False)
        if done.returncode != 0:
            print(f"{name:<28} failed: {done.stderr.strip().splitlines()[-1]}")
            continue
        result = json.loads(done.stdout.strip().splitlines()[-1])
        baseline = baseline or result
        speed = result["images_per_s"] / baseline["images_per_s"]
        memory = result["peak_mb"] / baseline["peak_mb"]
        print(
            f"{name:<28} {result['images_per_s']:7.2f} img/s ({speed:4.2f}x)   "
            f"peak {result['peak_mb']:8.0f} MB ({memory:4.2f}x)"
        )
    return 0


if __name__ == "__main__":
    sys.exit(main())
