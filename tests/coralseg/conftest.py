"""Fixtures of the coralseg command tests: the fake CVAT server (tests/fake_cvat)."""

from tests.fake_cvat.fixtures import fake_cvat  # noqa: F401
