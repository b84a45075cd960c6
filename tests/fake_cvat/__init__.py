"""A fake CVAT server for tests: real HTTP on 127.0.0.1, answers shaped like CVAT 2.80's REST
API so that the real ``cvat-sdk`` client works against it.

* :mod:`.state` -- the in-memory world (users, projects, labels, tasks, jobs, frames, shapes)
  and the helpers tests use to build and change it;
* :mod:`.server` -- the FastAPI app and :class:`FakeCvatServer`, which runs it in a thread
  (its module docstring lists the endpoints);
* :mod:`.webhooks` -- webhook deliveries as CVAT sends them (signed, retried);
* :mod:`.fixtures` -- pytest fixtures (``fake_cvat``), imported by the conftest of the test
  folders that use them.

Typical use::

    state = FakeCvatState()
    state.add_user("alice", "secret")
    project = state.add_project("reef", labels=["Acropora", "Porites"])
    task = state.add_task(project, "q1", [make_frame("a.jpg", 64, 48)], completed=True)
    state.add_shape(task, 0, "Acropora", "polygon", [1, 1, 30, 2, 20, 25])
    with running_fake_cvat(state) as server:
        client = cvat_sdk.make_client(server.url, credentials=("alice", "secret"))
"""

from .server import FakeCvatServer, create_app, running_fake_cvat
from .state import (
    CVAT_VERSION,
    FakeCvatError,
    FakeCvatState,
    Fault,
    Frame,
    Job,
    Label,
    Project,
    RequestRecord,
    Shape,
    Task,
    User,
    encode_mask,
    make_frame,
)

__all__ = [
    "CVAT_VERSION",
    "FakeCvatError",
    "FakeCvatServer",
    "FakeCvatState",
    "Fault",
    "Frame",
    "Job",
    "Label",
    "Project",
    "RequestRecord",
    "Shape",
    "Task",
    "User",
    "create_app",
    "encode_mask",
    "make_frame",
    "running_fake_cvat",
]
