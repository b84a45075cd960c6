"""A real two-node Ray cluster on loopback, and ``coralseg infer --cluster`` runs against it.

Run as a script by ``tests/coralseg/test_infer_cluster.py`` inside network and PID
namespaces of its own (``unshare --net --pid --fork --mount-proc``): only loopback exists
there, so Ray (which probes a public DNS server for the machine's address) falls back to
127.0.0.1 and nothing leaves the machine; every process started here ends with the namespace.

    python ray_scenario.py SPEC.json

SPEC: ``workdir``, ``infer`` (the ``coralseg infer`` arguments, without ``--cluster``),
``scenario``: ``plain`` (one run), ``kill_node`` (SIGKILL the second node's raylet and its
workers once ``after`` units are done, then let the run finish) or ``interrupt`` (Ctrl-C the
run once ``after`` units are done, then run again), and ``doctor`` (also run
``coralseg doctor --cluster``). Prints one JSON line: what happened.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

HEAD_PORT = 6379
CLIENT_PORT = 10001  # Ray Client's default
SECOND_NODE_MANAGER_PORT = 6380
BIN = Path(sys.executable).parent


def ray_start(*args: str, log: Path) -> None:
    common = ["--num-cpus", "1", "--object-store-memory", str(100 * 2**20)]
    common += ["--disable-usage-stats"]
    with log.open("a") as out:
        subprocess.run(
            [str(BIN / "ray"), "start", *args, *common], stdout=out, stderr=out, check=True
        )


def second_node_processes() -> list[int]:
    """The second node's raylet and every process under it (its workers)."""
    parents: dict[int, int] = {}
    raylet = None
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            cmdline = (entry / "cmdline").read_bytes().replace(b"\0", b" ")
            stat = (entry / "stat").read_text()
        except OSError:
            continue
        pid = int(entry.name)
        parents[pid] = int(stat.rsplit(")", 1)[1].split()[1])
        if b"raylet" in cmdline and f"node_manager_port={SECOND_NODE_MANAGER_PORT}".encode() in (
            cmdline
        ):
            raylet = pid
    if raylet is None:
        return []
    tree = [raylet]
    for pid in tree:
        tree.extend(child for child, parent in parents.items() if parent == pid)
    return tree


def done_units(output: Path) -> int:
    records = list((output / "instances").glob("*.json"))
    tiles = list((output / "tiles").glob("*/*.npz"))
    return len(records) + len(tiles)


def _hear_ctrl_c() -> None:
    """Undo an inherited "ignore Ctrl-C": a shell starts background jobs (``cmd &``, as CI
    runners and ``nohup`` do) with SIGINT ignored, and Python then never raises
    KeyboardInterrupt, so the ``interrupt`` scenario's Ctrl-C would not stop the run."""
    signal.signal(signal.SIGINT, signal.SIG_DFL)


def infer(spec: dict, env: dict) -> subprocess.Popen:
    args = [*spec["infer"], "--cluster", f"ray://127.0.0.1:{CLIENT_PORT}"]
    return subprocess.Popen(
        [sys.executable, "-m", "coralseg.cli", "infer", *args],
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        preexec_fn=_hear_ctrl_c,
    )


def wait_for_units(process: subprocess.Popen, output: Path, count: int, limit: float) -> int:
    deadline = time.monotonic() + limit
    while time.monotonic() < deadline and process.poll() is None:
        done = done_units(output)
        if done >= count:
            return done
        time.sleep(0.2)
    if process.poll() is None:
        process.kill()
    said = process.communicate()[0][-3000:]
    raise RuntimeError(f"the run did not reach {count} done units in {limit:g}s:\n{said}")


def main() -> int:
    spec = json.loads(Path(sys.argv[1]).read_text())
    work = Path(spec["workdir"])
    output = Path(spec["infer"][spec["infer"].index("--output-dir") + 1])
    env = dict(os.environ)
    report: dict = {}
    ray_start("--head", "--port", str(HEAD_PORT), "--include-dashboard", "false",
              log=work / "head.log")  # fmt: skip
    ray_start("--address", f"127.0.0.1:{HEAD_PORT}", "--node-manager-port",
              str(SECOND_NODE_MANAGER_PORT), log=work / "node.log")  # fmt: skip
    if spec.get("doctor"):
        doctor = subprocess.run(
            [sys.executable, "-m", "coralseg.cli", "doctor", "--skip-database",
             "--cluster", f"127.0.0.1:{HEAD_PORT}"],
            env=env, capture_output=True, text=True, timeout=300,
        )  # fmt: skip
        report["doctor"] = doctor.stdout + doctor.stderr
    began = time.monotonic()
    run = infer(spec, env)
    if spec["scenario"] == "kill_node":
        report["done_before_kill"] = wait_for_units(run, output, spec["after"], 600)
        victims = second_node_processes()
        for pid in victims:
            os.kill(pid, signal.SIGKILL)
        report["killed"] = len(victims)
    elif spec["scenario"] == "interrupt":
        wait_for_units(run, output, spec["after"], 600)
        run.send_signal(signal.SIGINT)
        first, _ = run.communicate(timeout=300)
        report["interrupted_rc"] = run.returncode
        report["interrupted_output"] = first[-3000:]
        report["done_after_interrupt"] = done_units(output)
        report["records_after_interrupt"] = len(list((output / "instances").glob("*.json")))
        report["tiles_after_interrupt"] = len(list((output / "tiles").glob("*/*.npz")))
        run = infer(spec, env)
    out, _ = run.communicate(timeout=600)
    report.update(rc=run.returncode, output=out[-6000:], seconds=time.monotonic() - began)
    print(json.dumps(report))
    return 0


if __name__ == "__main__":
    sys.exit(main())
