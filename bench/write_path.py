"""Write path throughput and memory, all measured in one run against one local influxd.

    .venv/bin/python bench/write_path.py [--sizes 100000 1000000] [--repeats 5]

For each size it writes the same points three ways, each in its own child process (so peak
RSS is that way's alone) and its own database:

  (a) this framework: a Metric whose collect() is a generator, run() streaming 5,000-point
      batches (two requests in flight, its default);
  (b) the original ubuntu-release-metrics way: collect() returns a list and
      InfluxDBClient.write_points(points) sends it in one call;
  (c) the server's limit: the same points encoded beforehand (not timed), posted as
      5,000-line requests over one keep-alive connection;
  (c2) for information: (c) with two connections, two requests in flight as (a) has.

The machine is shared and has two cores, which influxd and the writer share, so other load
moves every figure. To be fair to all, (a), (c) and (c2) run `--repeats` times each (5 by
default), interleaved (c, a, c2, c, a, c2, ...), and the script prints the median and the
best of each and the ratios a/c and a/c2 for both; the load average is printed at the start
and the end. Targets: a >= 85% of c, a >= 2x b, a's peak RSS under 80 MB at 1,000,000
points.

It also prints the encoder's speed against influxdb.line_protocol.make_lines on the same
points, for several shapes of point and a mix of them: CPU time (process_time) of the best of
seven interleaved rounds each, a fresh encoder per round, through `encode_into` as the write
path calls it. Target: >= 5x.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "collectors"))

import requests  # noqa: E402
from influxdb import InfluxDBClient  # noqa: E402
from influxdb.line_protocol import make_lines  # noqa: E402
from metrics.lib.basemetric import Metric  # noqa: E402
from metrics.lib.lineprotocol import LineEncoder  # noqa: E402
from metrics.testing import InfluxServer  # noqa: E402

BASE_TIME = 1_700_000_000 * 10**9
RELEASES = ["focal", "jammy", "noble", "oracular"]
ARCHES = ["amd64", "arm64", "armhf", "ppc64el", "riscv64", "s390x"]
IMPORTANCE = ["Critical", "High", "Medium", "Low"]


def points(count: int) -> Iterator[dict[str, Any]]:
    """Points shaped like a collector's: a few tags, an int and a float field, a time."""
    for i in range(count):
        yield {
            "measurement": "bench_queue",
            "tags": {"release": RELEASES[i % 4], "arch": ARCHES[i % 6], "queue": f"q{i % 50}"},
            "fields": {"count": i, "ratio": i / 7},
            "time": BASE_TIME + i,
        }


class Bench(Metric):
    collector_name = "bench"
    count = 0

    def collect(self) -> Iterator[dict[str, Any]]:
        return points(self.count)


def child(way: str, count: int, port: int, database: str) -> dict[str, Any]:
    """One way, one size, in this (child) process; returns seconds, peak RSS and any error."""
    client = InfluxDBClient("127.0.0.1", port, database=database, timeout=300)
    error = ""
    if way in ("c", "c2"):
        encoder = LineEncoder()
        bodies = []
        batch: list[str] = []
        for index, point in enumerate(points(count)):
            batch.append(encoder.encode(point, index))
            if len(batch) == 5000:
                bodies.append(("\n".join(batch) + "\n").encode())
                batch = []
        if batch:
            bodies.append(("\n".join(batch) + "\n").encode())
        url = f"http://127.0.0.1:{port}/write"

        def post(bodies: Iterator[bytes]) -> None:
            session = requests.Session()
            for body in bodies:  # shared by the threads: each takes the next body left
                response = session.post(url, params={"db": database}, data=body, timeout=300)
                response.raise_for_status()

        shared = iter(bodies)
        threads = [
            threading.Thread(target=post, args=(shared,)) for _ in range(2 if way == "c2" else 1)
        ]
        started = time.perf_counter()
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
    elif way == "b":
        started = time.perf_counter()
        try:
            client.write_points(list(points(count)))
        except Exception as failure:  # the point of (b): what the old way does at scale
            error = f"{type(failure).__name__}: {str(failure)[:80]}"
    else:
        os.environ.update(
            INFLUXDB_HOSTNAME="127.0.0.1",
            INFLUXDB_PORT=str(port),
            INFLUXDB_DATABASE=database,
            STATE_DIRECTORY=tempfile.mkdtemp(prefix="bench-state-"),
        )
        Bench.count = count
        started = time.perf_counter()
        Bench().run()
    seconds = time.perf_counter() - started
    return {"seconds": seconds, "rss_mb": peak_rss_mb(), "error": error}


def peak_rss_mb() -> float:
    # VmHWM, not getrusage(): Linux carries ru_maxrss over from the parent across exec.
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) / 1024
    raise RuntimeError("no VmHWM in /proc/self/status")


def measure(way: str, count: int, influx: InfluxServer, attempt: str) -> dict[str, Any]:
    database = f"bench_{way}_{count}_{attempt}"
    influx.create_database(database)
    output = subprocess.run(
        [sys.executable, __file__, "--child", way, str(count), str(influx.port), database],
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    result = json.loads(output.splitlines()[-1])
    rows = influx.query('SELECT COUNT("count") FROM "bench_queue"', database)
    result["landed"] = rows[0]["count"] if rows else 0
    result["rate"] = count / result["seconds"] if result["landed"] == count else 0.0
    return result


def queue_sizes(count: int) -> list[dict[str, Any]]:
    """autopkgtest-queue-like points: three tags, one int field, a time."""
    return [
        {
            "measurement": "queue_size",
            "tags": {"release": RELEASES[i % 4], "arch": ARCHES[i % 6], "queue": f"q{i % 50}"},
            "fields": {"count": i},
            "time": BASE_TIME + i,
        }
        for i in range(count)
    ]


def bug_counts(count: int) -> list[dict[str, Any]]:
    """Bug-tracker-like points: two tags, an int, a float, a string and a bool field; half
    of them without a time."""
    return [
        {
            "measurement": "bugs",
            "tags": {"package": f"pkg{i % 300}", "importance": IMPORTANCE[i % 4]},
            "fields": {
                "open": i % 97,
                "oldest_days": i / 13,
                "newest": f"LP: #{2_000_000 + i}",
                "release_critical": i % 5 == 0,
            },
            **({"time": BASE_TIME + i} if i % 2 else {}),
        }
        for i in range(count)
    ]


def latencies(count: int) -> list[dict[str, Any]]:
    """Three float fields: the worst case, float formatting (repr) costs both sides alike."""
    return [
        {
            "measurement": "latency",
            "tags": {"host": f"h{i % 20}"},
            "fields": {"p50": i * 0.37, "p99": i * 1.91, "mean": i / 3.3},
            "time": BASE_TIME + i,
        }
        for i in range(count)
    ]


def encoder_ratio(batch: list[dict[str, Any]]) -> tuple[float, float]:
    """Points/s of LineEncoder and its speed over make_lines (CPU time, best of seven)."""
    theirs, ours = [], []
    for _ in range(7):
        started = time.process_time()
        make_lines({"points": batch})
        theirs.append(time.process_time() - started)
        started = time.process_time()
        lines: list[str] = []
        LineEncoder().encode_into(lines, iter(batch), len(batch), 0, None)
        "\n".join(lines)
        ours.append(time.process_time() - started)
    return len(batch) / min(ours), min(theirs) / min(ours)


def summary(results: list[dict[str, Any]]) -> tuple[float, float]:
    """Median and best points/s; a run that lost points counts as 0."""
    rates = [result["rate"] for result in results]
    return statistics.median(rates), max(rates)


def main() -> None:
    parser = argparse.ArgumentParser(description="Write path throughput and memory.")
    parser.add_argument("--sizes", type=int, nargs="+", default=[100_000, 1_000_000])
    parser.add_argument("--repeats", type=int, default=5, help="runs of (a), (c) and (c2)")
    parser.add_argument("--child", nargs=4, metavar=("WAY", "COUNT", "PORT", "DB"))
    args = parser.parse_args()
    if args.child:
        way, count, port, database = args.child
        print(json.dumps(child(way, int(count), int(port), database)))
        return

    # Other work on the machine skews every figure; say how busy it was.
    print("load average at start: {:.1f} {:.1f} {:.1f}".format(*os.getloadavg()))
    shapes = {
        "queue sizes (3 tags, int)": queue_sizes(50_000),
        "bench points (3 tags, int + float)": list(points(50_000)),
        "bugs (2 tags, int, float, str, bool; half no time)": bug_counts(50_000),
    }
    mix = [point for group in zip(*shapes.values(), strict=True) for point in group]
    shapes["mix of the three above, interleaved"] = mix
    shapes["latency (1 tag, three floats; worst case)"] = latencies(50_000)
    print("encoder against make_lines (target >= 5x):")
    for shape, batch in shapes.items():
        rate, speedup = encoder_ratio(batch)
        print(f"  {shape:<52} {rate:>9,.0f} points/s {speedup:5.1f}x")
    with InfluxServer() as influx:
        for count in args.sizes:
            # (a), (c) and (c2) interleaved, so that other load hurts none more than another.
            runs: dict[str, list[dict[str, Any]]] = {"a": [], "c": [], "c2": []}
            for attempt in range(args.repeats):
                for way in ("c", "a", "c2"):
                    runs[way].append(measure(way, count, influx, str(attempt)))
            runs["b"] = [measure("b", count, influx, "0")]
            print(f"\n{count:,} points ({args.repeats} runs of a, c and c2, interleaved)")
            names = {
                "a": "framework",
                "b": "write_points",
                "c": "server limit",
                "c2": "2 connections",
            }
            rates = {}
            for way in ("a", "b", "c", "c2"):
                results = runs[way]
                rates[way] = summary(results)
                median, best = rates[way]
                rss = max(result["rss_mb"] for result in results)
                landed = min(result["landed"] for result in results)
                errors = "; ".join(sorted({result["error"] for result in results} - {""}))
                each = ", ".join(f"{result['rate']:,.0f}" for result in results)
                label = f"({way})"
                print(
                    f"  {label:<4} {names[way]:<13} median {median:>10,.0f}  best {best:>10,.0f}"
                    f" points/s  peak RSS {rss:6.1f} MB  landed {landed:>9,}  {errors}"
                )
                if len(results) > 1:
                    print(f"      each run: {each}")
            (a_median, a_best), (b_rate, _), (c_median, c_best) = (rates[w] for w in "abc")
            print(
                f"  a/c = {a_median / c_median:.2f} (medians), {a_best / c_best:.2f} (bests)"
                " (target >= 0.85)"
            )
            c2_median, c2_best = rates["c2"]
            print(
                f"  a/c2 = {a_median / c2_median:.2f} (medians), {a_best / c2_best:.2f} (bests)"
                " (for information: the same number of requests in flight)"
            )
            print(
                f"  a/b = {a_median / b_rate:.2f} (a's median) (target >= 2)"
                if b_rate
                else "  a/b: (b) lost its points, no ratio (target: a writes them all)"
            )
            if count >= 1_000_000:
                rss = max(result["rss_mb"] for result in runs["a"])
                print(f"  a peak RSS {rss:.1f} MB, the highest of its runs (target < 80 MB)")
    print("load average at end: {:.1f} {:.1f} {:.1f}".format(*os.getloadavg()))


if __name__ == "__main__":
    main()
