"""Collectors shaped like the original ubuntu-release-metrics ones write what the original
framework wrote: each collector's points go through this framework into one database and,
as the original's `InfluxDBClient.write_points` sent them, into another, and the two must
hold the same series and values."""

from __future__ import annotations

import json
from datetime import datetime, timezone
from typing import Any

import pytest
from influxdb import InfluxDBClient
from metrics.lib import helpers
from metrics.lib.basemetric import Metric
from metrics.testing import InfluxServer, UpstreamServer

# Recorded answers, cut down to what the collectors read.
SERIES = {
    "entries": [
        {"name": "plucky", "devel": True, "queues": {"New": 4, "Unapproved": 17}},
        {"name": "noble", "devel": False, "queues": {"New": 0, "Unapproved": 9}},
    ]
}
BUILDS = [
    {"image": "ubuntu-server", "arch": "amd64", "finished": "2026-12-01T06:12:09+00:00",
     "size": 2_147_483_648, "duration": 812.5, "published": True},
    {"image": "ubuntu-base", "arch": None, "finished": "2026-12-01T07:00:00.250000+00:00",
     "size": 31_337, "duration": 95.0, "published": False},
]  # fmt: skip


class QueuesLikeTheOriginal(Metric):
    """upload_queues' shape: it reads its upstream in `__init__`, before `Metric.__init__`,
    which it calls with no arguments; a bool tag; a list returned."""

    base_url = ""

    def __init__(self) -> None:
        self.series = helpers.fetch_json(f"{self.base_url}/series")
        super().__init__()

    def collect(self) -> list[dict[str, Any]]:
        return [
            {
                "measurement": "ubuntu_queue_size",
                "fields": {"count": series["queues"][status]},
                "tags": {"devel": series["devel"], "status": status, "release": series["name"]},
            }
            for series in self.series["entries"]
            for status in ("Unapproved", "New")
        ]


class ImagesLikeTheOriginal(Metric):
    """images' shape: a tag that may be None (left out), `time` as a datetime, an int too big
    for 32 bits, a float and a bool field."""

    base_url = ""

    def collect(self) -> list[dict[str, Any]]:
        return [
            {
                "measurement": "image_build",
                "time": datetime.fromisoformat(build["finished"]),
                "tags": {"image": build["image"], "arch": build["arch"]},
                "fields": {
                    "size": build["size"],
                    "duration": build["duration"],
                    "published": build["published"],
                },
            }
            for build in helpers.fetch_json(f"{self.base_url}/builds")
        ]


def stored(influx: InfluxServer, database: str, measurement: str, timed: bool) -> dict[str, Any]:
    """The series keys and the rows, their time left out where the collector gave none."""
    series = influx.query(f'SHOW SERIES FROM "{measurement}"', database)
    rows = influx.query(f'SELECT * FROM "{measurement}"', database)  # noqa: S608
    if not timed:
        rows = [{key: value for key, value in row.items() if key != "time"} for row in rows]
    return {
        "series": sorted(row["key"] for row in series),
        "rows": sorted(json.dumps(row, sort_keys=True) for row in rows),
    }


@pytest.mark.parametrize("timed", [False, True], ids=["queues", "images"])
def test_points_land_as_the_original_framework_wrote_them(
    influx: InfluxServer, database: str, monkeypatch: pytest.MonkeyPatch, timed: bool
) -> None:
    helpers.clear_cache()
    routes = {"/series": (200, json.dumps(SERIES)), "/builds": (200, json.dumps(BUILDS))}
    with UpstreamServer(routes) as upstream:  # type: ignore[arg-type]
        monkeypatch.setattr(QueuesLikeTheOriginal, "base_url", upstream.url)
        monkeypatch.setattr(ImagesLikeTheOriginal, "base_url", upstream.url)
        metric = ImagesLikeTheOriginal() if timed else QueuesLikeTheOriginal()
        metric.run()
        points = metric.collect()
    measurement = points[0]["measurement"]
    original = f"{database}_original"
    influx.create_database(original)
    client = InfluxDBClient(influx.host, influx.port, database=original)
    assert client.write_points(points)
    client.close()

    ours = stored(influx, database, measurement, timed)
    theirs = stored(influx, original, measurement, timed)
    assert ours == theirs
    assert len(ours["rows"]) == len(points)
    if timed:
        assert "image_build,image=ubuntu-base" in ours["series"]  # the None tag left out
        first = json.loads(ours["rows"][0])
        assert first["time"] == "2026-12-01T06:12:09Z"
    else:
        assert "ubuntu_queue_size,devel=True,release=plucky,status=New" in ours["series"]


def test_the_shapes_are_what_the_comparison_needs() -> None:
    """The comparison above is only as good as its inputs: bool and None tags, a datetime."""
    assert {series["devel"] for series in SERIES["entries"]} == {True, False}
    assert None in {build["arch"] for build in BUILDS}
    assert datetime.fromisoformat(BUILDS[0]["finished"]).tzinfo == timezone.utc
