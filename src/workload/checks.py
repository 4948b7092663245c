#!/usr/bin/python3 -I
"""Nagios checks of this unit's collectors and pulls, read from its metrics endpoint.

With the nrpe-external-master relation the charm installs this very file as
/usr/local/lib/nagios/plugins/check_ucm (src/nrpe.py), and nagios-nrpe-server runs it as the
nagios user, who need not be able to read the charm's folder: so it imports nothing but the
standard library, and reads the text format itself. On a unit, `python3 -m workload check KIND`
runs the same code.

    check_ucm stale|failing|pull [--url URL] [--unit UNIT]

prints one line, `UCM <KIND> <STATE>: <what, and what to do> | <perfdata>`, and exits with
Nagios's codes. The thresholds are those of the alert rules
(src/prometheus_alert_rules/collectors.rule): a collector is stale after no success for three
of its intervals and at least 15 minutes, failing after two failed runs in a row; the pull is
not running after three pull intervals (at least 15 minutes) without one. A check has no
history, so a failed pull is reported at once, where the alert waits 90 minutes.

An endpoint that does not answer is CRITICAL: it is part of the unit and, while it is down,
no check can see anything (the alert rules' UcmEndpointDown is critical too). An answer that is
not the unit's metrics is UNKNOWN: the check cannot tell how the collectors are.
"""

from __future__ import annotations

import argparse
import math
import re
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass

OK, WARNING, CRITICAL, UNKNOWN = 0, 1, 2, 3
STATES = ("OK", "WARNING", "CRITICAL", "UNKNOWN")
KINDS = ("stale", "failing", "pull")
DEFAULT_URL = "http://127.0.0.1:9581/metrics"
STALE_INTERVALS = 3
STALE_MINIMUM = 15 * 60.0
FAILING_RUNS = 2
# Names shown in one line at most: a line must stay short (NRPE 2 cut answers at 1 KiB).
SHOWN = 5
TIMEOUT = 10.0
READ_LIMIT = 1 << 20
# Always served, whatever the unit holds: tells the unit's endpoint from another server.
MARKER = "ucm_collectors_scheduled"

_SAMPLE = re.compile(r"^([A-Za-z_:][A-Za-z0-9_:]*)(?:\{(.*)\})?\s+(\S+)(?:\s+-?\d+)?$")
_LABEL = re.compile(r'\s*([A-Za-z_][A-Za-z0-9_]*)="((?:[^"\\]|\\.)*)"\s*(?:,|$)')
_ESCAPES = {"\\\\": "\\", '\\"': '"', "\\n": "\n"}

Samples = dict[str, list[tuple[dict[str, str], float]]]


class EndpointDown(Exception):
    """No answer from the endpoint at all."""


class NotOurEndpoint(Exception):
    """An answer, but not the unit's metrics."""


@dataclass(frozen=True)
class Result:
    state: int
    text: str
    perfdata: str = ""

    def line(self, kind: str) -> str:
        # `|` starts Nagios's performance data: never let one into the text.
        text = self.text.replace("|", "/")
        line = f"UCM {kind.upper()} {STATES[self.state]}: {text}"
        return f"{line} | {self.perfdata}" if self.perfdata else line


def parse_metrics(text: str) -> Samples:
    """The samples of a Prometheus text-format page by metric name; comments are skipped.
    Raises ValueError naming the first line it cannot read."""
    samples: Samples = {}
    for number, line in enumerate(text.splitlines(), start=1):
        line = line.strip()
        if not line or line.startswith("#"):
            continue
        match = _SAMPLE.match(line)
        if match is None:
            raise ValueError(f"line {number} is not a sample: {line[:80]!r}")
        name, labels_text, value_text = match.groups()
        labels: dict[str, str] = {}
        rest = labels_text or ""
        while rest.strip():
            label = _LABEL.match(rest)
            if label is None:
                raise ValueError(f"line {number} has labels that cannot be read: {line[:80]!r}")
            labels[label.group(1)] = re.sub(
                r"\\[\\\"n]", lambda m: _ESCAPES[m.group(0)], label.group(2)
            )
            rest = rest[label.end() :]
        try:
            value = float(value_text)
        except ValueError:
            raise ValueError(f"line {number} has no number: {line[:80]!r}") from None
        samples.setdefault(name, []).append((labels, value))
    return samples


def scrape(url: str, timeout: float = TIMEOUT) -> Samples:
    try:
        with urllib.request.urlopen(url, timeout=timeout) as response:  # noqa: S310 - our URL
            body = response.read(READ_LIMIT)
    except urllib.error.HTTPError as error:
        raise NotOurEndpoint(f"{url} answered HTTP {error.code}") from None
    except (OSError, ValueError) as error:  # refused, timed out, no route, a bad URL
        reason = getattr(error, "reason", None) or error
        raise EndpointDown(f"{url} does not answer ({reason})") from None
    try:
        samples = parse_metrics(body.decode("utf-8"))
    except (UnicodeDecodeError, ValueError) as error:
        raise NotOurEndpoint(f"{url} answered something else than metrics: {error}") from None
    if MARKER not in samples:
        raise NotOurEndpoint(f"{url} answered metrics, but not this charm's ({MARKER})")
    return samples


def per_collector(samples: Samples, name: str) -> dict[str, float]:
    return {
        labels["collector"]: value
        for labels, value in samples.get(name, [])
        if "collector" in labels and math.isfinite(value)
    }


def unit_value(samples: Samples, name: str) -> float | None:
    for labels, value in samples.get(name, []):
        if not labels and math.isfinite(value):
            return value
    return None


def check_stale(samples: Samples, unit: str, now: float) -> Result:
    success = per_collector(samples, "ucm_collector_last_success_timestamp_seconds")
    intervals = per_collector(samples, "ucm_collector_interval_seconds")
    stale: list[tuple[str, float]] = []
    for name, since in sorted(success.items()):
        allowed = max(STALE_INTERVALS * intervals.get(name, 0.0), STALE_MINIMUM)
        if now - since > allowed:
            stale.append((name, now - since))
    perfdata = f"stale={len(stale)};1;;0 collectors={len(success)};;;0"
    if not stale:
        return Result(
            OK,
            f"every collector ({len(success)}) succeeded within 3 of its intervals",
            perfdata,
        )
    first = stale[0][0]
    return Result(
        WARNING,
        f"{len(stale)} of {len(success)} collectors have not succeeded for 3 of their "
        f"intervals (at least 15 min), so their points are missing: "
        f"{_listed(f'{name} ({_span(age)})' for name, age in stale)}. If they fail, see "
        f"check_ucm_collectors_failing; else their timer does not run them: "
        f"juju run {unit} list-collectors (last and next run), "
        f"systemctl list-timers 'metrics-*'; run one now: "
        f"juju run {unit} run-collector name={first}",
        perfdata,
    )


def check_failing(samples: Samples, unit: str, now: float) -> Result:
    del now
    failures = per_collector(samples, "ucm_collector_consecutive_failures")
    failing = [(name, n) for name, n in sorted(failures.items()) if n >= FAILING_RUNS]
    perfdata = f"failing={len(failing)};1;;0 collectors={len(failures)};;;0"
    if not failing:
        return Result(
            OK, f"no collector failed its last {FAILING_RUNS} runs ({len(failures)} ran)", perfdata
        )
    first = failing[0][0]
    return Result(
        WARNING,
        f"{len(failing)} of {len(failures)} collectors failed their last runs: "
        f"{_listed(f'{name} ({int(n)} in a row)' for name, n in failing)}. Their log says why: "
        f"journalctl -u metrics-collector@{first}.service -n 50; try a run that writes "
        f"nothing: juju run {unit} run-collector name={first} dry-run=true; fix the "
        f"collector in the collectors branch, or InfluxDB as juju status says",
        perfdata,
    )


def check_pull(samples: Samples, unit: str, now: float) -> Result:
    commits = samples.get("ucm_commit_info", [])
    if not commits:
        return Result(UNKNOWN, f"no collectors tree is checked out yet: see juju status {unit}")
    labels = commits[0][0]
    commit, source = labels.get("commit", "")[:12], labels.get("source", "")
    if source == "bundled":
        return Result(OK, "no branch to pull: the unit runs the collectors bundled in the charm")
    last = unit_value(samples, "ucm_last_pull_timestamp_seconds")
    last_ok = unit_value(samples, "ucm_last_pull_ok")
    interval = unit_value(samples, "ucm_pull_interval_seconds") or 0.0
    when = _utc(last) if last is not None else "never"
    age = now - last if last is not None else math.inf
    perfdata = f"age={age:.0f}s;;;0" if last is not None else ""
    if last_ok == 0:
        return Result(
            WARNING,
            f"the last pull of {source} ({when}) failed: the unit keeps running commit "
            f"{commit} and merged changes do not reach it. juju status {unit} shows the "
            f"error; its log: journalctl -u metrics-pull.service -n 50; check collectors-repo, "
            f"collectors-branch, collectors-revision, the network and the proxy, then "
            f"juju run {unit} pull",
            perfdata,
        )
    if last is None:  # checked out by a hook; metrics-pull.timer has not run yet
        return Result(OK, f"{source} is checked out at commit {commit}, not pulled since")
    if age > max(STALE_INTERVALS * interval, STALE_MINIMUM):
        return Result(
            WARNING,
            f"no pull of {source} since {when}, more than 3 pull intervals: the pull timer "
            f"does not run. systemctl list-timers metrics-pull.timer; juju status {unit}; "
            f"pull now: juju run {unit} pull",
            perfdata,
        )
    return Result(OK, f"the last pull of {source} ({when}) succeeded: commit {commit}", perfdata)


CHECKS: dict[str, Callable[[Samples, str, float], Result]] = {
    "stale": check_stale,
    "failing": check_failing,
    "pull": check_pull,
}


def run_check(kind: str, url: str, unit: str, now: float | None = None) -> Result:
    try:
        samples = scrape(url)
    except EndpointDown as error:
        return Result(
            CRITICAL,
            f"the metrics endpoint {error}, so nothing of the collectors can be seen: "
            "systemctl status metrics-exporter.service; "
            "journalctl -u metrics-exporter.service -n 50",
        )
    except NotOurEndpoint as error:
        return Result(
            UNKNOWN,
            f"{error}: is metrics-port another service's? "
            "systemctl status metrics-exporter.service",
        )
    return CHECKS[kind](samples, unit, time.time() if now is None else now)


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="check_ucm", description="Nagios check of the collectors of ubuntu-community-metrics"
    )
    parser.add_argument("kind", choices=KINDS)
    parser.add_argument("--url", default=DEFAULT_URL, help="the unit's metrics endpoint")
    parser.add_argument("--unit", default="<unit>", help="the Juju unit, for the fixes shown")
    try:
        args = parser.parse_args(argv)
    except SystemExit as exit_:
        # argparse exits 2, which Nagios reads as CRITICAL; a bad command line is UNKNOWN.
        return UNKNOWN if exit_.code else OK
    result = run_check(args.kind, args.url, args.unit)
    print(result.line(args.kind))
    return result.state


def _listed(items: Iterable[str]) -> str:
    names = list(items)
    shown = ", ".join(names[:SHOWN])
    return shown if len(names) <= SHOWN else f"{shown} and {len(names) - SHOWN} more"


def _span(seconds: float) -> str:
    """`3h 5min`, `12min`, `40s`: how long, as systemd writes it."""
    seconds = int(seconds)
    days, rest = divmod(seconds, 86400)
    hours, rest = divmod(rest, 3600)
    minutes, secs = divmod(rest, 60)
    if days:
        return f"{days}d {hours}h"
    if hours:
        return f"{hours}h {minutes}min"
    return f"{minutes}min" if minutes else f"{secs}s"


def _utc(timestamp: float) -> str:
    return time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime(timestamp))


if __name__ == "__main__":
    sys.exit(main())
