"""Demo: the charm's workload on a real systemd, end to end, in a throwaway container.

Boots the cached Debian container, installs the collectors bundled with the charm through
`workload.reconcile` (as the charm's hook does), starts one run of each, then shows the
collectors' timers and what landed in a local InfluxDB. Everything is removed on exit,
including on Ctrl-C.

    ./dev demo            (as root: .venv/bin/python tests/machine/demo.py)
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))
sys.path.insert(0, str(HERE.parents[1] / "collectors"))

from machine_deploy import DATABASE, influx_credentials, prepare_influx  # noqa: E402
from machine_harness import (  # noqa: E402
    CharmUnit,
    Container,
    HarnessError,
    booted,
    cached_rootfs,
    signals_unwind,
    unavailable_reason,
)
from metrics.testing import InfluxServer  # noqa: E402


def say(text: str = "") -> None:
    print(text, flush=True)


def bundled_collectors(unit: CharmUnit) -> list[str]:
    return list(unit.report["scheduled"])


def run_each_once(unit: CharmUnit, names: list[str], timeout: float) -> None:
    """Start every collector's service once and wait for all of them to finish."""
    units = [f"metrics-collector@{name}.service" for name in names]
    unit.container.run(["systemctl", "start", "--no-block", *units])
    deadline = time.monotonic() + timeout
    pending = set(units)
    while pending and time.monotonic() < deadline:
        for service in sorted(pending):
            if unit.show(service, "ActiveState")["ActiveState"] in ("inactive", "failed"):
                pending.discard(service)
        time.sleep(0.5)
    if pending:
        say(f"still running after {timeout:.0f}s: {', '.join(sorted(pending))}")


def landed_table(influx: InfluxServer) -> str:
    rows = influx.query(
        'SELECT LAST("ok") AS "ok", "points_written", "points_spooled", "error" '
        'FROM "collector_run" GROUP BY "collector"',
        DATABASE,
    )
    measurements = [row["name"] for row in influx.query("SHOW MEASUREMENTS", DATABASE)]
    lines = [f"{'collector':<28} {'ok':<5} {'written':>7} {'spooled':>7}"]
    errors = []
    for row in sorted(rows, key=lambda r: r["collector"]):
        lines.append(
            f"{row['collector']:<28} {row['ok']!s:<5} {row['points_written']:>7} "
            f"{row['points_spooled']:>7}"
        )
        if row.get("error"):
            errors.append(f"  {row['collector']}: {row['error']}")
    if errors:
        lines += ["", "errors of the last runs (collector_run.error):", *errors]
    lines += ["", f"{'measurement':<28} points"]
    lines += [f"{name:<28} {influx.count(name, DATABASE)}" for name in measurements]
    return "\n".join(lines)


def demo(run_timeout: float) -> None:
    say("== building or reusing the cached Debian root file system")
    image = cached_rootfs(log=say)
    with InfluxServer(auth=True) as influx:
        prepare_influx(influx)
        say(f"== InfluxDB (Debian's influxd) listens on {influx.url}, data in {influx.data_dir}")
        with booted(image) as container:
            show_where(container)
            unit = CharmUnit(container)
            unit.install_charm_code()
            say("== workload.reconcile(): the bundled collectors, as the charm installs them")
            report = unit.reconcile({"repo": "", "dry_run": False}, influx_credentials(influx))
            say(f"scheduled: {', '.join(report['scheduled']) or '(none)'}")
            for skipped in report["skipped"]:
                say(f"skipped: {skipped['name']}: {skipped['problem']}")
            for problem in report["problems"]:
                say(f"problem: {problem}")
            names = bundled_collectors(unit)
            say(f"== starting one run of each collector (up to {run_timeout:.0f}s)")
            run_each_once(unit, names, run_timeout)
            say("== systemctl list-timers 'metrics-*' (in the container)")
            say(
                container.run(
                    ["systemctl", "list-timers", "--all", "--no-pager", "metrics-*"]
                ).stdout
            )
            say("== python3 -m workload status (in the container)")
            say(unit.workload("status", check=False).stdout)
            say("== what landed in InfluxDB (collector_run is the health series)")
            say(landed_table(influx))
            say()
            say("== stopping the container and InfluxDB, removing their files")
    say("done: nothing is left running")


def show_where(container: Container) -> None:
    say(f"== container booted: root {container.root}, systemd PID {container.leader}")
    say(f"   look inside while the demo runs: nsenter -t {container.leader} -m -u -i -p -- bash")
    say(f"   boot log: {container.log_path}")


def main() -> int:
    parser = argparse.ArgumentParser(
        description="Demo of the workload on a booted systemd container."
    )
    parser.add_argument(
        "--run-timeout",
        type=float,
        default=120,
        help="seconds to wait for the collectors' runs (default 120)",
    )
    args = parser.parse_args()
    reason = unavailable_reason()
    if reason:
        print(f"demo: {reason}", file=sys.stderr)
        return 2
    try:
        with signals_unwind():
            demo(args.run_timeout)
    except KeyboardInterrupt:
        print("demo: interrupted; the container and InfluxDB were stopped", file=sys.stderr)
        return 130
    except HarnessError as error:
        print(f"demo: {error}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
