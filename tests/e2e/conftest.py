"""The real platforms the end-to-end tests share, each started once per session."""

from __future__ import annotations

import os
import shutil
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.e2e.platform import Platform, running_platform

CAN_RUNC = os.geteuid() == 0 and shutil.which("runc") is not None


@pytest.fixture(scope="session")
def platform(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Platform]:
    """Dynos and builds as host processes."""
    with running_platform(tmp_path_factory.mktemp("platform"), "process") as p:
        yield p


@pytest.fixture(scope="session")
def runc_platform(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Platform]:
    """Dynos and builds in runc containers."""
    if not CAN_RUNC:
        pytest.skip("needs root and runc (CI has both): dynos and builds run in runc containers")
    with running_platform(tmp_path_factory.mktemp("runc-platform"), "runc") as p:
        yield p


@pytest.fixture()
def workdir(tmp_path: Path) -> Path:
    return tmp_path
