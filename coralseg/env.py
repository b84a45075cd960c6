"""Command defaults from environment variables and a ``.env`` file.

Every ``coralseg`` option that can be configured this way reads ``CORALSEG_<NAME>``; a flag
on the command line always wins, then the real environment, then ``./.env``.
"""

from __future__ import annotations

import os
from functools import lru_cache
from pathlib import Path

from dotenv import dotenv_values

PREFIX = "CORALSEG_"


@lru_cache(maxsize=1)
def _dotenv() -> dict[str, str]:
    path = Path.cwd() / ".env"
    if not path.is_file():
        return {}
    return {k: v for k, v in dotenv_values(path).items() if v is not None}


def env_default(name: str, default: str | None = None) -> str | None:
    """Value of ``CORALSEG_<name>`` from the environment, else from ./.env, else ``default``."""
    key = PREFIX + name
    if key in os.environ:
        return os.environ[key]
    return _dotenv().get(key, default)


def env_help(name: str) -> str:
    """The help-text suffix naming an option's variable."""
    return f" [env: {PREFIX}{name}]"
