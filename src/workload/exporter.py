"""The unit's metrics endpoint: collector health in Prometheus text format.

`python3 -m workload exporter --address A --port P` serves `/metrics` from
`metrics-exporter.service`. Each scrape reads two kinds of file and nothing else:

- `sync.json` (root's, 0644): the live commit, the scheduled and skipped collectors, their
  intervals, when each was first scheduled, and the last pull;
- each scheduled collector's `health.json` in its private state directory, which the framework
  rewrites after every run (see `collectors/metrics/lib/health.py`). A collector writes that
  file, so it is hostile: read without following a link, at most `HEALTH_LIMIT` bytes, and only
  finite non-negative numbers and booleans are taken from it.

Every metric name starts with `PREFIX`; the table in docs/operating.md says what each means.
"""

from __future__ import annotations

import json
import math
import threading
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

from prometheus_client import start_http_server
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, InfoMetricFamily
from prometheus_client.registry import Collector, CollectorRegistry

from .files import read_below
from .paths import Paths

PREFIX = "ucm_"
HEALTH_LIMIT = 4096
DEFAULT_PORT = 9581


@dataclass(frozen=True)
class CollectorHealth:
    """What the endpoint says of one scheduled collector; None where nothing is known yet."""

    name: str
    interval: float | None
    scheduled_since: float | None
    last_run_started: float | None = None
    last_run_ended: float | None = None
    last_run_ok: bool | None = None
    last_success: float | None = None
    consecutive_failures: float | None = None
    points_written_total: float | None = None
    points_dropped_total: float | None = None
    spooled_points: float | None = None


@dataclass(frozen=True)
class UnitHealth:
    unit: str
    commit: str | None
    source: str
    collectors: list[CollectorHealth]
    skipped: int
    last_pull: float | None
    last_pull_ok: bool | None
    pull_interval: float | None


def read_unit_health(paths: Paths) -> UnitHealth:
    """The unit's health as the files say it now (absent files: nothing known)."""
    try:
        record = json.loads(paths.sync_result.read_text())
        if not isinstance(record, dict):
            record = {}
    except (OSError, ValueError):
        record = {}
    intervals = _mapping(record.get("intervals"))
    since = _mapping(record.get("scheduled_since"))
    collectors = [
        _collector_health(paths, name, _number(intervals.get(name)), _number(since.get(name)))
        for name in _names(record.get("scheduled"))
    ]
    return UnitHealth(
        unit=str(record.get("unit") or ""),
        commit=record.get("commit") if isinstance(record.get("commit"), str) else None,
        source=str(record.get("source_name") or "bundled"),
        collectors=collectors,
        skipped=len(_names(record.get("skipped"))),
        last_pull=_timestamp(record.get("last_pull")),
        last_pull_ok=_flag(record.get("last_pull_ok")),
        pull_interval=_number(record.get("pull_interval")),
    )


def _collector_health(
    paths: Paths, name: str, interval: float | None, since: float | None
) -> CollectorHealth:
    data = read_below(paths.collector_states, Path(name) / "health.json", limit=HEALTH_LIMIT)
    try:
        health = json.loads(data) if data else {}
    except ValueError:
        health = {}
    if not isinstance(health, dict) or health.get("version") != 1:
        health = {}
    numbers = {
        key: _number(health.get(key))
        for key in (
            "last_run_started",
            "last_run_ended",
            "last_success",
            "consecutive_failures",
            "points_written_total",
            "points_dropped_total",
            "spooled_points",
        )
    }
    return CollectorHealth(
        name=name,
        interval=interval,
        scheduled_since=since,
        last_run_ok=_flag(health.get("last_run_ok")),
        **numbers,
    )


class HealthCollector(Collector):
    """Builds every metric from the files at each scrape (a scrape reads a few KiB)."""

    def __init__(self, paths: Paths) -> None:
        self.paths = paths

    def collect(self) -> Iterator[Any]:
        unit = read_unit_health(self.paths)
        per_collector: list[tuple[Any, Any]] = [
            (
                _gauge("collector_last_run_timestamp_seconds", "When the last run ended."),
                lambda c: c.last_run_ended,
            ),
            (
                _gauge(
                    "collector_last_success_timestamp_seconds",
                    "When the last successful run ended; until the first success, when the"
                    " collector was first scheduled on this unit.",
                ),
                lambda c: c.last_success if c.last_success is not None else c.scheduled_since,
            ),
            (
                _gauge("collector_last_run_ok", "1 if the last run wrote all its points, else 0."),
                lambda c: None if c.last_run_ok is None else float(c.last_run_ok),
            ),
            (
                _gauge("collector_consecutive_failures", "Failed runs since the last success."),
                lambda c: c.consecutive_failures,
            ),
            (
                _gauge("collector_last_run_duration_seconds", "How long the last run took."),
                _duration,
            ),
            (
                _gauge("collector_interval_seconds", "The collector's RUN_INTERVAL."),
                lambda c: c.interval,
            ),
            (
                _counter("collector_points_written", "Points written to InfluxDB."),
                lambda c: c.points_written_total,
            ),
            (
                _counter(
                    "collector_points_dropped",
                    "Points lost: refused by InfluxDB, or pushed out of a full spool.",
                ),
                lambda c: c.points_dropped_total,
            ),
            (
                _gauge(
                    "collector_spooled_points",
                    "Points waiting in the collector's spool for InfluxDB.",
                ),
                lambda c: c.spooled_points,
            ),
        ]
        for family, value_of in per_collector:
            for collector in unit.collectors:
                value = value_of(collector)
                if value is not None:
                    family.add_metric([collector.name], value)
            yield family

        info = InfoMetricFamily(
            f"{PREFIX}commit", "The live collectors tree.", labels=["commit", "source"]
        )
        if unit.commit:
            info.add_metric([unit.commit, unit.source], {})
        yield info
        unit_info = InfoMetricFamily(
            f"{PREFIX}unit", "The Juju unit this endpoint is on.", labels=["unit"]
        )
        if unit.unit:
            unit_info.add_metric([unit.unit], {})
        yield unit_info
        unit_values = [
            (
                "last_pull_timestamp_seconds",
                "When the collectors branch was last pulled.",
                unit.last_pull,
            ),
            (
                "last_pull_ok",
                "1 if the last pull succeeded, else 0.",
                None if unit.last_pull_ok is None else float(unit.last_pull_ok),
            ),
            ("pull_interval_seconds", "The pull-interval option.", unit.pull_interval),
            (
                "collectors_scheduled",
                "Collectors with a timer on this unit.",
                float(len(unit.collectors)),
            ),
            (
                "collectors_skipped",
                "Collectors left out for a problem (see juju status).",
                float(unit.skipped),
            ),
        ]
        for name, documentation, value in unit_values:
            gauge = GaugeMetricFamily(f"{PREFIX}{name}", documentation)
            if value is not None:
                gauge.add_metric([], value)
            yield gauge


def serve(paths: Paths, address: str, port: int) -> None:
    """Serve /metrics until the process is stopped."""
    registry = CollectorRegistry(auto_describe=False)
    registry.register(HealthCollector(paths))
    start_http_server(port, addr=address, registry=registry)
    threading.Event().wait()


def _gauge(name: str, documentation: str) -> GaugeMetricFamily:
    return GaugeMetricFamily(f"{PREFIX}{name}", documentation, labels=["collector"])


def _counter(name: str, documentation: str) -> CounterMetricFamily:
    return CounterMetricFamily(f"{PREFIX}{name}", documentation, labels=["collector"])


def _duration(collector: CollectorHealth) -> float | None:
    if collector.last_run_started is None or collector.last_run_ended is None:
        return None
    return max(0.0, collector.last_run_ended - collector.last_run_started)


def _number(value: Any) -> float | None:
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        return None
    return float(value) if math.isfinite(value) and value >= 0 else None


def _flag(value: Any) -> bool | None:
    return value if isinstance(value, bool) else None


def _mapping(value: Any) -> dict[str, Any]:
    return value if isinstance(value, dict) else {}


def _names(value: Any) -> list[str]:
    if not isinstance(value, list):
        return []
    return [name for name in value if isinstance(name, str) and name.isidentifier()]


def _timestamp(value: Any) -> float | None:
    if not isinstance(value, str):
        return None
    try:
        moment = datetime.strptime(value, "%Y-%m-%dT%H:%M:%SZ")
    except ValueError:
        return None
    return moment.replace(tzinfo=timezone.utc).timestamp()
