"""`python3 -m workload`: what the pull timer runs and what an operator uses on a unit.

python3 -m workload render --collectors DIR --output DIR   unit files for a collectors tree
python3 -m workload sync                                   pull the branch and reschedule
python3 -m workload status                                 collectors, as list-collectors
python3 -m workload run NAME [--dry-run]                   run one collector now
python3 -m workload check stale|failing|pull [--url URL]   a Nagios check (docs/operating.md)
"""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Sequence
from pathlib import Path

from . import checks
from .discovery import discover_collectors
from .paths import Paths
from .service import list_collectors, run_collector, sync
from .settings import Settings
from .systemd import SystemctlError
from .units import UnitOptions, render_units, write_units


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python3 -m workload", description="ubuntu-community-metrics on this unit"
    )
    parser.add_argument(
        "--root", type=Path, default=Path("/"), help=argparse.SUPPRESS
    )  # tests run against a temporary root
    commands = parser.add_subparsers(dest="command", required=True)

    render = commands.add_parser("render", help="write the unit files for a collectors tree")
    render.add_argument("--collectors", type=Path, required=True, help="folder holding metrics/")
    render.add_argument("--output", type=Path, required=True, help="folder to write units into")
    render.add_argument("--collector-timeout", default="10m")
    render.add_argument("--pull-interval", default="1h")
    render.add_argument("--dry-run", action="store_true", help="render collectors in dry-run")
    render.add_argument(
        "--unit",
        default="",
        help="only the timers this unit owns (e.g. ubuntu-community-metrics/0)",
    )
    render.add_argument(
        "--peers", default="", help="the application's other units, comma-separated (with --unit)"
    )

    commands.add_parser("sync", help="pull the collectors branch and apply the units")
    status = commands.add_parser("status", help="show the collectors and the last pull")
    status.add_argument("--json", action="store_true", help="machine-readable output")
    run = commands.add_parser("run", help="run one collector now and show its log")
    run.add_argument("name")
    run.add_argument("--dry-run", action="store_true", help="print the points, write none")

    exporter = commands.add_parser("exporter", help="serve the collectors' health metrics")
    exporter.add_argument("--address", default="127.0.0.1", help="IP address to listen on")
    exporter.add_argument("--port", type=int, default=9581, help="TCP port to listen on")

    check = commands.add_parser("check", help="a Nagios check of the collectors or the pull")
    check.add_argument("kind", choices=checks.KINDS)
    check.add_argument("--url", default=checks.DEFAULT_URL, help="the metrics endpoint")
    check.add_argument("--unit", default="<unit>", help="the Juju unit, for the fixes shown")

    args = parser.parse_args(argv)
    if args.command == "check":
        return checks.main([args.kind, "--url", args.url, "--unit", args.unit])
    if args.command == "exporter":
        from . import exporter as endpoint  # prometheus_client: only this command needs it

        endpoint.serve(Paths(args.root), args.address, args.port)
        return 0
    try:
        if args.command == "render":
            return _render(args)
        if args.command == "sync":
            return _sync(args.root)
        if args.command == "status":
            return _status(args.root, as_json=args.json)
        return _run(args.root, args.name, dry_run=args.dry_run)
    except SystemctlError as error:
        print(error, file=sys.stderr)
        return 1


def _render(args: argparse.Namespace) -> int:
    tree: Path = args.collectors
    if not (tree / "metrics" / "collectors").is_dir():
        print(
            f"{tree} has no metrics/collectors folder: pass the collectors tree", file=sys.stderr
        )
        return 2
    collectors = discover_collectors(tree)
    for collector in collectors:
        if collector.problem:
            print(f"skipped {collector.name}: {collector.problem}", file=sys.stderr)
    peers = tuple(peer.strip() for peer in args.peers.split(",") if peer.strip())
    if peers and not args.unit:
        print("--peers needs --unit: the unit whose timers to render", file=sys.stderr)
        return 2
    if args.unit:
        mine = set(Settings(unit=args.unit, peers=peers).owned([c.name for c in collectors]))
        collectors = [c for c in collectors if c.problem is not None or c.name in mine]
    options = UnitOptions(
        collector_timeout=args.collector_timeout,
        pull_interval=args.pull_interval,
        dry_run=args.dry_run,
    )
    try:
        units = render_units(collectors, options)
    except ValueError as error:
        print(f"cannot render units: {error}", file=sys.stderr)
        return 2
    for path in write_units(units, args.output):
        print(path)
    return 0


def _sync(root: Path) -> int:
    result = sync(root=root)
    print(f"commit: {result.old_commit or 'none'} -> {result.new_commit or 'none'}")
    if result.added:
        print(f"added: {', '.join(result.added)}")
    if result.removed:
        print(f"removed: {', '.join(result.removed)}")
    for problem in result.problems:
        print(f"problem: {problem}", file=sys.stderr)
    return 1 if result.problems else 0


def _status(root: Path, *, as_json: bool) -> int:
    collectors = list_collectors(root=root)
    try:
        record = json.loads(Paths(root).sync_result.read_text())
    except (FileNotFoundError, ValueError):
        record = {}
    if as_json:
        print(
            json.dumps(
                {
                    "commit": record.get("commit"),
                    "last_pull": record.get("last_pull"),
                    "problems": record.get("problems", []),
                    "collectors": [vars(c) for c in collectors],
                },
                indent=2,
            )
        )
        return 0
    commit, last_pull = record.get("commit") or "none", record.get("last_pull") or "never"
    print(f"commit: {commit}  last pull: {last_pull}")
    for problem in record.get("problems", []):
        print(f"problem: {problem}")
    rows = [("NAME", "INTERVAL", "LAST-RESULT", "LAST-RUN", "NEXT-RUN", "PROBLEM")]
    rows += [
        (
            c.name,
            c.interval,
            c.last_result or "-",
            c.last_run or "-",
            c.next_run or "-",
            c.problem or "-",
        )
        for c in collectors
    ]
    widths = [max(len(row[i]) for row in rows) for i in range(len(rows[0]))]
    widths[-1] = 0  # the problem column is last and as long as it needs
    for row in rows:
        cells = [cell.ljust(width) for cell, width in zip(row, widths, strict=True)]
        print("  ".join(cells).rstrip())
    return 0


def _run(root: Path, name: str, *, dry_run: bool) -> int:
    try:
        result = run_collector(name, dry_run=dry_run, root=root)
    except ValueError as error:
        print(error, file=sys.stderr)
        return 2
    print(result.log_tail)
    print(f"exit status: {result.exit_status}", file=sys.stderr)
    return 0 if result.exit_status == 0 else 1


if __name__ == "__main__":
    sys.exit(main())
