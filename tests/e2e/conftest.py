"""A real platform for the end-to-end tests, started once per session."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.e2e.platform import Platform, free_port


@pytest.fixture(scope="session")
def platform(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Platform]:
    base = tmp_path_factory.mktemp("platform")
    p = Platform(home=base / "paas-home", user_home=base / "user", port=free_port())
    p.user_home.mkdir()
    p.start()
    try:
        yield p
    finally:
        p.stop()


@pytest.fixture()
def workdir(tmp_path: Path) -> Path:
    return tmp_path
