"""Fixtures of the machine suite: a cached root file system, a booted container, a remote.

The suite runs only where it can (root, systemd-nspawn, debootstrap); elsewhere every test
here is skipped with the reason. See docs/testing.md.
"""

from __future__ import annotations

import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).parent))

from machine_harness import Container, GitRemote, booted, cached_rootfs, unavailable_reason

HERE = Path(__file__).parent


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    reason = unavailable_reason()
    for item in items:
        if HERE in Path(str(item.path)).parents:
            item.add_marker(pytest.mark.machine)
            if reason:
                item.add_marker(pytest.mark.skip(reason=reason))


@pytest.fixture(scope="session")
def machine_image() -> Path:
    """The cached Debian root file system (built by debootstrap on the first run)."""
    return cached_rootfs(log=lambda line: print(f"machine: {line}", file=sys.stderr))


@pytest.fixture
def container(machine_image: Path) -> Iterator[Container]:
    """A freshly booted throwaway container, powered off and deleted after the test."""
    with booted(machine_image) as booted_container:
        yield booted_container


@pytest.fixture
def remote(tmp_path: Path) -> Iterator[GitRemote]:
    git_remote = GitRemote(tmp_path / "remote")
    git_remote.workdir.mkdir()
    git_remote.start()
    try:
        yield git_remote
    finally:
        git_remote.stop()
