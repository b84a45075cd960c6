"""Pytest fixtures for the fake CVAT server.

``fake_cvat`` gives a running :class:`FakeCvatServer` with an empty state and one user,
``alice`` / ``secret`` (``server.state.users``); the test fills ``server.state`` with projects
and tasks. The server is stopped after the test, so no thread or port is left behind.

Folders whose tests use it import the fixtures in their ``conftest.py``::

    from tests.fake_cvat.fixtures import fake_cvat  # noqa: F401
"""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from .server import FakeCvatServer
from .state import FakeCvatState

USERNAME = "alice"
PASSWORD = "secret"


@pytest.fixture
def fake_cvat() -> Iterator[FakeCvatServer]:
    """A fake CVAT server on a free loopback port, with the user alice/secret."""
    state = FakeCvatState()
    state.add_user(USERNAME, PASSWORD, email="alice@example.org")
    with FakeCvatServer(state) as server:
        yield server
