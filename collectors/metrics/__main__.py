"""`python3 -m metrics list [--json]` and `python3 -m metrics run NAME [--dry-run] [--verbose]`.

Run from the collectors tree (the folder holding `metrics/`). `list` discovers collectors
statically (it never imports them), exactly as the charm does.
"""

from __future__ import annotations

import argparse
import dataclasses
import importlib
import json
import logging
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
    module = importlib.import_module(f"metrics.collectors.{name}")
    try:
        module.run_metric(dry_run=dry_run, verbose=verbose)
    except CollectorError as error:
        logging.getLogger("metrics").error("collector %s failed: %s", name, error)
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
    args = parser.parse_args(argv)
    if args.command == "list":
        return list_collectors(args.json)
    return run_collector(args.name, args.dry_run, args.verbose)


if __name__ == "__main__":
    sys.exit(main())
