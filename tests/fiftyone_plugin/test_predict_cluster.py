"""A view handed to a real Ray cluster from the predict operator, through FiftyOne's delegated
executor, gets the fields the in-process prediction writes, pixel for pixel.

Ray probes a public DNS server for the machine's address, so the cluster runs inside network
and PID namespaces of their own with only loopback (as ``tests/coralseg/ray_scenario.py``):
the outer test starts this file's inner test there (``unshare --net --pid``), where the
private FiftyOne database, the operator and the ``local`` Ray instance it starts all live;
every process ends with the namespace. Slow: it guards what a cluster run puts on samples.
"""

from __future__ import annotations

import os
import sys
from pathlib import Path

import pytest

from tests.fiftyone_plugin.conftest import REPO
from tests.fiftyone_plugin.test_predict_runner import (
    IN_PROCESS,
    RUNNER,
    SETTINGS,
    add_unreadable_photo,
    assert_same_predictions,
    refine_settings,
)
from tests.loopback_namespace import (
    ray_environment,
    ray_workdir,
    require_ray_namespace,
    run_in_loopback_namespace,
)

INSIDE = "CORALSEG_TEST_IN_LOOPBACK_NAMESPACE"  # set for the inner run only

pytestmark = pytest.mark.slow


@pytest.mark.data_guard  # CI runs it: a cluster run must put the in-process predictions on samples
def test_a_view_sent_to_a_ray_cluster_gets_the_in_process_predictions() -> None:
    require_ray_namespace()
    with ray_workdir() as work:
        # FIFTYONE_DEFAULT_DATASET_DIR: where the operator's masks go by default
        env = ray_environment(
            work,
            OMP_NUM_THREADS="1",
            FIFTYONE_DEFAULT_DATASET_DIR=str(work / "fiftyone"),
            **{INSIDE: "1"},
        )
        inner = f"{Path(__file__).relative_to(REPO)}::test_inside_the_namespace"
        pytest_args = f"-m slow -p no:cacheprovider -q --basetemp {work / 'pytest'}"
        result = run_in_loopback_namespace(
            f"{sys.executable} -m pytest {inner} {pytest_args}", env, timeout=1500, cwd=REPO
        )
    said = result.stdout[-4000:] + result.stderr[-2000:]
    assert result.returncode == 0 and "1 passed" in result.stdout, said


def test_inside_the_namespace(reef, tiny_model, tmp_path: Path) -> None:
    """Run by the test above, inside its namespace: the in-process prediction, then the same
    view (and an unreadable photo) through the operator, delegated, on a ``local`` Ray."""
    if os.environ.get(INSIDE) != "1":
        pytest.skip("runs inside the loopback-only namespace of the test above")
    import fiftyone as fo
    import torch

    from fiftyone_plugin.prediction import predict_samples
    from tests.fiftyone_plugin.test_operators import run_delegated

    config, checkpoint = tiny_model
    good = reef.values("id")
    torch.set_num_threads(1)  # as each worker (1 CPU): the same sums, the same pixels
    predict_samples(
        reef,
        config,
        checkpoint,
        instances_field=IN_PROCESS[0],
        semantic_field=IN_PROCESS[1],
        settings=refine_settings(),
    )
    broken = add_unreadable_photo(fo, reef, tmp_path)
    params = {
        "config": str(config),
        "checkpoint": str(checkpoint),
        **SETTINGS,
        "instances_field": RUNNER[0],
        "semantic_field": RUNNER[1],
        "cluster": "local",
        "workers": 2,
        "output_dir": str(tmp_path / "cluster"),
    }
    operation = run_delegated("predict_colonies", reef, params)
    out = operation.result.result
    assert (out["samples"], out["skipped"], out["output_dir"]) == (4, 0, params["output_dir"])
    (failure,) = out["failed"]
    assert failure.startswith(str(tmp_path / "broken.jpg")) and "\n" not in failure
    assert "5/5 units (photos or tiles) done, 1 failed" in _progress_label(operation)
    reef.reload()
    colonies = assert_same_predictions(reef, good, IN_PROCESS, RUNNER)
    assert colonies == out["colonies"] > 0
    assert reef[broken][RUNNER[0]] is None

    # a rerun skips the finished photos (only the unreadable one is tried again)
    again = run_delegated("predict_colonies", reef, params).result.result
    assert (again["skipped"], again["samples"], len(again["failed"])) == (4, 4, 1)
    reef.reload()
    assert assert_same_predictions(reef, good, IN_PROCESS, RUNNER) == colonies


def _progress_label(operation) -> str:
    status = operation.status
    return status.get("label", "") if isinstance(status, dict) else status.label
