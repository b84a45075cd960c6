"""Where coralseg's inference time goes on this machine, and what precision it can take.

Random-weight models (no pretrained weights here), windows cut from the quadrat photos in
../shared/data/quadrats. For each semantic config (``tiny``: DINOv2 ViT-S/14 + SegFormer,
224 px windows; ``vitb``: ViT-B/14, 518 px windows):

1. one batch of windows, split into backbone, decode head and resize to the window, and
   the rest of ``predict`` on a whole photo (normalisation, accumulation, softmax, summary);
2. milliseconds per window at batch sizes 1, 2, 4, 8;
3. variants of the same batch, each against float32 on the same windows: bfloat16 under
   ``torch.autocast("cpu")`` (or float16 under CUDA autocast), channels-last memory format,
   ``torch.compile`` (``--variants compile``; compiling takes minutes on 2 cores), with the argmax
   agreement of each against float32. Agreement is measured on the raw random network (its
   logits are close together, so it flips more than a trained model would: a pessimistic
   figure) and on the same network made "coherent" as in bench_infer.py.

And for the instance stage, SAM ViT-B (random weights): the image encoder on one photo
(``SamRunner.set_image``), then box prompts decoded in batches of 16.

Every ratio is measured in this run, on this machine; on a machine shared with other work
the absolute times vary, the ratios less.

    .venv/bin/python bench/profile_infer.py [--configs tiny vitb] [--device cuda]
    .venv/bin/python bench/profile_infer.py --configs vitb --windows 1 --batches 1 2 --no-photo
"""

from __future__ import annotations

import argparse
import contextlib
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import torch
from _common import (
    DATA,
    TINY_CONFIG,
    VITB_CONFIG,
    device_description,
    make_coherent,
    quadrat_photos,
    random_sam_checkpoint,
    random_semantic_checkpoint,
    synchronize,
)

CONFIGS = {"tiny": TINY_CONFIG, "vitb": VITB_CONFIG}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--data", type=Path, default=DATA / "quadrats")
    parser.add_argument("--configs", nargs="+", choices=sorted(CONFIGS), default=["tiny", "vitb"])
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--windows", type=int, default=4, help="windows per measured batch")
    parser.add_argument("--repeats", type=int, default=2, help="timed repeats (after warm-up)")
    parser.add_argument("--batches", type=int, nargs="*", default=[1, 2, 4, 8])
    parser.add_argument(
        "--variants",
        nargs="*",
        choices=("lowp", "channels-last", "compile"),
        default=["lowp", "channels-last"],
        help="variants to compare with float32 (compile: minutes on 2 cores)",
    )
    parser.add_argument("--no-photo", dest="photo", action="store_false", help="skip predict()")
    parser.add_argument("--threads", type=int, help="torch threads (default: torch's)")
    parser.add_argument("--no-sam", action="store_true", help="skip the instance stage")
    args = parser.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
    print(f"device: {device_description(args.device)}")
    torch.manual_seed(0)
    with tempfile.TemporaryDirectory() as tmp:
        for name in args.configs:
            _semantic(name, Path(tmp), args)
        if not args.no_sam:
            _instances(Path(tmp), args)
    return 0


def _clock(function, device: str, repeats: int, warm: bool = True) -> float:
    """Median seconds of ``repeats`` calls, after one untimed warm-up call if ``warm``."""
    if warm:
        function()
    times = []
    for _ in range(repeats):
        synchronize(device)
        start = time.perf_counter()
        function()
        synchronize(device)
        times.append(time.perf_counter() - start)
    return float(np.median(times))


def _windows(model, count: int, data: Path) -> torch.Tensor:
    """``count`` normalised windows cut from the quadrat photos, ``(N, 3, w, w)``."""
    side = model.window
    crops = []
    for photo in quadrat_photos(count, max(2 * side, 1024), data):
        y, x = (photo.shape[0] - side) // 2, (photo.shape[1] - side) // 2
        crops.append(photo[y : y + side, x : x + side])
    while len(crops) < count:  # fewer photos than windows: more crops of the first
        crops.append(crops[0][::-1].copy())
    batch = torch.from_numpy(np.stack(crops[:count])).permute(0, 3, 1, 2).float()
    mean = torch.tensor(model.mean).view(1, 3, 1, 1)
    std = torch.tensor(model.std).view(1, 3, 1, 1)
    return ((batch - mean) / std).to(model.device)


def _semantic(name: str, tmp: Path, args) -> None:
    from coral_core.inference.semantic import forward_windows, load_semantic_model
    from coral_core.labels.taxonomy import EILAT, FINEGRAINED, MaskEncoding

    taxonomy = FINEGRAINED if name == "vitb" else EILAT
    config, checkpoint = random_semantic_checkpoint(CONFIGS[name], tmp, MaskEncoding(taxonomy))
    model = load_semantic_model(config, checkpoint, device=args.device, half=False)
    network = model.network
    crops = _windows(model, args.windows, args.data)
    n = len(crops)
    print(f"\n== {name}: {CONFIGS[name].name}, {model.window} px windows, batch {n}")

    with torch.inference_mode():
        # 1. where one batch's time goes
        features = network.extract_feat(crops)
        backbone = _clock(lambda: network.extract_feat(crops), args.device, args.repeats, False)
        logits = network.decode_head.forward(features)
        head = _clock(
            lambda: network.decode_head.forward(features), args.device, args.repeats, False
        )
        resize = _clock(
            lambda: torch.nn.functional.interpolate(
                logits, size=crops.shape[2:], mode="bilinear", align_corners=False
            ),
            args.device,
            args.repeats,
        )
        total = backbone + head + resize
        print(
            f"one batch: backbone {backbone * 1e3:.0f} ms ({backbone / total:.0%}), decode head "
            f"{head * 1e3:.0f} ms ({head / total:.0%}), resize to window {resize * 1e3:.0f} ms "
            f"({resize / total:.0%}); {total / n * 1e3:.0f} ms per window"
        )
        if args.photo:
            _whole_photo(model, args)

        # 2. batch size
        per_window = []
        for batch in args.batches:
            chunk = crops[:batch] if batch <= n else crops.repeat((batch + n - 1) // n, 1, 1, 1)
            chunk = chunk[:batch]
            seconds = _clock(lambda c=chunk: forward_windows(network, c), args.device, 1)
            per_window.append(f"{batch}: {seconds / batch * 1e3:.0f} ms")
        if per_window:
            print("per window at batch " + ", ".join(per_window))

        # 3. precision and layout variants, against float32 on the same windows
        reference = forward_windows(network, crops)
        fp32 = _clock(lambda: forward_windows(network, crops), args.device, args.repeats, False)
        for variant, run in _variants(network, crops, args):
            try:
                out = run()  # also the warm-up
                seconds = _clock(run, args.device, args.repeats, False)
            except Exception as err:  # a variant the stack cannot run is reported, not fatal
                print(f"  {variant:<24} failed: {type(err).__name__}: {str(err)[:120]}")
                continue
            same = (out.float().argmax(1) == reference.argmax(1)).float().mean().item()
            print(
                f"  {variant:<24} {seconds / n * 1e3:7.0f} ms/window  {fp32 / seconds:5.2f}x "
                f"fp32's speed, argmax agreement {same:.4%} (random weights)"
            )
        if "lowp" not in args.variants:
            return
        make_coherent(network)
        coherent = forward_windows(network, crops)
        with _low_precision(args.device):
            low = forward_windows(network, crops)
        same = (low.float().argmax(1) == coherent.argmax(1)).float().mean().item()
        print(f"  low precision, coherent logits: argmax agreement {same:.4%}")


@contextlib.contextmanager
def _low_precision(device: str):
    dtype = torch.float16 if device.startswith("cuda") else torch.bfloat16
    with torch.autocast(torch.device(device).type, dtype=dtype):
        yield


def _variants(network, crops, args):
    from coral_core.inference.semantic import forward_windows

    low = "fp16 autocast" if args.device.startswith("cuda") else "bf16 autocast"

    def autocast():
        with _low_precision(args.device):
            return forward_windows(network, crops)

    if "lowp" in args.variants:
        yield low, autocast

    if "channels-last" in args.variants:
        yield from _channels_last(network, crops, low, args)

    if "compile" in args.variants:
        yield from _compiled(network, crops)


def _channels_last(network, crops, low, args):
    from coral_core.inference.semantic import forward_windows

    last = crops.contiguous(memory_format=torch.channels_last)
    channels_last = network.to(memory_format=torch.channels_last)
    yield "channels-last fp32", lambda: forward_windows(channels_last, last)

    def channels_last_autocast():
        with _low_precision(args.device):
            return forward_windows(channels_last, last)

    yield f"channels-last {low}", channels_last_autocast
    network.to(memory_format=torch.contiguous_format)


def _compiled(network, crops):
    """The backbone through ``torch.compile`` (the head is small), timed after compiling."""
    from coral_core.inference.semantic import forward_windows

    compiled = torch.compile(network.backbone)

    class _Compiled(torch.nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.decode_head = network.decode_head

        def extract_feat(self, inputs):
            return compiled(inputs)

    wrapper = _Compiled()
    start = time.perf_counter()
    forward_windows(wrapper, crops)
    print(f"  (torch.compile of the backbone took {time.perf_counter() - start:.0f}s)")
    yield "torch.compile fp32", lambda: forward_windows(wrapper, crops)


def _whole_photo(model, args) -> None:
    """``predict`` on one photo, its network time measured inside it (exact split)."""
    from coral_core.inference import semantic

    photo = quadrat_photos(1, 2 * model.window, args.data)[0]
    original = semantic.forward_windows
    spent = {"seconds": 0.0, "windows": 0}

    def clocked(network, crops):
        synchronize(args.device)
        start = time.perf_counter()
        out = original(network, crops)
        synchronize(args.device)
        spent["seconds"] += time.perf_counter() - start
        spent["windows"] += len(crops)
        return out

    semantic.predict(model, photo)  # warm-up
    semantic.forward_windows = clocked
    try:
        synchronize(args.device)
        start = time.perf_counter()
        semantic.predict(model, photo)
        synchronize(args.device)
        whole = time.perf_counter() - start
    finally:
        semantic.forward_windows = original
    network = spent["seconds"]
    print(
        f"predict on a {photo.shape[1]}x{photo.shape[0]} photo: {whole:.2f}s, "
        f"{spent['windows']} windows; network {network:.2f}s ({network / whole:.0%}), the rest "
        f"(resize, normalise, accumulate, softmax, summary) {whole - network:.2f}s "
        f"({(whole - network) / whole:.0%})"
    )


def _instances(tmp: Path, args) -> None:
    from coral_core.inference.sam_models import SamRunner, load_sam

    print("\n== instance stage: SAM ViT-B (random weights)")
    checkpoint = random_sam_checkpoint(tmp)
    runner = SamRunner(load_sam(checkpoint, device=args.device)[0])
    photo = quadrat_photos(1, 1920, args.data)[0]
    height, width = photo.shape[:2]
    encoder = _clock(lambda: runner.set_image(photo), args.device, 1)
    print(f"image encoder on a {width}x{height} photo: {encoder:.2f}s")
    rng = np.random.default_rng(0)
    boxes = []
    for _ in range(16):
        x, y = rng.integers(0, width - 200), rng.integers(0, height - 200)
        w, h = rng.integers(40, 200, size=2)
        boxes.append((x, y, x + w, y + h))
    prompts = np.array(boxes, dtype=np.float64)
    decode = _clock(lambda: runner.predict_boxes(prompts), args.device, args.repeats)
    print(
        f"16 box prompts decoded: {decode:.2f}s ({decode / 16 * 1e3:.0f} ms per colony, masks "
        f"at {width}x{height})"
    )


if __name__ == "__main__":
    sys.exit(main())
