"""The metrics endpoint, served by `python3 -m workload exporter` in its own process and scraped
over HTTP, reading the files a unit really has: sync.json as sync writes it, and health.json as
the collectors' framework writes it after a run."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

from metrics.testing import InfluxServer, free_port
from prometheus_client.parser import text_string_to_metric_families

from workload.paths import Paths

REPOSITORY = Path(__file__).resolve().parents[2]
COLLECTORS = REPOSITORY / "collectors"


def write_sync_record(paths: Paths, **record: object) -> None:
    paths.sync_result.parent.mkdir(parents=True, exist_ok=True)
    paths.sync_result.write_text(json.dumps(record))


# A collector of one point, run with this repository's framework.
ONE_POINT = {
    "__init__.py": (
        'RUN_INTERVAL = "1m"\n'
        "from metrics.lib.basemetric import Metric\n"
        "class OnePoint(Metric):\n"
        "    def collect(self):\n"
        '        return [{"measurement": "one", "fields": {"value": 1}}]\n'
        "def run_metric(dry_run=False, verbose=False):\n"
        "    OnePoint(dry_run, verbose).run()\n"
    ),
    "__main__.py": (
        "import sys\nfrom metrics.lib.basemetric import main\nfrom . import run_metric\n"
        "sys.exit(main(run_metric))\n"
    ),
}


def collectors_tree(folder: Path) -> Path:
    shutil.copytree(COLLECTORS / "metrics" / "lib", folder / "metrics" / "lib")
    for name in ("metrics/__init__.py", "metrics/collectors/__init__.py"):
        (folder / name).parent.mkdir(parents=True, exist_ok=True)
        shutil.copy(COLLECTORS / name, folder / name)
    for name in ("one_point", "also_one"):
        (folder / "metrics" / "collectors" / name).mkdir()
        for file_name, text in ONE_POINT.items():
            (folder / "metrics" / "collectors" / name / file_name).write_text(text)
    return folder


def run_collector(paths: Paths, tree: Path, name: str, influx: InfluxServer | None) -> None:
    """One run of a collector with the framework, its state where systemd keeps it."""
    env = {
        "PATH": os.environ["PATH"],
        "STATE_DIRECTORY": str(paths.collector_states / name),
        "INFLUXDB_HOSTNAME": influx.host if influx else "127.0.0.1",
        "INFLUXDB_PORT": str(influx.port if influx else free_port()),
        "INFLUXDB_DATABASE": "metrics",
    }
    subprocess.run(
        [sys.executable, "-m", f"metrics.collectors.{name}"],
        cwd=tree,
        env=env,
        capture_output=True,
        timeout=120,
        check=False,
    )


def scrape(url: str) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    with urllib.request.urlopen(url, timeout=10) as response:
        text = response.read().decode()
    return {
        (sample.name, tuple(sorted(sample.labels.items()))): sample.value
        for family in text_string_to_metric_families(text)
        for sample in family.samples
    }


def value(samples: dict, name: str, **labels: str) -> float | None:  # type: ignore[type-arg]
    return samples.get((name, tuple(sorted(labels.items()))))


def test_the_endpoint_reports_what_runs_and_pulls_did(
    endpoint: tuple[Paths, str], tmp_path: Path
) -> None:
    paths, url = endpoint
    tree = collectors_tree(tmp_path / "tree")
    write_sync_record(
        paths,
        commit="0123456789abcdef0123456789abcdef01234567",
        source_name="https://git.example/team/collectors.git",
        scheduled=["one_point", "also_one", "never_ran"],
        skipped=["bad_interval"],
        intervals={"one_point": 60.0, "also_one": 60.0, "never_ran": 3600.0},
        scheduled_since={"one_point": 1764800000, "also_one": 1764800000, "never_ran": 1764800100},
        last_pull="2026-12-04T08:00:00Z",
        last_pull_ok=False,
        pull_interval=300.0,
    )
    with InfluxServer() as influx:
        influx.create_database("metrics")
        run_collector(paths, tree, "one_point", influx)
        run_collector(paths, tree, "one_point", influx)
    run_collector(paths, tree, "also_one", None)  # InfluxDB gone: spooled
    samples = scrape(url)

    ok = value(samples, "ucm_collector_last_success_timestamp_seconds", collector="one_point")
    assert ok is not None
    assert time.time() - 120 < ok <= time.time()
    assert value(samples, "ucm_collector_last_run_ok", collector="one_point") == 1
    assert value(samples, "ucm_collector_points_written_total", collector="one_point") == 2
    assert value(samples, "ucm_collector_points_dropped_total", collector="one_point") == 0
    assert value(samples, "ucm_collector_spooled_points", collector="one_point") == 0
    assert value(samples, "ucm_collector_consecutive_failures", collector="one_point") == 0
    duration = value(samples, "ucm_collector_last_run_duration_seconds", collector="one_point")
    assert duration is not None
    assert 0 <= duration < 60
    ended = value(samples, "ucm_collector_last_run_timestamp_seconds", collector="one_point")
    assert ended == ok

    assert value(samples, "ucm_collector_last_run_ok", collector="also_one") == 0
    assert value(samples, "ucm_collector_consecutive_failures", collector="also_one") == 1
    # Its point and its run's health point wait in its spool.
    assert value(samples, "ucm_collector_spooled_points", collector="also_one") == 2
    # Never succeeded: stale counts from when it was first scheduled.
    assert (
        value(samples, "ucm_collector_last_success_timestamp_seconds", collector="also_one")
        == 1764800000
    )
    assert value(samples, "ucm_collector_last_run_ok", collector="never_ran") is None
    assert value(samples, "ucm_collector_interval_seconds", collector="never_ran") == 3600

    assert (
        value(
            samples,
            "ucm_commit_info",
            commit="0123456789abcdef0123456789abcdef01234567",
            source="https://git.example/team/collectors.git",
        )
        == 1
    )
    assert value(samples, "ucm_last_pull_timestamp_seconds") == 1796371200
    assert value(samples, "ucm_last_pull_ok") == 0
    assert value(samples, "ucm_pull_interval_seconds") == 300
    assert value(samples, "ucm_collectors_scheduled") == 3
    assert value(samples, "ucm_collectors_skipped") == 1


def test_a_collectors_health_file_is_read_as_hostile(
    endpoint: tuple[Paths, str], tmp_path: Path
) -> None:
    paths, url = endpoint
    secret = tmp_path / "root-only"
    secret.write_text(json.dumps({"version": 1, "points_written_total": 99}))
    names = ["linked", "huge", "garbage", "negative", "fine"]
    write_sync_record(paths, scheduled=[*names, "../escape", "a b"])
    states = paths.collector_states
    for name in names:
        (states / name).mkdir(parents=True)
    (states / "linked" / "health.json").symlink_to(secret)
    (states / "huge" / "health.json").write_text(
        json.dumps({"version": 1, "points_written_total": 5, "pad": "x" * 8192})
    )
    (states / "garbage" / "health.json").write_text("{not json")
    (states / "negative" / "health.json").write_text(
        json.dumps({"version": 1, "points_written_total": -3, "spooled_points": float("nan"),
                    "last_run_ok": "yes", "consecutive_failures": True})
    )  # fmt: skip
    (states / "fine" / "health.json").write_text(
        json.dumps({"version": 1, "points_written_total": 7})
    )

    samples = scrape(url)

    written = {
        dict(labels)["collector"]: sample
        for (name, labels), sample in samples.items()
        if name == "ucm_collector_points_written_total"
    }
    assert written == {"fine": 7}
    assert not [
        labels for (name, labels), _ in samples.items() if name.startswith("ucm_collector_")
        and dict(labels).get("collector") in ("../escape", "a b")
    ]  # fmt: skip
    assert value(samples, "ucm_collectors_scheduled") == 5
    assert value(samples, "ucm_collector_last_run_ok", collector="negative") is None
    assert value(samples, "ucm_collector_consecutive_failures", collector="negative") is None


def test_a_unit_with_nothing_yet_serves_an_empty_but_valid_page(
    endpoint: tuple[Paths, str],
) -> None:
    _, url = endpoint
    samples = scrape(url)
    assert value(samples, "ucm_collectors_scheduled") == 0
    assert value(samples, "ucm_last_pull_ok") is None
