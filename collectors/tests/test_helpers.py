"""fetch_json (timeouts, retries, per-run cache) and Counters (running totals to increments)."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from metrics.lib import helpers
from metrics.lib.basemetric import Metric
from metrics.lib.errors import CollectorError
from metrics.lib.helpers import Counters, fetch_json
from metrics.testing import InfluxServer, UpstreamServer, free_port


def test_one_url_is_fetched_once_per_run() -> None:
    with UpstreamServer({"/totals.json": (200, '{"uploads": 5}')}) as upstream:
        first = fetch_json(f"{upstream.url}/totals.json")
        second = fetch_json(f"{upstream.url}/totals.json")

        helpers.clear_cache()
        fetch_json(f"{upstream.url}/totals.json")

    assert first == second == {"uploads": 5}
    assert upstream.requests == ["/totals.json", "/totals.json"]


def test_server_errors_are_retried() -> None:
    with UpstreamServer({"/flaky": [(503, ""), (429, ""), (200, "[1, 2]")]}) as upstream:
        assert fetch_json(f"{upstream.url}/flaky") == [1, 2]

    assert len(upstream.requests) == 3


def test_client_errors_are_not_retried_and_name_the_url() -> None:
    with (
        UpstreamServer({}) as upstream,
        pytest.raises(CollectorError, match=f"cannot fetch {upstream.url}/gone: HTTP 404"),
    ):
        fetch_json(f"{upstream.url}/gone")

    assert len(upstream.requests) == 1


def test_unreachable_and_non_json_name_the_url() -> None:
    url = f"http://127.0.0.1:{free_port()}/queues.json"
    with pytest.raises(CollectorError, match=f"cannot fetch {url}: ConnectionError"):
        fetch_json(url)

    with (
        UpstreamServer({"/page": (200, "<html>")}) as upstream,
        pytest.raises(CollectorError, match=f"{upstream.url}/page did not return JSON"),
    ):
        fetch_json(f"{upstream.url}/page")


def test_counters_turn_totals_into_increments_across_restarts(tmp_path: Path) -> None:
    path = tmp_path / "counters.json"
    noble, jammy = {"series": "noble"}, {"series": "jammy"}

    first = Counters(path)
    assert first.increment("uploads", "count", 100, noble) is None
    assert first.increment("uploads", "count", 7, jammy) is None
    first.save()

    second = Counters(path)
    assert second.increment("uploads", "count", 130, noble) == 30
    assert second.increment("uploads", "count", 7, jammy) == 0
    assert second.increment("uploads", "count", 2, {"series": "oracular"}) is None
    second.save()

    third = Counters(path)
    assert third.increment("uploads", "count", 4, noble) == 4  # upstream counter was reset
    assert third.increment("uploads", "count", 9, jammy) == 2


def test_unsaved_counters_are_forgotten(tmp_path: Path) -> None:
    path = tmp_path / "counters.json"
    Counters(path).increment("uploads", "count", 100)

    assert Counters(path).increment("uploads", "count", 150) is None


def test_corrupt_counters_file_says_what_to_do(tmp_path: Path) -> None:
    path = tmp_path / "counters.json"
    path.write_text("{not json")

    with pytest.raises(CollectorError, match=r"counters.json is not valid JSON .*delete it"):
        Counters(path)


class Uploads(Metric):
    collector_name = "uploads"
    total = 0

    def collect(self) -> Iterator[dict[str, Any]]:
        increment = self.counters.increment("uploads", "count", self.total)
        if increment is not None:
            yield {"measurement": "uploads", "fields": {"new": increment}}


def test_a_collector_counts_increments_between_runs(
    influx: InfluxServer, database: str, tmp_path: Path
) -> None:
    for total in (10, 25, 40):
        Uploads.total = total
        Uploads().run()

    found = influx.query('SELECT "new" FROM "uploads"', database)
    assert [row["new"] for row in found] == [15, 15]
    assert (tmp_path / "state" / "counters.json").is_file()
