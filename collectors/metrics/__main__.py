"""`python3 -m metrics list [--json]`, `python3 -m metrics run NAME [--dry-run] [--verbose]` and
`python3 -m metrics replay NAME` (write a collector's spooled points without running it).

Run from the collectors tree (the folder holding `metrics/`). `list` discovers collectors
statically (it never imports them), exactly as the charm does.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import runpy
import sys
from pathlib import Path

from metrics.lib.discovery import discover_collectors
from metrics.lib.errors import CollectorError

TREE = Path(__file__).resolve().parent.parent


def list_collectors(as_json: bool) -> int:
    collectors = discover_collectors(TREE)
    if as_json:
        print(json.dumps([dataclasses.asdict(c) for c in collectors], indent=2))
    else:
        width = max((len(c.name) for c in collectors), default=4)
        for collector in collectors:
            problem = collector.problem or ""
            print(f"{collector.name:<{width}}  {collector.interval:<10}  {problem}".rstrip())
    return 1 if any(c.problem for c in collectors) else 0


def run_collector(name: str, dry_run: bool, verbose: bool) -> int:
    found = {c.name: c for c in discover_collectors(TREE)}
    if name not in found:
        print(
            f"no collector {name!r} under {TREE / 'metrics' / 'collectors'}; "
            f"known: {', '.join(found) or 'none'}",
            file=sys.stderr,
        )
        return 2
    if found[name].problem:
        print(f"collector {name!r} cannot run: {found[name].problem}", file=sys.stderr)
        return 2
    # Exactly what `python3 -m metrics.collectors.<name>` does, whatever its __main__.py holds.
    sys.argv = [f"metrics.collectors.{name}"] + ["--dry-run"] * dry_run + ["--verbose"] * verbose
    try:
        runpy.run_module(f"metrics.collectors.{name}", run_name="__main__", alter_sys=True)
    except SystemExit as stop:
        if stop.code is None or isinstance(stop.code, int):
            return stop.code or 0
        print(stop.code, file=sys.stderr)
        return 1
    return 0


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python3 -m metrics")
    commands = parser.add_subparsers(dest="command", required=True)
    listing = commands.add_parser("list", help="list collectors, their interval and problems")
    listing.add_argument("--json", action="store_true", help="print JSON")
    running = commands.add_parser("run", help="run one collector once")
    running.add_argument("name")
    running.add_argument("-n", "--dry-run", action="store_true", help="print, do not write")
    running.add_argument("-v", "--verbose", action="store_true", help="log debug messages")
    replay = commands.add_parser(
        "replay", help="write a collector's spooled points without running it"
    )
    replay.add_argument("name")
    args = parser.parse_args(argv)
    if args.command == "list":
        return list_collectors(args.json)
    if args.command == "replay":
        from metrics.lib.basemetric import replay_spool

        try:
            return replay_spool(args.name)
        except CollectorError as error:
            print(f"cannot replay {args.name}'s spool: {error}", file=sys.stderr)
            return 1
    return run_collector(args.name, args.dry_run, args.verbose)


if __name__ == "__main__":
    sys.exit(main())
