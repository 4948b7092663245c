"""`./dev run NAME`: a collector author's first run, from a fresh clone, against a throwaway
InfluxDB, with what landed printed."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

from metrics.testing import UpstreamServer

REPOSITORY = Path(__file__).resolve().parents[2]
SCRIPT = REPOSITORY / "tests" / "tools" / "try_collector.py"
RECORDED = REPOSITORY / "collectors" / "tests" / "recorded" / "autopkgtest_queues.json"


def try_collector(*args: str, upstream: str) -> subprocess.CompletedProcess[str]:
    env = {"PATH": os.environ["PATH"], "AUTOPKGTEST_URL": upstream}
    return subprocess.run(
        [sys.executable, str(SCRIPT), "autopkgtest_queues", *args],
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )


def test_a_run_writes_into_a_throwaway_influxdb_and_shows_what_landed() -> None:
    with UpstreamServer({"/queues.json": (200, RECORDED.read_text())}) as upstream:
        result = try_collector(upstream=upstream.url)

    assert result.returncode == 0, result.stderr
    lines = result.stdout.splitlines()
    assert lines[0].startswith("== a throwaway InfluxDB on http://127.0.0.1:")
    assert "== autopkgtest_queues exited 0; what landed:" in lines
    assert any(line.split() == ["autopkgtest_queue_size", "5", "points"] for line in lines)
    assert any(
        line.strip().startswith("collector_run: ok=True, points_written=5") for line in lines
    )


def test_a_dry_run_prints_the_points_and_starts_no_influxdb() -> None:
    with UpstreamServer({"/queues.json": (200, RECORDED.read_text())}) as upstream:
        result = try_collector("--dry-run", upstream=upstream.url)

    assert result.returncode == 0, result.stderr
    assert "throwaway InfluxDB" not in result.stdout
    assert len(result.stdout.splitlines()) == 5
    assert all(line.startswith("autopkgtest_queue_size,") for line in result.stdout.splitlines())
