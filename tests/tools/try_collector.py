"""`./dev run NAME [--dry-run] [--verbose]`: run one collector of `collectors/` from a fresh
clone, with the project's venv (which has the framework's and the collectors' requirements).

With `--dry-run` the collector prints its points and writes nothing. Without it, a throwaway
InfluxDB (Debian's influxd, on loopback) takes the points, and what landed is printed: every
series with its point count, and the run's `collector_run` health point. Nothing is left behind.
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import tempfile
from pathlib import Path

COLLECTORS = Path(__file__).resolve().parents[2] / "collectors"
sys.path.insert(0, str(COLLECTORS))

from metrics.testing import InfluxServer  # noqa: E402

DATABASE = "metrics"


def run(name: str, *, dry_run: bool, verbose: bool, env: dict[str, str]) -> int:
    argv = [sys.executable, "-m", "metrics", "run", name]
    argv += ["--dry-run"] * dry_run + ["--verbose"] * verbose
    return subprocess.run(argv, cwd=COLLECTORS, env=env, check=False).returncode


def main() -> int:
    parser = argparse.ArgumentParser(description="Run one collector, as a unit would.")
    parser.add_argument("name", help="the collector (a folder of collectors/metrics/collectors)")
    parser.add_argument("-n", "--dry-run", action="store_true", help="print the points only")
    parser.add_argument("-v", "--verbose", action="store_true", help="log debug messages")
    args = parser.parse_args()
    env = {key: value for key, value in os.environ.items() if not key.startswith("INFLUXDB_")}
    if args.dry_run:
        return run(args.name, dry_run=True, verbose=args.verbose, env=env)
    with tempfile.TemporaryDirectory(prefix="collector-state-") as state, InfluxServer() as influx:
        influx.create_database(DATABASE)
        print(f"== a throwaway InfluxDB on {influx.url}, database {DATABASE!r}", flush=True)
        env |= {
            "INFLUXDB_HOSTNAME": influx.host,
            "INFLUXDB_PORT": str(influx.port),
            "INFLUXDB_DATABASE": DATABASE,
            "STATE_DIRECTORY": state,
        }
        code = run(args.name, dry_run=False, verbose=args.verbose, env=env)
        print(f"== {args.name} exited {code}; what landed:")
        for row in influx.query("SHOW MEASUREMENTS", DATABASE):
            print(f"   {row['name']:<32} {influx.count(row['name'], DATABASE)} points")
        for row in influx.query('SELECT * FROM "collector_run"', DATABASE):
            fields = ", ".join(
                f"{key}={row[key]}"
                for key in ("ok", "points_written", "points_spooled", "points_dropped", "error")
            )
            print(f"   collector_run: {fields}")
    return code


if __name__ == "__main__":
    sys.exit(main())
