"""The unit runner: in this process, and on a real Ray instance on loopback only."""

from __future__ import annotations

import json
import socket
import sys
import time
from pathlib import Path

import pytest

from coral_core.cluster import ClusterOptions, connect, describe_error, run_units
from coral_core.errors import CoralsegError
from tests.loopback_namespace import (
    ray_environment,
    ray_workdir,
    require_ray_namespace,
    run_in_loopback_namespace,
)

SCENARIO = Path(__file__).with_name("ray_runner_scenario.py")


def test_units_run_here_one_by_one_and_a_failure_stops_only_its_unit() -> None:
    made = []

    def make_worker():
        made.append(1)

        def work(unit: int) -> int:
            if unit == 2:
                raise CoralsegError("cannot read image 2.jpg: not an image")
            if unit == 3:
                raise KeyError("x")
            return unit * 10

        return work

    outcomes = list(run_units([1, 2, 3, 4], make_worker))
    assert made == [1]  # one model copy
    assert [(o.unit, o.result, o.error) for o in outcomes] == [
        (1, 10, None),
        (2, None, "cannot read image 2.jpg: not an image"),
        (3, None, "KeyError: 'x'"),
        (4, 40, None),
    ]
    assert [o.ok for o in outcomes] == [True, False, False, True]
    assert list(run_units([], make_worker)) == [] and made == [1]  # nothing to do: no model


def test_options_are_checked() -> None:
    with pytest.raises(ValueError, match="workers must be at least 1"):
        ClusterOptions(workers=0)
    with pytest.raises(ValueError, match="cpus_per_worker"):
        ClusterOptions(cpus_per_worker=0)
    assert describe_error(OSError("disk\n full")) == "OSError: disk full"


class _RecordingRay:
    """Stands in for the ray module where only the calls to ``ray.init`` matter; its first
    ``failures`` calls raise what the head says when a Ray Client's server did not start."""

    def __init__(self, failures: int = 0) -> None:
        self.inits: list[dict] = []
        self.failures = failures

    def is_initialized(self) -> bool:
        return False

    def init(self, **kwargs) -> None:
        self.inits.append(kwargs)
        if len(self.inits) <= self.failures:
            raise ConnectionAbortedError(
                "Initialization failure from server: RuntimeError: Starting Ray client server "
                "failed. See ray_client_server_23000.err for detailed logs."
            )


def test_an_address_is_checked_before_ray_is_asked() -> None:
    """Ray's own attempt on a dead address retries for minutes, printing its logs and
    ignoring Ctrl-C: a malformed address or a port that accepts nothing is a sentence first."""
    ray = _RecordingRay()
    with pytest.raises(CoralsegError, match="'nonsense:99999' is not a Ray cluster address"):
        connect("nonsense:99999", ray)
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        dead_port = probe.getsockname()[1]  # bound, not listening: connections are refused
        started = time.monotonic()
        address = f"127.0.0.1:{dead_port}"
        with pytest.raises(CoralsegError, match=f"nothing answers at {address}") as caught:
            connect(address, ray)
        assert caught.value.settings == ("cluster",)
        assert time.monotonic() - started < 5.0 and ray.inits == []
    with socket.socket() as head:
        head.bind(("127.0.0.1", 0))
        head.listen()
        address = f" 127.0.0.1:{head.getsockname()[1]} "
        assert connect(address, ray) is True
    assert [call["address"] for call in ray.inits] == [address.strip()]


def test_on_ray_a_dead_worker_costs_only_its_unit(tmp_path: Path) -> None:
    require_ray_namespace()
    with ray_workdir() as work:
        result = run_in_loopback_namespace(
            f"{sys.executable} {SCENARIO} {tmp_path}",
            ray_environment(work),
            timeout=300,
            cwd=work,
        )
    assert result.returncode == 0, result.stderr[-3000:]
    report = json.loads(result.stdout.strip().splitlines()[-1])
    run = {item["unit"]: item for item in report["run"]}
    assert sorted(run) == ["a", "b", "bug", "c", "dies-once", "unreadable.jpg"]
    assert (tmp_path / "died").exists()  # its first worker was killed under it
    assert run["dies-once"]["error"] is None and "done in process" in run["dies-once"]["result"]
    assert run["unreadable.jpg"]["error"] == "cannot read image unreadable.jpg: not an image"
    assert run["bug"]["error"] == "KeyError: 'no such key'"
    assert all(run[u]["error"] is None for u in ("a", "b", "c"))
    assert all(item["worker"].startswith("worker ") for item in report["run"])
    failed = report["cannot_start"]
    assert [item["unit"] for item in failed] == ["a", "b"]
    assert all(
        "no worker could be started" in item["error"]
        and "config model.py does not exist" in item["error"]
        for item in failed
    )


@pytest.mark.parametrize(("failures", "connected"), [(1, True), (2, False)])
def test_a_client_server_that_failed_to_start_is_tried_once_more(failures, connected) -> None:
    with socket.socket() as head:
        head.bind(("127.0.0.1", 0))
        head.listen()
        address = f"ray://127.0.0.1:{head.getsockname()[1]}"
        ray = _RecordingRay(failures)
        if connected:
            assert connect(address, ray) is True
        else:
            with pytest.raises(CoralsegError, match="Starting Ray client server failed"):
                connect(address, ray)
    assert [call["address"] for call in ray.inits] == [address, address]
