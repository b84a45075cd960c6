"""``coralseg infer --cluster``: one Ray worker against two, and the cluster path's overhead.

The same folder of quadrat photos (../shared/data/quadrats, resized to ``--side`` px; random
photos where absent) and the same random-weight tiny model (the CPU config, the CLI's
thresholds) run three ways, each with one CPU thread per model copy:

* one process: the units of work done one by one here (``coralseg infer`` without
  ``--cluster``);
* Ray, 1 worker and Ray, 2 workers: the same units on a local Ray instance of 2 CPUs
  (``--cluster local --workers N``), one model copy per worker.

Each way runs once on two photos (warm-up: imports, Ray's worker processes) before it is
timed on the whole folder. What is timed is what ``infer_folder`` runs for the units (the
photo's outputs written to disk), not the folder scan and ``predictions.json``, which are the
same in every way. For each way it prints the wall time from the start to the last unit
(model loading included) and the throughput between the first and the last unit done (the
steady state), then the 2-worker / 1-worker throughput ratio and the 1-worker overhead
against one process.

Ray probes a public DNS server for the machine's address, so the script runs itself inside
network and PID namespaces of its own with only loopback (``unshare``, as root), as the
tests do; nothing leaves the machine, and Ray's processes end with it.

    .venv/bin/python bench/bench_cluster.py [--photos 16] [--side 640]
"""

from __future__ import annotations

import argparse
import functools
import json
import os
import shlex
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
from _common import DATA, REPO, TINY_CONFIG, cli_defaults, device_description, ratio

_INSIDE = "CORALSEG_BENCH_CLUSTER_INSIDE"


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--photos", type=int, default=16, help="photos in the folder")
    parser.add_argument("--side", type=int, default=640, help="their long side in pixels")
    parser.add_argument("--data", type=Path, default=DATA / "quadrats", help="quadrat photos")
    args = parser.parse_args()
    if os.environ.get(_INSIDE) != "1":
        return _rerun_in_private_network()
    return _bench(args)


def _rerun_in_private_network() -> int:
    if os.geteuid() != 0:
        raise SystemExit("bench_cluster.py needs root for a private network namespace (unshare)")
    env = dict(os.environ, OMP_NUM_THREADS="1", RAY_AUTH_MODE="disabled")
    env[_INSIDE] = "1"
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(REPO), env.get("PYTHONPATH")]))
    command = shlex.join([sys.executable, *sys.argv])
    script = f"ip link set lo up && {command}"
    return subprocess.run(
        ["unshare", "--net", "--pid", "--fork", "--mount-proc", "bash", "-c", script], env=env
    ).returncode


def _photos(args: argparse.Namespace, folder: Path) -> list[Path]:
    from _common import quadrat_photos
    from PIL import Image

    folder.mkdir()
    if any(args.data.glob("*.jpg")):
        sources = quadrat_photos(args.photos, args.side, args.data)
        while len(sources) < args.photos:
            sources += sources[: args.photos - len(sources)]
    else:
        rng = np.random.default_rng(0)
        size = (args.side * 3 // 4, args.side, 3)
        sources = [rng.integers(0, 255, size, dtype=np.uint8) for _ in range(args.photos)]
    paths = []
    for index, rgb in enumerate(sources):
        paths.append(folder / f"photo_{index:03d}.png")
        Image.fromarray(rgb).save(paths[-1])
    return paths


def _timed_units(spec, version: str, photos: list[Path], output: Path, cluster) -> dict:
    from coral_core.cluster import run_units
    from coral_core.inference.batch_units import PhotoUnit, UnitWorker

    units = [PhotoUnit(path, path.stem, path.name) for path in photos]
    threads = 1 if cluster is not None else None
    make_worker = functools.partial(UnitWorker.from_spec, spec, output, version, threads)
    start = time.perf_counter()
    times = []
    for outcome in run_units(units, make_worker, cluster):
        if not outcome.ok:
            raise SystemExit(f"{outcome.unit.name} failed: {outcome.error}")
        times.append(time.perf_counter() - start)
    steady = (len(times) - 1) / (times[-1] - times[0]) if len(times) > 1 else float("nan")
    return {"wall_s": times[-1], "first_unit_s": times[0], "photos_per_s": steady}


def _bench(args: argparse.Namespace) -> int:
    import torch
    from _common import random_semantic_checkpoint

    from coral_core.cluster import ClusterOptions, connect
    from coral_core.inference.batch_units import ModelSpec
    from coral_core.inference.instances import RefineSettings
    from coral_core.labels.taxonomy import FAMILIES, MaskEncoding

    torch.set_num_threads(1)  # one thread per model copy, as each worker has
    with tempfile.TemporaryDirectory(prefix="bench", dir="/tmp") as temporary:
        tmp = Path(temporary)  # short: Ray's socket paths have a length limit
        os.environ["RAY_TMPDIR"] = str(tmp / "ray")
        config, checkpoint = random_semantic_checkpoint(TINY_CONFIG, tmp, MaskEncoding(FAMILIES))
        defaults = cli_defaults("infer", "min_threshold", "unsure_threshold", "min_area", "overlap")
        settings = RefineSettings(defaults.min_threshold, defaults.unsure_threshold,
                                  defaults.min_area)  # fmt: skip
        spec = ModelSpec(config, checkpoint, settings=settings, overlap=defaults.overlap)
        version = spec.version()
        photos = _photos(args, tmp / "photos")
        connect("local")
        ways = {
            "one process": None,
            "Ray, 1 worker": ClusterOptions("local", workers=1),
            "Ray, 2 workers": ClusterOptions("local", workers=2),
        }
        for name, cluster in ways.items():
            _timed_units(spec, version, photos[:2], tmp / f"warm-{len(name)}", cluster)
        results = {}
        for index, (name, cluster) in enumerate(ways.items()):
            results[name] = _timed_units(spec, version, photos, tmp / f"out-{index}", cluster)
    print(f"{len(photos)} photos of {args.side} px, tiny model, 1 CPU thread per model copy, "
          f"on {device_description('cpu')}")  # fmt: skip
    print(f"{'way':<16} {'wall (s)':>9} {'first unit (s)':>15} {'photos/s':>9}")
    for name, result in results.items():
        print(f"{name:<16} {result['wall_s']:>9.1f} {result['first_unit_s']:>15.1f} "
              f"{result['photos_per_s']:>9.3f}")  # fmt: skip
    one, two = results["Ray, 1 worker"], results["Ray, 2 workers"]
    plain = results["one process"]
    speedup = two["photos_per_s"] / one["photos_per_s"]
    print(f"2 workers / 1 worker, throughput: {speedup:.2f}x (steady state), "
          f"{ratio(one['wall_s'], two['wall_s'])} (wall)")  # fmt: skip
    overhead = plain["photos_per_s"] / one["photos_per_s"] - 1
    wall_overhead = one["wall_s"] / plain["wall_s"] - 1
    print(f"Ray at 1 worker against one process: {overhead:+.1%} time per photo (steady state), "
          f"{wall_overhead:+.1%} wall")  # fmt: skip
    print(json.dumps(results))
    return 0


if __name__ == "__main__":
    sys.exit(main())
