"""The bundled collectors, fed recorded upstream answers, write what they should to influxd."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlsplit

import pytest
from metrics.collectors.autopkgtest_queues.collector import AutopkgtestQueueSizes, run_metric
from metrics.collectors.launchpad_upload_queues.collector import UploadQueueSizes
from metrics.collectors.sponsoring_queue.collector import SponsoringQueue
from metrics.lib.basemetric import Metric, main
from metrics.lib.errors import CollectorError
from metrics.testing import InfluxServer, Response, UpstreamServer, free_port

RECORDED = Path(__file__).parent / "recorded"


def rows(influx: InfluxServer, database: str, measurement: str) -> list[dict[str, Any]]:
    found = influx.query(f'SELECT * FROM "{measurement}"', database)  # noqa: S608
    return ordered([{k: v for k, v in row.items() if k != "time"} for row in found])


def ordered(points: list[dict[str, Any]]) -> list[dict[str, Any]]:
    return sorted(points, key=lambda point: json.dumps(point, sort_keys=True))


def test_autopkgtest_queue_sizes(
    influx: InfluxServer, database: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    body = (RECORDED / "autopkgtest_queues.json").read_text()
    with UpstreamServer({"/queues.json": (200, body)}) as upstream:
        monkeypatch.setattr(AutopkgtestQueueSizes, "base_url", upstream.url)
        run_metric()

    assert rows(influx, database, "autopkgtest_queue_size") == ordered(
        [
            {"queue": "huge", "release": "noble", "arch": "amd64", "count": 1},
            {"queue": "ubuntu", "release": "noble", "arch": "amd64", "count": 2},
            {"queue": "ubuntu", "release": "noble", "arch": "arm64", "count": 0},
            {"queue": "ubuntu", "release": "noble", "arch": "s390x", "count": 1},
            {"queue": "ubuntu", "release": "oracular", "arch": "amd64", "count": 1},
        ]
    )


def test_launchpad_upload_queue_sizes(
    influx: InfluxServer, database: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    queues = "?ws.op=getPackageUploads&status={}&ws.show=total_size"
    routes: dict[str, Response | list[Response]] = {
        "/devel/ubuntu/series": (200, (RECORDED / "launchpad_series.json").read_text()),
        "/devel/ubuntu/noble" + queues.format("New"): (200, "3"),
        "/devel/ubuntu/noble" + queues.format("Unapproved"): (200, "12"),
        "/devel/ubuntu/oracular" + queues.format("New"): (200, "41"),
        "/devel/ubuntu/oracular" + queues.format("Unapproved"): (200, "0"),
    }
    with UpstreamServer(routes) as upstream:
        monkeypatch.setattr(UploadQueueSizes, "api_url", upstream.url)
        UploadQueueSizes().run()

    assert rows(influx, database, "launchpad_upload_queue_size") == ordered(
        [
            {"series": "noble", "status": "New", "count": 3},
            {"series": "noble", "status": "Unapproved", "count": 12},
            {"series": "oracular", "status": "New", "count": 41},
            {"series": "oracular", "status": "Unapproved", "count": 0},
        ]
    )
    assert not any("bionic" in path for path in upstream.requests)


def test_sponsoring_queue(
    influx: InfluxServer, database: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    with UpstreamServer({"/devel/ubuntu": [(200, "17"), (200, "4")]}) as upstream:
        monkeypatch.setattr(SponsoringQueue, "api_url", upstream.url)
        SponsoringQueue().run()

    subscribers = [parse_qs(urlsplit(path).query)["bug_subscriber"] for path in upstream.requests]
    assert subscribers == [
        ["https://api.launchpad.net/devel/~ubuntu-sponsors"],
        ["https://api.launchpad.net/devel/~ubuntu-security-sponsors"],
    ]
    assert rows(influx, database, "sponsoring_queue_size") == ordered(
        [
            {"team": "ubuntu-sponsors", "count": 17},
            {"team": "ubuntu-security-sponsors", "count": 4},
        ]
    )


def test_upstream_answer_of_the_wrong_shape_names_the_url(
    database: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    with UpstreamServer({"/queues.json": (200, '{"ubuntu": []}')}) as upstream:
        monkeypatch.setattr(AutopkgtestQueueSizes, "base_url", upstream.url)
        with pytest.raises(CollectorError, match=f"{upstream.url}/queues.json: expected objects"):
            run_metric()


COLLECTORS: list[tuple[type[Metric], str, str]] = [
    (AutopkgtestQueueSizes, "base_url", "/queues.json"),
    (UploadQueueSizes, "api_url", "/devel/ubuntu/series?ws.size=300"),
    (SponsoringQueue, "api_url", "/devel/ubuntu?ws.op=searchTasks"),
]


@pytest.mark.parametrize(("collector", "attribute", "path"), COLLECTORS)
def test_unreachable_upstream_fails_the_run_naming_the_url(
    influx: InfluxServer,
    database: str,
    monkeypatch: pytest.MonkeyPatch,
    caplog: pytest.LogCaptureFixture,
    collector: type[Metric],
    attribute: str,
    path: str,
) -> None:
    base = f"http://127.0.0.1:{free_port()}"
    monkeypatch.setattr(collector, attribute, base)

    def run_metric(dry_run: bool = False, verbose: bool = False) -> None:
        collector(dry_run, verbose).run()

    assert main(run_metric, []) == 1

    assert f"cannot fetch {base}{path}" in caplog.text
    (health,) = influx.query('SELECT * FROM "collector_run"', database)
    assert health["ok"] is False
    assert health["error"].startswith(f"cannot fetch {base}{path}")
