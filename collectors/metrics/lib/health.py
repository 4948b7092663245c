"""Each run's outcome and running totals, kept in the collector's state directory as
`health.json` for the unit's metrics endpoint (`python3 -m workload exporter`), which reads it
whether or not InfluxDB is up. The `collector_run` point says the same per run in InfluxDB.

    {"version": 1, "last_run_started": 1764831600.2, "last_run_ended": 1764831601.5,
     "last_run_ok": true, "last_success": 1764831601.5, "consecutive_failures": 0,
     "runs_total": 12, "points_written_total": 840, "points_dropped_total": 0,
     "spooled_points": 0}

Times are seconds since the epoch. A missing or unreadable file starts the totals afresh.
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

FILE_NAME = "health.json"
VERSION = 1


def record_run(
    state_dir: Path,
    *,
    started: float,
    ended: float,
    ok: bool,
    written: int,
    dropped: int,
    spooled_now: int,
) -> dict[str, Any]:
    """Add one run to `state_dir/health.json` (replaced atomically); the new record."""
    path = state_dir / FILE_NAME
    try:
        previous = json.loads(path.read_text())
        if not isinstance(previous, dict) or previous.get("version") != VERSION:
            previous = {}
    except (OSError, ValueError):
        previous = {}

    def total(key: str) -> int:
        value = previous.get(key, 0)
        return value if isinstance(value, int) and value >= 0 else 0

    record = {
        "version": VERSION,
        "last_run_started": started,
        "last_run_ended": ended,
        "last_run_ok": ok,
        "last_success": ended if ok else previous.get("last_success"),
        "consecutive_failures": 0 if ok else total("consecutive_failures") + 1,
        "runs_total": total("runs_total") + 1,
        "points_written_total": total("points_written_total") + written,
        "points_dropped_total": total("points_dropped_total") + dropped,
        "spooled_points": spooled_now,
    }
    state_dir.mkdir(parents=True, exist_ok=True, mode=0o700)
    partial = state_dir / f".{FILE_NAME}.partial"
    partial.write_text(json.dumps(record, sort_keys=True) + "\n")
    os.replace(partial, path)
    return record
