"""Demo: the packed charm deployed as Juju deploys it, on a booted Ubuntu unit, end to end.

Packs the charm (or reuses the cached pack), boots a throwaway Ubuntu machine, serves a
collectors branch from a local git daemon (the framework plus `load_average`, a collector that
needs no network), and drives the charm's hooks through the unit agent stand-in: install,
leader-elected, config-changed, start, then the influxdb relation to a local InfluxDB with
authentication. Shows the status after each hook, the timers, the list-collectors action, and
the data and health series that land. Everything is removed on exit, including on Ctrl-C.

    ./dev demo [--release jammy|noble]   (as root: .venv/bin/python tests/machine/demo.py)
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))
sys.path.insert(0, str(HERE.parents[1] / "collectors"))

from machine_deploy import (  # noqa: E402
    DATABASE,
    own_metrics_port,
    prepare_influx,
    relation_data,
    serving_remote,
    unit_image,
)
from machine_harness import (  # noqa: E402
    Container,
    HarnessError,
    booted,
    signals_unwind,
    unavailable_reason,
    wait_for,
)
from machine_trees import LOAD_AVERAGE, push_tree  # noqa: E402
from metrics.testing import InfluxServer  # noqa: E402
from pack import PLATFORMS, pack  # noqa: E402
from unit_agent import Dispatch, UnitAgent  # noqa: E402


def say(text: str = "") -> None:
    print(text, flush=True)


def show(dispatched: list[Dispatch]) -> None:
    for hook in dispatched:
        status = hook.status
        say(f"   {hook.path:<36} -> {status['status']}: {status['message']}")


def landed_table(influx: InfluxServer) -> str:
    rows = influx.query(
        'SELECT LAST("ok") AS "ok", "points_written", "points_spooled", "error" '
        'FROM "collector_run" GROUP BY "collector"',
        DATABASE,
    )
    measurements = [row["name"] for row in influx.query("SHOW MEASUREMENTS", DATABASE)]
    lines = [f"{'collector':<28} {'ok':<5} {'written':>7} {'spooled':>7}"]
    for row in sorted(rows, key=lambda r: r["collector"]):
        lines.append(
            f"{row['collector']:<28} {row['ok']!s:<5} {row['points_written']:>7} "
            f"{row['points_spooled']:>7}"
        )
        if row.get("error"):
            lines.append(f"  last error: {row['error']}")
    lines += ["", f"{'measurement':<28} points"]
    lines += [f"{name:<28} {influx.count(name, DATABASE)}" for name in measurements]
    latest = influx.query('SELECT LAST("load1") AS "load1" FROM "load_average"', DATABASE)
    if latest:
        lines += ["", f"latest load_average: load1={latest[0]['load1']} at {latest[0]['time']}"]
    return "\n".join(lines)


def demo(release: str) -> None:
    started = time.monotonic()
    say(f"== packing the charm for {PLATFORMS[release]} (a cached pack is reused)")
    charm = pack(release, log=lambda line: say(f"   {line}"))
    say(f"   {charm.name}")
    say(f"== the {release} machine's root file system (built once, then cached)")
    image = unit_image(release, lambda line: say(f"   {line}"))
    with (
        InfluxServer(auth=True) as influx,
        tempfile.TemporaryDirectory(prefix="ucm-demo-") as scratch,
        serving_remote(Path(scratch) / "remote") as remote,
    ):
        prepare_influx(influx)
        say(f"== InfluxDB (Debian's influxd) on {influx.url}, database {DATABASE!r}")
        push_tree(remote, {"load_average": LOAD_AVERAGE}, message="an offline collector")
        say(f"== collectors branch {remote.branch!r} served at {remote.url}")
        with booted(image) as container:
            show_where(container)
            agent = UnitAgent(container)
            say("== juju deploy ./charm --config collectors-repo=... (hooks run by dispatch)")
            show(
                agent.deploy(
                    charm,
                    {"collectors-repo": remote.url, "pull-interval": "1h", **own_metrics_port()},
                )
            )
            say("== juju integrate ubuntu-community-metrics influxdb")
            relation = agent.relate("influxdb", "influxdb")
            show(agent.join(relation, "influxdb/0", relation_data(influx)))
            say("== systemctl list-timers 'metrics-*' (on the unit)")
            say(
                container.run(
                    ["systemctl", "list-timers", "--all", "--no-pager", "metrics-*"]
                ).stdout
            )
            say("== waiting for the timer's first run of load_average")
            wait_for(
                "a load_average point",
                lambda: influx.count("load_average", DATABASE),
                timeout=60,
            )
            say("== juju run ubuntu-community-metrics/0 list-collectors")
            listed = agent.run_action("list-collectors")
            say((listed.action or {}).get("results", {}).get("collectors", ""))
            say("== juju status (after the next update-status hook)")
            show([agent.hook("update-status")])
            say("== what landed in InfluxDB (collector_run is the health series)")
            say(landed_table(influx))
            say()
            say("== stopping the unit, the git daemon and InfluxDB, removing their files")
    say(f"done in {time.monotonic() - started:.0f} s: nothing is left running")


def show_where(container: Container) -> None:
    say(f"== machine booted: root {container.root}, systemd PID {container.leader}")
    say(f"   look inside while the demo runs: nsenter -t {container.leader} -m -u -i -p -- bash")
    say(f"   boot log: {container.log_path}")


def main() -> int:
    parser = argparse.ArgumentParser(
        description="Deploy the packed charm on a booted Ubuntu machine, end to end."
    )
    parser.add_argument(
        "--release",
        choices=sorted(PLATFORMS),
        default="noble",
        help="Ubuntu release of the machine (default noble)",
    )
    args = parser.parse_args()
    reason = unavailable_reason()
    if reason:
        print(f"demo: {reason}", file=sys.stderr)
        return 2
    try:
        with signals_unwind():
            demo(args.release)
    except KeyboardInterrupt:
        print("demo: interrupted; the machine and InfluxDB were stopped", file=sys.stderr)
        return 130
    except HarnessError as error:
        print(f"demo: {error}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
