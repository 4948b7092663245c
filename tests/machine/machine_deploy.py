"""How the machine tests set up a unit: the test InfluxDB's users, the remote branch, and
a booted container with the charm's workload installed by `workload.reconcile`.

Shared by conftest.py's fixtures, the scenarios that need their own unit, and the demo.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from pathlib import Path

from machine_harness import CharmUnit, GitRemote, booted
from machine_trees import BAD_INTERVAL, HANGS, RAISES, SANDBOX_PROBE, SYNTAX_ERROR, ticker
from metrics.testing import InfluxServer

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
# Short, so that scenario 3's hanging collector is stopped quickly, yet longer than a run
# usually spends retrying an InfluxDB that is down (scenario 4), so that one exercises the spool
# of a run that gave up rather than of one stopped at the timeout.
COLLECTOR_TIMEOUT = "15s"


def prepare_influx(influx: InfluxServer) -> None:
    """The database and the collectors' user (not an admin), as an operator sets them up."""
    influx.create_database(DATABASE)
    influx.create_user(COLLECTORS_USER, COLLECTORS_PASSWORD)
    influx.grant(COLLECTORS_USER, DATABASE, "ALL")


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
    """A bare repository in `workdir` served by git daemon on loopback until the block ends."""
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
        unit.reconcile(settings, influx_credentials(influx))
        yield unit
