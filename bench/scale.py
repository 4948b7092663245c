"""Benchmark of scale out (issue 14, item 6): how collectors spread over units, how many move
when a unit comes or goes, and what one run of a collector costs on a unit.

    .venv/bin/python bench/scale.py [--skip-unit] [--runs 20]    (part 2 as root)

Part 1, ownership, in this process (`workload.ownership`): 10,000 collectors named like real
ones (`queue_417`) over 1 to 20 units `ubuntu-community-metrics/<n>`, against the baseline of
naive modulo hashing (`sha256(name) % N`, the N units in the order of their numbers):

- spread: max/mean collectors per unit for each N. Target: <= 1.1 at 10 units.
- adding a unit (N -> N+1, the new unit numbered N, as Juju numbers them): the fraction of
  collectors that change unit. Target: <= 1/(N+1) + 2 % for every N. Modulo moves ~N/(N+1).
- removing a unit (N -> N-1): a random unit for each N (seeded, so runs compare), and each
  unit in turn at 10 units. The ideal is 1/N; the issue sets no target for it.
- the CPU time (best of 3) of `owners()` for 10,000 collectors x 20 units, and of what a
  reconcile computes at 20 units (`owned()` then `owners()`, as `workload.service` calls
  them), against one `owners()` call at 1 unit.

Part 2, one run on a unit: the packed charm deployed on a booted Ubuntu 24.04 machine (the
machine harness of tests/machine, as `./dev demo` does: cached pack and root file system, a
local git remote, a local InfluxDB), following a branch with one collector, `trivial` (one
point, RUN_INTERVAL "1m"). Its timer's first run must land its point. Then `--runs` rounds,
each starting in turn (`systemctl start`, which waits for the oneshot):

  (a) metrics-collector@trivial.service, the collector's run: a point written to InfluxDB
      (the count of its points is checked);
  (b) `<venv python> -c pass`;
  (c) `<venv python> -c "import influxdb"`: what importing the original framework costs;
  (d) for information: `<venv python> -c "import metrics.lib.basemetric"`.

All four run as instances of the unit's own metrics-collector@.service, so under the same
sandbox, user, working directory, environment and Python (the collectors' venv); a drop-in
per instance puts a small wrapper in front of the command ((a) keeps the unit's own, (b) to
(d) replace it). The figures are per run: CPU time (user + system) and peak RSS of the run's
processes as the kernel accounts them (getrusage of the wrapper's child; the wrapper's own
start is not counted). Not systemd's CPUUsageNSec and MemoryPeak: systemd-nspawn on a host
with cgroup v1 gives the container no writable controller, so its systemd cannot account a
unit (the bench prints whether it could). ru_maxrss keeps the child's RSS from before its
exec, when it was a copy of the wrapper: the wrapper records that too, and the bench flags a
peak that does not rise above it (then the run's own peak is hidden, at most that figure).

Printed: median CPU ms and peak MiB of each, a/b and a/c, and the capacity (60 s / median CPU
of (a): one-minute collectors per core, and for the unit's cores). The issue's target for (a)
is <= 60 ms CPU per run: printed with its verdict, but it does not set the exit status, since
these figures inform a decision (whether to make the framework lighter) rather than gate a
change. Needs root, systemd-nspawn, debootstrap and nsenter (tests/machine); --skip-unit runs
part 1 only. A few minutes warm.

Exit status: 1 when a target of part 1 is missed (or part 2 fails to measure), 2 when part 2
cannot run on this machine and --skip-unit was not given, 0 otherwise.
"""

from __future__ import annotations

import argparse
import hashlib
import os
import random
import statistics
import sys
import tempfile
import time
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path[:0] = [str(REPO / "src"), str(REPO / "collectors"), str(REPO / "tests" / "machine")]

from machine_deploy import DATABASE, deployed_unit, prepare_influx, serving_remote, unit_image  # noqa: E402
from machine_harness import Container, HarnessError, signals_unwind, unavailable_reason, wait_for  # noqa: E402
from machine_trees import push_tree  # noqa: E402
from metrics.testing import InfluxServer  # noqa: E402
from pack import pack  # noqa: E402

from workload import ownership  # noqa: E402

APP = "ubuntu-community-metrics"
COLLECTORS = 10_000
MAX_UNITS = 20
WORDS = ("autopkgtest", "britney", "bugs", "builds", "excuses", "images", "queue", "sru")
SPREAD_AT = 10
SPREAD_TARGET = 1.1
ADD_MARGIN = 0.02
SEED = 14

RELEASE = "noble"
MEASUREMENT = "bench_trivial"
TRIVIAL = f'''\
"""One point per run and nothing else: what a run costs is the framework's and Python's."""

from metrics.lib.basemetric import Metric

RUN_INTERVAL = "1m"


class Trivial(Metric):
    def collect(self):
        return [{{"measurement": "{MEASUREMENT}", "tags": {{}}, "fields": {{"value": 1}}}}]


def run_metric(dry_run=False, verbose=False):
    Trivial(dry_run, verbose).run()
'''
# Put in front of each measured command by a drop-in; runs inside the unit's sandbox, where
# it may write only the run's state directory.
WRAPPER = '''\
"""Run argv[1:] as a child; append its CPU seconds, its peak RSS (kB) and its RSS when it
was still a copy of this process (kB: ru_maxrss keeps it over the exec, so a peak below it is
hidden) to $STATE_DIRECTORY/bench-rusage. Started with -I -S, to keep that copy small."""
import os
import resource
import sys

read_end, write_end = os.pipe()
pid = os.fork()
if pid == 0:
    try:
        with open("/proc/self/status") as status:
            copied = next(line.split()[1] for line in status if line.startswith("VmHWM:"))
        os.write(write_end, copied.encode())
        os.execv(sys.argv[1], sys.argv[1:])
    finally:
        os._exit(127)
os.close(write_end)
copied = os.read(read_end, 64).decode() or "0"
_, status = os.waitpid(pid, 0)
usage = resource.getrusage(resource.RUSAGE_CHILDREN)
with open(os.path.join(os.environ["STATE_DIRECTORY"], "bench-rusage"), "a") as out:
    out.write(f"{usage.ru_utime + usage.ru_stime} {usage.ru_maxrss} {copied}\\n")
sys.exit(os.waitstatus_to_exitcode(status))
'''
WRAPPER_PATH = "/usr/local/libexec/ucm-bench-rusage"
TEMPLATE = "/etc/systemd/system/metrics-collector@.service"
STATE = "/var/lib/private/metrics-collector"
# Instance of metrics-collector@.service -> its label and its command after the venv's
# python (None: the collector's own ExecStart).
VARIANTS = {
    "trivial": ("(a) trivial collector run", None),
    "bench_pass": ("(b) python3 -c pass", "-c pass"),
    "bench_influxdb": ('(c) python3 -c "import influxdb"', '-c "import influxdb"'),
    "bench_basemetric": (
        '    python3 -c "import metrics.lib.basemetric"',
        '-c "import metrics.lib.basemetric"',
    ),
}
CPU_TARGET_S = 0.060


def collector_names(count: int) -> list[str]:
    return [f"{WORDS[i % len(WORDS)]}_{i // len(WORDS)}" for i in range(count)]


def unit_names(count: int) -> list[str]:
    return [f"{APP}/{number}" for number in range(count)]


def modulo_owners(hashes: dict[str, int], units: list[str]) -> dict[str, str]:
    """The naive baseline: the collector's hash modulo the number of units."""
    return {name: units[value % len(units)] for name, value in hashes.items()}


def moved(before: dict[str, str], after: dict[str, str]) -> float:
    return sum(before[name] != after[name] for name in before) / len(before)


def spread(owned_by: dict[str, str], units: list[str]) -> float:
    """Max over mean of collectors per unit (a unit with none counts)."""
    counts = Counter(owned_by.values())
    return max(counts[unit] for unit in units) / (len(owned_by) / len(units))


def cpu_best(call: Callable[[], object], repeats: int = 3) -> float:
    """CPU seconds of the best of `repeats` calls: this process's own, so other load on a
    shared machine moves it less than wall time."""
    best = float("inf")
    for _ in range(repeats):
        started = time.process_time()
        call()
        best = min(best, time.process_time() - started)
    return best


def bench_ownership() -> list[str]:
    """Part 1; returns the targets missed."""
    names = collector_names(COLLECTORS)
    hashes = {
        name: int.from_bytes(hashlib.sha256(name.encode()).digest()[:8], "big") for name in names
    }
    rendezvous = {n: ownership.owners(names, unit_names(n)) for n in range(1, MAX_UNITS + 1)}
    modulo = {n: modulo_owners(hashes, unit_names(n)) for n in range(1, MAX_UNITS + 1)}
    missed = []

    print(
        f"part 1: {COLLECTORS:,} collectors ({names[0]}, {names[1]}, ...)"
        f" over 1 to {MAX_UNITS} units"
    )
    print("spread, max/mean collectors per unit")
    print("  units   rendezvous   modulo")
    for n in range(1, MAX_UNITS + 1):
        units = unit_names(n)
        ours = spread(rendezvous[n], units)
        theirs = spread(modulo[n], units)
        target = f"   (target <= {SPREAD_TARGET})" if n == SPREAD_AT else ""
        print(f"  {n:>5}   {ours:>10.3f}   {theirs:>6.3f}{target}")
        if n == SPREAD_AT and ours > SPREAD_TARGET:
            missed.append(f"spread at {n} units is {ours:.3f} (target <= {SPREAD_TARGET})")

    print("adding a unit: fraction of the collectors that change unit")
    print("  N -> N+1   rendezvous   ideal 1/(N+1)   target   modulo   modulo/rendezvous")
    for n in range(1, MAX_UNITS):
        ours = moved(rendezvous[n], rendezvous[n + 1])
        theirs = moved(modulo[n], modulo[n + 1])
        ideal = 1 / (n + 1)
        target = ideal + ADD_MARGIN
        flag = "" if ours <= target else "  MISSED"
        print(
            f"  {n:>3} -> {n + 1:<3}{ours:>12.2%}{ideal:>16.2%}{target:>9.2%}{theirs:>9.2%}"
            f"{theirs / ours:>20.1f}x{flag}"
        )
        if ours > target:
            missed.append(
                f"adding unit {n} to {n} units moves {ours:.2%} (target <= {target:.2%})"
            )

    rng = random.Random(SEED)
    print(f"removing a unit (a random one, seed {SEED}): fraction of the collectors that move")
    print("  N -> N-1   removed   rendezvous   ideal 1/N   modulo   modulo/rendezvous")
    for n in range(2, MAX_UNITS + 1):
        units = unit_names(n)
        gone = rng.choice(units)
        left = [unit for unit in units if unit != gone]
        ours = moved(rendezvous[n], ownership.owners(names, left))
        theirs = moved(modulo[n], modulo_owners(hashes, left))
        print(
            f"  {n:>3} -> {n - 1:<3}{gone.rsplit('/', 1)[1]:>8}{ours:>13.2%}{1 / n:>12.2%}"
            f"{theirs:>9.2%}{theirs / ours:>20.1f}x"
        )
    units = unit_names(SPREAD_AT)
    each = [
        moved(rendezvous[SPREAD_AT], ownership.owners(names, [u for u in units if u != gone]))
        for gone in units
    ]
    each_modulo = [
        moved(modulo[SPREAD_AT], modulo_owners(hashes, [u for u in units if u != gone]))
        for gone in units
    ]
    print(
        f"  each of the {SPREAD_AT} units removed in turn: rendezvous min {min(each):.2%},"
        f" mean {statistics.mean(each):.2%}, max {max(each):.2%} (ideal {1 / SPREAD_AT:.2%});"
        f" modulo mean {statistics.mean(each_modulo):.2%}"
    )

    all_units = unit_names(MAX_UNITS)
    one_unit = unit_names(1)
    at_max = cpu_best(lambda: ownership.owners(names, all_units))
    reconcile = cpu_best(
        lambda: (
            ownership.owned(names, all_units[0], all_units[1:]),
            ownership.owners(names, all_units),
        )
    )
    at_one = cpu_best(lambda: ownership.owners(names, one_unit))
    print(f"ownership computation, CPU time, best of 3, {COLLECTORS:,} collectors")
    print(f"  owners() at 1 unit                               {at_one * 1000:>7.0f} ms")
    print(
        f"  owners() at {MAX_UNITS} units                              {at_max * 1000:>7.0f} ms"
        f"   {at_max / at_one:.1f}x"
    )
    print(
        f"  a reconcile at {MAX_UNITS} units (owned() then owners())   {reconcile * 1000:>7.0f} ms"
        f"   {reconcile / at_one:.1f}x"
    )
    return missed


@dataclass
class Variant:
    label: str
    cpu_s: list[float]
    peak_kb: list[int]
    copied_kb: list[int]  # the child's RSS before its exec, which ru_maxrss keeps


def write_file(container: Container, path: str, text: str) -> None:
    container.run(["sh", "-c", 'mkdir -p "${1%/*}" && cat > "$1"', "sh", path], input=text)


def install_drop_ins(container: Container) -> str:
    """Put the wrapper in front of every variant's command; returns the venv's python."""
    template = container.run(["cat", TEMPLATE]).stdout
    starts = [line for line in template.splitlines() if line.startswith("ExecStart=")]
    assert len(starts) == 1, starts
    assert starts[0].startswith("ExecStart=/"), starts
    command = starts[0].removeprefix("ExecStart=")
    python = command.split()[0]
    write_file(container, WRAPPER_PATH, WRAPPER)
    for instance, (_, arguments) in VARIANTS.items():
        measured = command if arguments is None else f"{python} {arguments}"
        write_file(
            container,
            f"/run/systemd/system/metrics-collector@{instance}.service.d/bench.conf",
            # Rounds start each unit faster than systemd's default start limit (5 in 10 s).
            "[Unit]\nStartLimitIntervalSec=0\n\n[Service]\nExecStart=\n"
            f"ExecStart=/usr/bin/python3 -I -S {WRAPPER_PATH} {measured}\n",
        )
    container.run(["systemctl", "daemon-reload"])
    return python


def systemd_accounting(container: Container, unit: str) -> str:
    """What systemd itself says of the last run of `unit`."""
    shown = container.run(
        ["systemctl", "show", unit, "--property=CPUUsageNSec", "--property=MemoryPeak"]
    ).stdout
    values = dict(line.split("=", 1) for line in shown.splitlines() if "=" in line)
    cpu, peak = values.get("CPUUsageNSec", ""), values.get("MemoryPeak", "")
    if not cpu.isdigit():
        return (
            f"not available here (CPUUsageNSec={cpu}, MemoryPeak={peak}: the container's"
            " cgroup controllers are read-only)"
        )
    memory = f"{int(peak) / 2**20:.1f} MiB peak" if peak.isdigit() else f"MemoryPeak={peak}"
    return f"{int(cpu) / 1e6:.0f} ms CPU, {memory}"


def bench_unit(runs: int) -> None:
    """Part 2: prints the figures; raises when a run fails or its point does not land."""

    def log(line: str) -> None:
        print(f"   {line}", flush=True)

    started = time.monotonic()
    charm = pack(RELEASE, log=log)
    image = unit_image(RELEASE, log)
    with (
        InfluxServer(auth=True) as influx,
        tempfile.TemporaryDirectory(prefix="bench-scale-") as scratch,
        serving_remote(Path(scratch) / "remote") as remote,
    ):
        prepare_influx(influx)
        push_tree(remote, {"trivial": TRIVIAL}, message="a trivial collector")
        with deployed_unit(image, charm, influx, remote) as unit:
            container = unit.container
            service = "metrics-collector@trivial.service"
            wait_for(
                "the timer's first run of trivial to land its point",
                lambda: influx.count(MEASUREMENT, DATABASE),
                timeout=180,
            )
            first = influx.count(MEASUREMENT, DATABASE)
            timer_run = systemd_accounting(container, service)
            systemd = container.run(["systemctl", "--version"]).stdout.splitlines()[0]
            cores = int(container.run(["nproc"]).stdout)
            python = install_drop_ins(container)
            version = container.run([python, "--version"]).stdout.strip()
            print(f"   deployed and first timer run landed in {time.monotonic() - started:.0f} s")
            units = " ".join(f"metrics-collector@{instance}.service" for instance in VARIANTS)
            rounds = container.run(
                [
                    "sh",
                    "-c",
                    f"for round in $(seq {runs}); do for unit in {units}; do"
                    ' systemctl start "$unit" || { echo "$unit"; exit 1; }; done; done',
                ],
                check=False,
                timeout=runs * len(VARIANTS) * 60,
            )
            if rounds.returncode:
                failed = rounds.stdout.strip()
                raise HarnessError(f"{failed} failed:\n{unit.journal(failed)}")
            landed = influx.count(MEASUREMENT, DATABASE)
            variants = {}
            for instance, (label, _) in VARIANTS.items():
                text = container.run(["cat", f"{STATE}/{instance}/bench-rusage"]).stdout
                rows = [line.split() for line in text.splitlines()]
                assert len(rows) == runs, (instance, text)
                variants[instance] = Variant(
                    label,
                    [float(cpu) for cpu, _, _ in rows],
                    [int(peak) for _, peak, _ in rows],
                    [int(copied) for _, _, copied in rows],
                )
    if landed != first + runs:
        raise HarnessError(f"{landed - first} points landed from {runs} runs of trivial")

    print(
        f"part 2: one run on a booted Ubuntu 24.04 unit ({systemd}, {version}, {cores} cores),"
        f" {runs} rounds of (a) to (d) in turn, all under the unit's metrics-collector@ sandbox"
    )
    print(
        f"  points of (a) landed in InfluxDB: {landed - first} of {runs} (+{first} from the timer)"
    )
    print(f"  systemd's own accounting of the timer's run: {timer_run}")
    print(
        "                                                 CPU median (min-max)     peak RSS median"
    )
    for variant in variants.values():
        median_ms = statistics.median(variant.cpu_s) * 1000
        low, high = min(variant.cpu_s) * 1000, max(variant.cpu_s) * 1000
        peak_mib = statistics.median(variant.peak_kb) / 1024
        hidden = "" if min(variant.peak_kb) > max(variant.copied_kb) else " (at most: hidden)"
        print(
            f"  {variant.label:<46}{median_ms:>7.0f} ms ({low:.0f}-{high:.0f})"
            f"  {peak_mib:>10.1f} MiB{hidden}"
        )
    copied = max(max(v.copied_kb) for v in variants.values()) / 1024
    print(
        f"  (a peak RSS is the run's own when above the wrapper's copy before the exec,"
        f" at most {copied:.1f} MiB)"
    )
    cpu = {key: statistics.median(v.cpu_s) for key, v in variants.items()}
    peak = {key: statistics.median(v.peak_kb) for key, v in variants.items()}
    for other, name in (("bench_pass", "a/b"), ("bench_influxdb", "a/c")):
        print(
            f"  {name} = {cpu['trivial'] / cpu[other]:.1f}x CPU,"
            f" {peak['trivial'] / peak[other]:.1f}x peak RSS"
        )
    per_core = 60 / cpu["trivial"]
    print(
        f"  capacity: 60 s / {cpu['trivial'] * 1000:.0f} ms ="
        f" {per_core:,.0f} one-minute collectors per core,"
        f" {per_core * cores:,.0f} on this unit's {cores} cores (CPU alone)"
    )
    verdict = "met" if cpu["trivial"] <= CPU_TARGET_S else "NOT met"
    print(
        f"  target (issue 14): (a) <= {CPU_TARGET_S * 1000:.0f} ms CPU per run: {verdict}"
        f" ({cpu['trivial'] * 1000:.0f} ms); informs a decision, does not set the exit status"
    )


def main() -> int:
    parser = argparse.ArgumentParser(description="Ownership spread and the cost of one run.")
    parser.add_argument("--skip-unit", action="store_true", help="run part 1 only")
    parser.add_argument("--runs", type=int, default=20, help="rounds of part 2 (default 20)")
    args = parser.parse_args()
    reason = None if args.skip_unit else unavailable_reason()
    if reason:
        print(
            f"scale: part 2 cannot run here: {reason} (--skip-unit runs part 1)", file=sys.stderr
        )
        return 2

    print("load average at start: {:.1f} {:.1f} {:.1f}".format(*os.getloadavg()))
    started = time.monotonic()
    missed = bench_ownership()
    print(f"part 1 took {time.monotonic() - started:.0f} s")
    if not args.skip_unit:
        started = time.monotonic()
        with signals_unwind():
            bench_unit(args.runs)
        print(f"part 2 took {time.monotonic() - started:.0f} s")
    print("load average at end: {:.1f} {:.1f} {:.1f}".format(*os.getloadavg()))
    for line in missed:
        print(f"TARGET MISSED: {line}")
    if not missed:
        print(
            f"part 1 targets met: spread <= {SPREAD_TARGET} at {SPREAD_AT} units, adding a unit"
            f" moves <= 1/(N+1) + {ADD_MARGIN:.0%}"
        )
    return 1 if missed else 0


if __name__ == "__main__":
    sys.exit(main())
