"""Units on a real Ray instance (``run_units`` with ``--cluster local``): one unit kills its
own worker process once, one raises a user error, one a bug; then workers that cannot start.

Run as a script by ``test_cluster.py`` inside network and PID namespaces of its own with only
loopback (``unshare --net --pid --fork --mount-proc``); prints the outcomes as one JSON line.
The work functions live here, in ``__main__``, so Ray ships them to its workers by value.
"""

from __future__ import annotations

import functools
import json
import os
import signal
import sys
from pathlib import Path

from coral_core.cluster import ClusterOptions, run_units
from coral_core.errors import CoralsegError


def make_worker(marker_dir: str):
    def work(unit: str) -> str:
        if unit == "dies-once":
            marker = Path(marker_dir) / "died"
            if not marker.exists():
                marker.touch()
                os.kill(os.getpid(), signal.SIGKILL)  # as the OOM killer or a lost node would
        if unit == "unreadable.jpg":
            raise CoralsegError("cannot read image unreadable.jpg: not an image")
        if unit == "bug":
            raise KeyError("no such key")
        return f"{unit} done in process {os.getpid()}"

    return work


def cannot_start():
    raise CoralsegError("config model.py does not exist")


def outcomes(units, make, options) -> list[dict]:
    return [
        {"unit": o.unit, "result": o.result, "error": o.error, "worker": o.worker}
        for o in run_units(units, make, options)
    ]


def main() -> int:
    import ray

    ray.init(num_cpus=2, include_dashboard=False, object_store_memory=100 * 2**20)
    options = ClusterOptions(address="local", workers=2, max_attempts=2, start_timeout=60)
    units = ["a", "dies-once", "unreadable.jpg", "bug", "b", "c"]
    report = {"run": outcomes(units, functools.partial(make_worker, sys.argv[1]), options)}
    report["cannot_start"] = outcomes(["a", "b"], cannot_start, options)
    ray.shutdown()
    print(json.dumps(report))
    return 0


if __name__ == "__main__":
    sys.exit(main())
