"""What the charm and the pull timer ask of the unit: reconcile, sync, list, run, remove.

Each call takes the lock (`Paths.lock`) so a hook and the pull timer never change the unit at the
same time, and records the outcome of the last checkout in `sync.json` so that the status can
say what the last pull did even when reconcile itself did not fetch.
"""

from __future__ import annotations

import contextlib
import fcntl
import hashlib
import json
import logging
import shutil
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

from . import ownership, systemd
from .account import Account
from .checkout import (
    Checkout,
    CheckoutError,
    activate,
    current_checkout,
    prepare_bundled,
    prepare_git,
    prune_caches,
    validate,
)
from .credentials import InfluxCredentials, read_credentials, write_credentials
from .discovery import Collector
from .files import make_dirs, write_if_changed
from .isolation import DiscoveryError, discover_checkout
from .logfile import apply_log_file
from .paths import Paths
from .settings import Settings, display_url, load_settings, save_settings
from .timespan import parse_run_interval
from .units import UnitOptions, render_units
from .venv import VenvError, current_venv, ensure_venv, wanted_venv

ROOT = Path("/")
logger = logging.getLogger(__name__)


@dataclass(frozen=True)
class Report:
    """What reconcile found, for the charm's status."""

    commit: str | None
    scheduled: list[str] = field(default_factory=list)
    skipped: list[Collector] = field(default_factory=list)
    failing: list[str] = field(default_factory=list)
    problems: list[str] = field(default_factory=list)
    # With peers: how many collectors the application schedules over all its units.
    of_application: int | None = None


@dataclass(frozen=True)
class SyncResult:
    """What one pull changed, for the `pull` action and `python3 -m workload sync`."""

    old_commit: str | None
    new_commit: str | None
    added: list[str] = field(default_factory=list)
    removed: list[str] = field(default_factory=list)
    problems: list[str] = field(default_factory=list)


@dataclass(frozen=True)
class CollectorStatus:
    """One collector as `list-collectors` shows it; the last/next fields come from systemd."""

    name: str
    interval: str
    problem: str | None
    last_result: str | None
    last_run: str | None
    next_run: str | None
    owner: str | None = None  # the unit that runs it; None: not schedulable, or not known


@dataclass(frozen=True)
class RunResult:
    """A collector run started by hand: its exit status and the end of its log."""

    exit_status: int
    log_tail: str


def reconcile(
    settings: Settings,
    credentials: InfluxCredentials | None,
    *,
    root: Path = ROOT,
    systemctl: systemd.Systemctl | None = None,
    account: Account | None = None,
) -> Report:
    """Converge the unit on `settings` and `credentials`.

    Writes or removes the credentials file (even when a setting is wrong: then it only reports
    the problem and changes nothing else), saves the settings for the pull timer, checks out
    the tree when there is none or its source changed (otherwise it never fetches: pulling is
    the timer's job), builds the venv, renders and applies the units.
    """
    paths = Paths(root)
    with _locked(paths):
        # Credentials first, whatever else is wrong: a broken relation must not leave them.
        # Credentials that cannot work are not written: the runs spool until they are fixed.
        usable = credentials if credentials is not None and not credentials.problem() else None
        write_credentials(paths.credentials, usable)
        problems = settings.problems()
        if problems:
            return Report(commit=_live_commit(paths), problems=problems)
        save_settings(settings, paths.settings)
        outcome = _converge(paths, settings, fetch=False, systemctl=systemctl, account=account)
    return outcome.report


def sync(
    *,
    root: Path = ROOT,
    systemctl: systemd.Systemctl | None = None,
    account: Account | None = None,
) -> SyncResult:
    """Fetch the branch (or pinned revision) and converge: what `metrics-pull.service` runs."""
    paths = Paths(root)
    try:
        settings = load_settings(paths.settings)
    except FileNotFoundError:
        return SyncResult(
            None,
            None,
            problems=[f"{paths.settings} is missing: the charm has not configured this unit yet"],
        )
    problems = settings.problems()
    if problems:
        commit = _live_commit(paths)
        return SyncResult(commit, commit, problems=problems)
    with _locked(paths):
        outcome = _converge(paths, settings, fetch=True, systemctl=systemctl, account=account)
    return outcome.sync


def run_collector(
    name: str,
    *,
    dry_run: bool = False,
    root: Path = ROOT,
    systemctl: systemd.Systemctl | None = None,
) -> RunResult:
    """Run a scheduled collector now in its own sandboxed unit and wait for it.

    `dry_run` runs the dry-run twin of the unit: same sandbox, points printed, none written.
    Raises ValueError naming the schedulable collectors when `name` is not one of them.
    """
    checkout = current_checkout(Paths(root))
    collectors = discover_checkout(checkout.folder, checkout.tree) if checkout else []
    known = [c.name for c in collectors if c.problem is None]
    if name not in known:
        problem = next((c.problem for c in collectors if c.name == name), None)
        raise ValueError(
            f"collector {name!r} cannot run: {problem}"
            if problem
            else f"no collector named {name!r}: known collectors: {', '.join(known) or 'none'}"
        )
    run = systemd.run_collector_now(name, dry_run=dry_run, systemctl=_systemctl(systemctl))
    return RunResult(run.exit_status, run.log_tail)


def remove(*, root: Path = ROOT, systemctl: systemd.Systemctl | None = None) -> None:
    """Disable and delete every unit, file and folder the charm wrote.

    The `ubuntu-community-metrics` user and the collectors' own state (their spool may hold
    points not yet written) stay; docs/operating.md says how to remove them.
    """
    paths = Paths(root)
    with _locked(paths):  # a pull in progress finishes first, then loses its timer
        scheduled = _read_record(paths).get("scheduled", [])
        if paths.credentials.exists() and scheduled:
            # Write what the spools hold while the credentials are still there: on a unit
            # leaving an application of several, its collectors run elsewhere from now on.
            try:
                unwritten = systemd.replay_spools(
                    scheduled, wait=True, systemctl=_systemctl(systemctl)
                )
            except systemd.SystemctlError:
                unwritten = scheduled
            if unwritten:
                logger.warning(
                    "points stay spooled in %s for %s: InfluxDB did not take them",
                    paths.collector_states,
                    ", ".join(unwritten),
                )
        systemd.apply_units({}, paths.unit_dir, systemctl=_systemctl(systemctl))
        apply_log_file(paths, wanted=False)
        for path in (paths.credentials, paths.settings):
            path.unlink(missing_ok=True)
        with contextlib.suppress(OSError):
            paths.config_dir.rmdir()  # only when nothing else is in it
        shutil.rmtree(paths.state_dir, ignore_errors=True)


def saved_credentials(*, root: Path = ROOT) -> InfluxCredentials | None:
    """The credentials the last reconcile wrote, if any."""
    return read_credentials(Paths(root).credentials)


def list_collectors(
    *, root: Path = ROOT, systemctl: systemd.Systemctl | None = None
) -> list[CollectorStatus]:
    """Every collector of the live tree, schedulable or not, with what systemd knows of it."""
    checkout = current_checkout(Paths(root))
    if checkout is None:
        return []
    collectors = discover_checkout(checkout.folder, checkout.tree)
    record = _read_record(Paths(root))
    owners = record.get("owners") or {}
    runnable = [c.name for c in collectors if c.problem is None]
    states = systemd.collector_states(runnable, systemctl=_systemctl(systemctl))
    statuses = []
    for collector in collectors:
        state = states.get(collector.name)
        statuses.append(
            CollectorStatus(
                name=collector.name,
                interval=collector.interval,
                problem=collector.problem,
                last_result=state.last_result if state else None,
                last_run=_when(state.last_run) if state else None,
                next_run=_when(state.next_run) if state else None,
                owner=owners.get(collector.name)
                or (record.get("unit") or None if collector.problem is None else None),
            )
        )
    return statuses


@dataclass(frozen=True)
class _Outcome:
    report: Report
    sync: SyncResult


def _converge(
    paths: Paths,
    settings: Settings,
    *,
    fetch: bool,
    systemctl: systemd.Systemctl | None,
    account: Account | None,
) -> _Outcome:
    account = account or Account()
    record = _read_record(paths)
    old_commit = _live_commit(paths)
    old_scheduled = set(record.get("scheduled", []))
    checkout = current_checkout(paths)
    collectors: list[Collector] | None = None

    # The bundled tree is looked at on every hook (hashing it is cheap): upgrade-charm brings a
    # new one. A branch is fetched only by the pull timer, or when the source changed.
    if record.get("source") == settings.source():  # as units before 2026-12 kept it, URL and all
        record["source"] = _source_key(settings)
    source_changed = record.get("source") != _source_key(settings)
    if fetch or checkout is None or source_changed or not settings.repo:
        try:
            checkout, collectors = _check_out(paths, settings, account)
            record["source"] = _source_key(settings)
            record["checkout_problem"] = None
        except CheckoutError as error:
            record["checkout_problem"] = (
                f"{error} (keeping {checkout.id[:12]})"
                if checkout
                else f"first checkout failed: {error}"
            )
    checkout_problem: str | None = record.get("checkout_problem")
    problems = [checkout_problem] if checkout_problem else []

    if checkout is not None:
        if collectors is None:
            try:
                collectors = discover_checkout(checkout.folder, checkout.tree)
            except DiscoveryError as error:
                # Keep the units as they are: an empty list would unschedule every collector.
                problems.append(f"{error}: the collectors keep their schedule")
                record.update(problems=problems)
                _write_record(paths, record)
                return _Outcome(
                    report=Report(checkout.id, record.get("scheduled", []), [], [], problems),
                    sync=SyncResult(old_commit, checkout.id, problems=problems),
                )
        venv_problem: str | None = _ensure_venv(paths, settings, checkout, record, fetch, account)
        if venv_problem:
            problems.append(venv_problem)
        if not collectors:
            problems.append(
                f"no collectors found in {checkout.tree}/metrics/collectors: add one to the "
                "collectors branch (see collectors/README.md)"
            )
    collectors = collectors or []
    schedulable = [c.name for c in collectors if c.problem is None]
    # Computed once per reconcile: 10,000 collectors over 20 units cost 0.4 s of CPU.
    owners = (
        ownership.owners(schedulable, [settings.unit, *settings.peers]) if settings.unit else {}
    )
    scheduled = settings.owned(schedulable, owners)
    skipped = [c for c in collectors if c.problem is not None]
    here = set(scheduled)
    moved_away = sorted((old_scheduled - here) & set(schedulable))

    _make_collector_states(paths)
    apply_log_file(paths, wanted=settings.log_file)
    try:
        units = render_units(
            [c for c in collectors if c.problem is not None or c.name in here],
            _unit_options(paths, settings),
        )
        systemd.apply_units(units, paths.unit_dir, systemctl=_systemctl(systemctl))
    except ValueError as error:
        problems.append(f"units not updated: {error}")
    except systemd.SystemctlError as error:
        problems.append(f"units written but not all applied: {error}: see journalctl -xe")
    try:  # their points go with them: the new owner does not read this unit's spool
        systemd.replay_spools(moved_away, wait=False, systemctl=_systemctl(systemctl))
    except systemd.SystemctlError as error:
        problems.append(f"cannot replay the spools of {', '.join(moved_away)}: {error}")

    new_commit = _live_commit(paths)
    record.update(commit=new_commit, scheduled=scheduled, problems=problems)
    # For the metrics endpoint, which reads this file and nothing root keeps to itself.
    since = record.get("scheduled_since") or {}
    record.update(
        intervals={
            collector.name: _seconds(collector.interval)
            for collector in collectors
            if collector.problem is None
        },
        scheduled_since={name: since.get(name, int(time.time())) for name in scheduled},
        skipped=[collector.name for collector in skipped],
        owners=owners,
        unit=settings.unit,
        source_name=display_url(settings.repo) if settings.repo else "bundled",
        pull_interval=_seconds(settings.pull_interval) if settings.repo else None,
    )
    if fetch:  # a hook that changed nothing writes nothing
        record["last_pull"] = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())
        record["last_pull_ok"] = not problems
    _write_record(paths, record)

    try:
        states = systemd.collector_states(scheduled, systemctl=_systemctl(systemctl))
    except systemd.SystemctlError as error:
        states = {}
        problems.append(f"cannot read the collectors' state from systemd: {error}")
    failing = [name for name in scheduled if name in states and states[name].failed]
    return _Outcome(
        report=Report(
            new_commit,
            scheduled,
            skipped,
            failing,
            problems,
            of_application=len(schedulable) if settings.peers else None,
        ),
        sync=SyncResult(
            old_commit,
            new_commit,
            added=sorted(set(scheduled) - old_scheduled),
            removed=sorted(old_scheduled - set(scheduled)),
            problems=problems,
        ),
    )


def _make_collector_states(paths: Paths) -> None:
    """The folder systemd keeps the collectors' state directories in, made before the metrics
    endpoint starts, which sees only the folders that exist then. As systemd makes them:
    `/var/lib/private` 0700, the folder below it 0755, both root's."""
    private = paths.collector_states.parent
    if not private.is_dir():
        make_dirs(private.parent)
        private.mkdir(mode=0o700, exist_ok=True)
        private.chmod(0o700)
    make_dirs(paths.collector_states)


def _check_out(
    paths: Paths, settings: Settings, account: Account
) -> tuple[Checkout, list[Collector]]:
    """Build the wanted tree beside the live one, validate it, then make it live."""
    make_dirs(paths.state_dir)
    if settings.repo:
        account.ensure()
        checkout = prepare_git(paths, settings, account)
    else:
        checkout = prepare_bundled(paths, settings.bundled_tree)
    collectors = validate(paths, checkout, settings)
    activate(paths, checkout)
    prune_caches(paths, settings.repo)
    return checkout, collectors


def _ensure_venv(
    paths: Paths,
    settings: Settings,
    checkout: Checkout,
    record: dict[str, Any],
    fetch: bool,
    account: Account,
) -> str | None:
    """Make the tree's venv live; a failed install is retried by the next pull, not by every
    hook, since pip may take minutes to fail."""
    wanted = wanted_venv(checkout.tree, base=paths.checkouts)
    if wanted == current_venv(paths) and (paths.venvs / wanted).is_dir():
        record["venv_problem"] = None
        return None
    if not fetch and record.get("venv_failed") == wanted:
        return record.get("venv_problem")
    try:
        account.ensure()
        ensure_venv(paths, checkout.tree, account=account, proxy=settings.proxy)
    except VenvError as error:
        record.update(venv_failed=wanted, venv_problem=str(error))
        return str(error)
    record.update(venv_failed=None, venv_problem=None)
    return None


def _unit_options(paths: Paths, settings: Settings) -> UnitOptions:
    return UnitOptions(
        tree=paths.current,
        venv_python=paths.venv / "bin" / "python3",
        credentials_file=paths.credentials,
        collector_timeout=settings.collector_timeout,
        dry_run=settings.dry_run,
        proxy=settings.proxy,
        pull=bool(settings.repo),
        pull_interval=settings.pull_interval,
        metrics_address=settings.metrics_address,
        metrics_port=settings.metrics_port,
        log_file=settings.log_file,
        paths=paths,
        unit=settings.unit,
    )


def _seconds(interval: str) -> float | None:
    try:
        return parse_run_interval(interval) / 1_000_000
    except ValueError:
        return None


def _when(moment: datetime | None) -> str | None:
    return moment.astimezone(timezone.utc).strftime("%Y-%m-%d %H:%M:%S UTC") if moment else None


def _live_commit(paths: Paths) -> str | None:
    checkout = current_checkout(paths)
    return checkout.id if checkout else None


def _source_key(settings: Settings) -> str:
    """A digest of what decides the tree, for sync.json, which anyone may read: the repository
    URL may hold a token."""
    text = json.dumps(settings.source(), sort_keys=True)
    return hashlib.sha256(text.encode()).hexdigest()


def _read_record(paths: Paths) -> dict[str, Any]:
    try:
        return json.loads(paths.sync_result.read_text())
    except (FileNotFoundError, ValueError):
        return {}


def _write_record(paths: Paths, record: dict[str, Any]) -> None:
    text = json.dumps(record, indent=2, sort_keys=True) + "\n"
    write_if_changed(paths.sync_result, text.encode(), mode=0o644)


@contextlib.contextmanager
def _locked(paths: Paths) -> Iterator[None]:
    make_dirs(paths.state_dir)
    with paths.lock.open("a") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(lock, fcntl.LOCK_UN)


def _systemctl(systemctl: systemd.Systemctl | None) -> systemd.Systemctl:
    return systemctl if systemctl is not None else systemd.Systemctl()
