"""Fixtures of the machine suite, once per Ubuntu release the charm declares (22.04 and 24.04):
the packed charm, the release's cached root file system, booted containers, a test InfluxDB,
and a unit deployed from a remote collectors branch.

The suite runs only where it can (root, systemd-nspawn, debootstrap, nsenter); elsewhere every
test here is skipped with the reason. See docs/testing.md.
"""

from __future__ import annotations

import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).parent))

from machine_deploy import (
    STEADY_TREE,
    CharmUnit,
    deployed_unit,
    prepare_influx,
    serving_remote,
    unit_image,
)
from machine_harness import Container, booted, signals_unwind, unavailable_reason
from machine_trees import push_tree
from metrics.testing import InfluxServer, ThrowawayCA
from pack import PLATFORMS, pack

HERE = Path(__file__).parent


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    reason = unavailable_reason()
    for item in items:
        if HERE in Path(str(item.path)).parents:
            item.add_marker(pytest.mark.machine)
            if reason:
                item.add_marker(pytest.mark.skip(reason=reason))


@pytest.fixture(scope="session", autouse=True)
def _unwind_on_sigterm() -> Iterator[None]:
    """A cancelled run (SIGTERM from `timeout` or CI) still runs the finalizers below."""
    with signals_unwind():
        yield


def _log(line: str) -> None:
    print(f"machine: {line}", file=sys.stderr)


@pytest.fixture(scope="session", params=sorted(PLATFORMS))
def release(request: pytest.FixtureRequest) -> str:
    """Each test runs on every release; pytest finishes one release before the next."""
    return str(request.param)


@pytest.fixture(scope="session")
def charm(release: str) -> Path:
    """The charm as `charmcraft pack` builds it for the release (cached by its inputs)."""
    return pack(release, log=_log)


@pytest.fixture(scope="session")
def machine_image(release: str) -> Path:
    """The release's cached root file system (built by debootstrap on the first run)."""
    return unit_image(release, _log)


@pytest.fixture
def container(machine_image: Path) -> Iterator[Container]:
    """A freshly booted throwaway container, powered off and deleted after the test."""
    with booted(machine_image) as booted_container:
        yield booted_container


@pytest.fixture(scope="session")
def influx(release: str) -> Iterator[InfluxServer]:
    """Debian's influxd on loopback with authentication, and a user for the collectors; one
    per release, so the units of two releases never write into each other's series."""
    with InfluxServer(auth=True) as server:
        prepare_influx(server)
        yield server


@pytest.fixture(scope="session")
def https_influx(release: str, tmp_path_factory: pytest.TempPathFactory) -> Iterator[InfluxServer]:
    """Like `influx`, but serving HTTPS only, with a certificate for 127.0.0.1 signed by a
    throwaway CA (its PEM: `.https.ca_cert`)."""
    ca = ThrowawayCA(tmp_path_factory.mktemp(f"ca-{release}"))
    certificate = ca.issue(tmp_path_factory.mktemp(f"influxd-tls-{release}"))
    with InfluxServer(auth=True, https=certificate) as server:
        prepare_influx(server)
        yield server


@pytest.fixture(scope="session")
def steady_unit(
    machine_image: Path,
    charm: Path,
    influx: InfluxServer,
    tmp_path_factory: pytest.TempPathFactory,
) -> Iterator[CharmUnit]:
    """One unit running STEADY_TREE, shared by the scenarios that do not change its branch."""
    with serving_remote(tmp_path_factory.mktemp("steady") / "remote") as remote:
        push_tree(remote, STEADY_TREE, message="collectors for the steady unit")
        with deployed_unit(machine_image, charm, influx, remote) as unit:
            yield unit
