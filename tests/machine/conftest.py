"""Fixtures of the machine suite: a cached root file system, booted containers running the
charm's workload, a test InfluxDB and a remote collectors branch.

The suite runs only where it can (root, systemd-nspawn, debootstrap, nsenter); elsewhere every
test here is skipped with the reason. See docs/testing.md.
"""

from __future__ import annotations

import contextlib
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).parent))

from machine_harness import (
    CharmUnit,
    Container,
    GitRemote,
    booted,
    cached_rootfs,
    unavailable_reason,
)
from machine_trees import (
    BAD_INTERVAL,
    HANGS,
    RAISES,
    SANDBOX_PROBE,
    SYNTAX_ERROR,
    push_tree,
    ticker,
)
from metrics.testing import InfluxServer

HERE = Path(__file__).parent
DATABASE = "metrics"
COLLECTORS_USER = "collectors"
COLLECTORS_PASSWORD = "machine-test-password"  # a throwaway server on loopback

# The tree most scenarios share: good collectors with two intervals, the bad ones of
# scenario 3 and the sandbox probe of scenario 7, all in one branch, as on a real unit.
STEADY_TREE = {
    "ticker": ticker("3s"),
    "slow_ticker": ticker("7s", measurement="slow_tick"),
    "raises": RAISES,
    "hangs": HANGS,
    "syntax_error": SYNTAX_ERROR,
    "bad_interval": BAD_INTERVAL,
    "sandbox_probe": SANDBOX_PROBE,
}
# Longer than a run that retries its writes to an InfluxDB that is down (scenario 4): a run
# killed at the timeout loses the points it had not spooled yet.
COLLECTOR_TIMEOUT = "15s"


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


@pytest.fixture(scope="session")
def influx() -> Iterator[InfluxServer]:
    """Debian's influxd on loopback with authentication, and a user for the collectors."""
    with InfluxServer(auth=True) as server:
        server.create_database(DATABASE)
        server.create_user(COLLECTORS_USER, COLLECTORS_PASSWORD)
        server.grant(COLLECTORS_USER, DATABASE, "ALL")
        yield server


def influx_credentials(influx: InfluxServer) -> dict[str, object]:
    return {
        "host": influx.host,
        "port": influx.port,
        "username": COLLECTORS_USER,
        "password": COLLECTORS_PASSWORD,
        "database": DATABASE,
    }


@contextlib.contextmanager
def serving_remote(workdir: Path) -> Iterator[GitRemote]:
    remote = GitRemote(workdir)
    workdir.mkdir(parents=True)
    remote.start()
    try:
        yield remote
    finally:
        remote.stop()


@contextlib.contextmanager
def deployed_unit(
    image: Path,
    influx: InfluxServer,
    remote: GitRemote,
    *,
    pull_interval: str = "1h",
) -> Iterator[CharmUnit]:
    """A booted container with the charm's workload installed by `workload.reconcile`."""
    with booted(image) as booted_container:
        unit = CharmUnit(booted_container)
        unit.install_charm_code()
        settings = {
            "repo": remote.url,
            "branch": remote.branch,
            "pull_interval": pull_interval,
            "collector_timeout": COLLECTOR_TIMEOUT,
        }
        unit.report = unit.reconcile(settings, influx_credentials(influx))
        yield unit


@pytest.fixture(scope="session")
def steady_unit(
    machine_image: Path, influx: InfluxServer, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[CharmUnit]:
    """One unit running STEADY_TREE, shared by the scenarios that do not change its branch."""
    with serving_remote(tmp_path_factory.mktemp("steady") / "remote") as remote:
        push_tree(remote, STEADY_TREE, message="collectors for the steady unit")
        with deployed_unit(machine_image, influx, remote) as unit:
            yield unit
