"""The Nagios plugin (`workload/checks.py`, installed as check_ucm) against the real metrics
endpoint: `python3 -m workload exporter` in its own process over a temporary root, with
sync.json as sync writes it and health.json as the collectors' framework writes it. The plugin
runs as NRPE runs it: the file alone, on the system's Python in isolated mode."""

from __future__ import annotations

import http.server
import json
import shutil
import subprocess
import sys
import threading
import time
import urllib.request
from collections.abc import Iterator
from pathlib import Path

import pytest
from metrics.lib.health import record_run
from metrics.testing import free_port
from prometheus_client.parser import text_string_to_metric_families

from workload import checks, nagios
from workload.paths import Paths

REPOSITORY = Path(__file__).resolve().parents[2]
UNIT = "ubuntu-community-metrics/0"
SYSTEM_PYTHON = "/usr/bin/python3"


@pytest.fixture
def plugin(tmp_path: Path) -> Path:
    """The plugin alone in a folder, as the charm installs it."""
    installed = nagios.install_plugin(root=tmp_path / "machine")
    assert installed.read_bytes() == Path(checks.__file__).read_bytes()
    return installed


def run_plugin(plugin: Path, kind: str, url: str, *extra: str) -> tuple[int, str]:
    result = subprocess.run(
        [SYSTEM_PYTHON, "-I", str(plugin), kind, "--url", url, "--unit", UNIT, *extra],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
        cwd="/",
    )
    lines = result.stdout.splitlines()
    assert len(lines) == 1, (result.stdout, result.stderr)
    return result.returncode, lines[0]


def write_sync(paths: Paths, **record: object) -> None:
    paths.sync_result.parent.mkdir(parents=True, exist_ok=True)
    paths.sync_result.write_text(json.dumps(record))


def runs(paths: Paths, name: str, *outcomes: bool, ended: float | None = None) -> None:
    """Runs of collector `name`, recorded by the framework's own health code."""
    at = time.time() if ended is None else ended
    for ok in outcomes:
        record_run(
            paths.collector_states / name,
            started=at - 1,
            ended=at,
            ok=ok,
            written=1 if ok else 0,
            dropped=0,
            spooled_now=0,
        )


def collectors(paths: Paths, intervals: dict[str, float], since: float) -> None:
    write_sync(
        paths,
        commit="0123456789abcdef0123456789abcdef01234567",
        source_name="https://git.example/team/collectors.git",
        scheduled=list(intervals),
        intervals=intervals,
        scheduled_since=dict.fromkeys(intervals, since),
        last_pull=time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
        last_pull_ok=True,
        pull_interval=3600.0,
    )


# stale


def test_stale_is_ok_when_every_collector_succeeded_lately(
    endpoint: tuple[Paths, str], plugin: Path
) -> None:
    paths, url = endpoint
    collectors(paths, {"ticker": 60.0, "hourly": 3600.0}, since=time.time() - 86400)
    runs(paths, "ticker", True)
    runs(paths, "hourly", True, ended=time.time() - 2 * 3600)  # within 3 intervals
    code, line = run_plugin(plugin, "stale", url)
    assert code == checks.OK
    assert line.startswith("UCM STALE OK: every collector (2) succeeded"), line
    assert line.endswith("| stale=0;1;;0 collectors=2;;;0"), line


def test_stale_warns_naming_each_collector_late_by_the_alert_threshold(
    endpoint: tuple[Paths, str], plugin: Path
) -> None:
    paths, url = endpoint
    now = time.time()
    collectors(
        paths,
        {"ticker": 60.0, "late": 60.0, "slow": 60.0, "hourly": 3600.0, "never_ran": 60.0},
        since=now - 1000,
    )
    runs(paths, "ticker", True)
    runs(paths, "late", True, ended=now - 3700)  # 15 minutes is the floor: stale
    runs(paths, "slow", True, ended=now - 600)  # 3 intervals past, not 15 minutes: fine
    runs(paths, "hourly", True, False, ended=now - 4 * 3600)  # 3 hours past: stale
    # never_ran: stale from when it was first scheduled, 1000 s ago.
    code, line = run_plugin(plugin, "stale", url)
    assert code == checks.WARNING
    assert line.startswith("UCM STALE WARNING: 3 of 5 collectors have not succeeded"), line
    assert "hourly (4h 0min), late (1h 1min), never_ran (16min)" in line, line
    for quiet in ("ticker", "slow"):
        assert quiet not in line
    assert f"juju run {UNIT} run-collector name=hourly" in line
    assert f"juju run {UNIT} list-collectors" in line
    assert "| stale=3;1;;0 collectors=5;;;0" in line


# failing


def test_failing_is_ok_until_two_runs_in_a_row_fail(
    endpoint: tuple[Paths, str], plugin: Path
) -> None:
    paths, url = endpoint
    collectors(paths, {"ticker": 60.0, "flaky": 60.0}, since=time.time())
    runs(paths, "ticker", True)
    runs(paths, "flaky", False, True, False)  # one failure since the last success
    code, line = run_plugin(plugin, "failing", url)
    assert code == checks.OK
    assert line.startswith("UCM FAILING OK: no collector failed its last 2 runs (2 ran)"), line


def test_failing_warns_naming_the_collector_its_log_and_a_dry_run(
    endpoint: tuple[Paths, str], plugin: Path
) -> None:
    paths, url = endpoint
    collectors(paths, {"ticker": 60.0, "raises": 60.0, "flaky": 60.0}, since=time.time())
    runs(paths, "ticker", True)
    runs(paths, "raises", True, False, False, False)
    runs(paths, "flaky", False)
    code, line = run_plugin(plugin, "failing", url)
    assert code == checks.WARNING
    assert line.startswith("UCM FAILING WARNING: 1 of 3 collectors failed their last runs: "
                           "raises (3 in a row)."), line  # fmt: skip
    assert "journalctl -u metrics-collector@raises.service -n 50" in line
    assert f"juju run {UNIT} run-collector name=raises dry-run=true" in line
    assert "flaky" not in line
    assert line.endswith("| failing=1;1;;0 collectors=3;;;0"), line


def test_many_failing_collectors_stay_on_one_short_line(
    endpoint: tuple[Paths, str], plugin: Path
) -> None:
    paths, url = endpoint
    names = {f"broken_{n:02}": 60.0 for n in range(40)}
    collectors(paths, names, since=time.time())
    for name in names:
        runs(paths, name, False, False)
    code, line = run_plugin(plugin, "failing", url)
    assert code == checks.WARNING
    assert "broken_04 (2 in a row) and 35 more." in line, line
    assert len(line) < 1024


# pull


def test_pull_of_a_branch_that_succeeded_is_ok(endpoint: tuple[Paths, str], plugin: Path) -> None:
    paths, url = endpoint
    collectors(paths, {"ticker": 60.0}, since=time.time())
    code, line = run_plugin(plugin, "pull", url)
    assert code == checks.OK
    assert line.startswith(
        "UCM PULL OK: the last pull of https://git.example/team/collectors.git ("
    ), line
    assert "succeeded: commit 0123456789ab" in line


def test_pull_before_the_first_timer_pull_is_ok(endpoint: tuple[Paths, str], plugin: Path) -> None:
    # As a hook leaves it: the branch cloned, metrics-pull.timer not yet run.
    paths, url = endpoint
    collectors(paths, {"ticker": 60.0}, since=time.time())
    record = json.loads(paths.sync_result.read_text())
    del record["last_pull"], record["last_pull_ok"]
    paths.sync_result.write_text(json.dumps(record))
    code, line = run_plugin(plugin, "pull", url)
    assert (code, line) == (
        checks.OK,
        "UCM PULL OK: https://git.example/team/collectors.git is checked out at commit "
        "0123456789ab, not pulled since",
    )


def test_pull_with_the_bundled_tree_is_ok(endpoint: tuple[Paths, str], plugin: Path) -> None:
    paths, url = endpoint
    write_sync(paths, commit="bundled-abc", scheduled=[], source_name="bundled")
    code, line = run_plugin(plugin, "pull", url)
    assert (code, line) == (
        checks.OK,
        "UCM PULL OK: no branch to pull: the unit runs the collectors bundled in the charm",
    )


def test_a_failed_pull_warns_with_the_commit_kept_and_the_fixes(
    endpoint: tuple[Paths, str], plugin: Path
) -> None:
    paths, url = endpoint
    collectors(paths, {"ticker": 60.0}, since=time.time())
    record = json.loads(paths.sync_result.read_text())
    paths.sync_result.write_text(json.dumps({**record, "last_pull_ok": False}))
    code, line = run_plugin(plugin, "pull", url)
    assert code == checks.WARNING
    assert "failed: the unit keeps running commit 0123456789ab" in line, line
    assert f"juju status {UNIT}" in line
    assert "journalctl -u metrics-pull.service -n 50" in line
    assert line.split(" | ")[0].endswith(f"juju run {UNIT} pull"), line


def test_no_pull_for_three_pull_intervals_warns(endpoint: tuple[Paths, str], plugin: Path) -> None:
    paths, url = endpoint
    collectors(paths, {"ticker": 60.0}, since=time.time())
    record = json.loads(paths.sync_result.read_text())
    hours_ago = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(time.time() - 3 * 3600 - 120))
    paths.sync_result.write_text(json.dumps({**record, "last_pull": hours_ago}))
    code, line = run_plugin(plugin, "pull", url)
    assert code == checks.WARNING
    assert "more than 3 pull intervals: the pull timer does not run" in line, line
    assert "systemctl list-timers metrics-pull.timer" in line


def test_pull_before_any_checkout_is_unknown(endpoint: tuple[Paths, str], plugin: Path) -> None:
    _, url = endpoint
    code, line = run_plugin(plugin, "pull", url)
    assert code == checks.UNKNOWN
    assert (
        line == f"UCM PULL UNKNOWN: no collectors tree is checked out yet: see juju status {UNIT}"
    )


# the endpoint


@pytest.mark.parametrize("kind", checks.KINDS)
def test_an_endpoint_that_does_not_answer_is_critical_naming_its_service(
    plugin: Path, kind: str
) -> None:
    url = f"http://127.0.0.1:{free_port()}/metrics"
    code, line = run_plugin(plugin, kind, url)
    assert code == checks.CRITICAL
    assert line.startswith(f"UCM {kind.upper()} CRITICAL: the metrics endpoint {url} does not "
                           "answer ("), line  # fmt: skip
    assert "systemctl status metrics-exporter.service" in line


class _Answer(http.server.BaseHTTPRequestHandler):
    pages = {  # noqa: RUF012 - read only
        "/metrics": (200, "# HELP up whatever\nup 1\n"),
        "/garbage": (200, "<html>not metrics</html>\n"),
    }

    def do_GET(self) -> None:
        status, body = self.pages.get(self.path, (404, "not found"))
        self.send_response(status)
        self.end_headers()
        self.wfile.write(body.encode())

    def log_message(self, format: str, *args: object) -> None:
        pass


@pytest.fixture
def other_server() -> Iterator[str]:
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), _Answer)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.server_address[1]}"
    server.shutdown()
    server.server_close()


@pytest.mark.parametrize(
    ("path", "says"),
    [
        ("/metrics", "answered metrics, but not this charm's"),
        ("/garbage", "answered something else than metrics"),
        ("/nothing", "answered HTTP 404"),
    ],
)
def test_another_server_on_the_port_is_unknown(
    plugin: Path, other_server: str, path: str, says: str
) -> None:
    code, line = run_plugin(plugin, "failing", other_server + path)
    assert code == checks.UNKNOWN
    assert line.startswith("UCM FAILING UNKNOWN: "), line
    assert says in line, line


def test_a_bad_command_line_is_unknown(plugin: Path) -> None:
    result = subprocess.run(
        [SYSTEM_PYTHON, "-I", str(plugin), "everything"],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert result.returncode == checks.UNKNOWN, result


def test_the_workload_cli_runs_the_same_check(endpoint: tuple[Paths, str]) -> None:
    paths, url = endpoint
    collectors(paths, {"raises": 60.0}, since=time.time())
    runs(paths, "raises", False, False)
    result = subprocess.run(
        [sys.executable, "-m", "workload", "check", "failing", "--url", url, "--unit", UNIT],
        cwd=REPOSITORY / "src",
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert result.returncode == checks.WARNING, result
    assert result.stdout.startswith("UCM FAILING WARNING: 1 of 1 collectors"), result.stdout


def test_the_plugin_reads_the_page_as_prometheus_does(endpoint: tuple[Paths, str]) -> None:
    paths, url = endpoint
    collectors(paths, {"ticker": 60.0, "raises": 60.0}, since=time.time())
    record = json.loads(paths.sync_result.read_text())
    # A source whose display name needs every escape of the text format.
    odd = 'https://git.example/a "quoted" back\\slash\nrepo'
    paths.sync_result.write_text(json.dumps({**record, "source_name": odd}))
    runs(paths, "ticker", True, True)
    runs(paths, "raises", False)
    with urllib.request.urlopen(url, timeout=10) as response:
        page = response.read().decode()

    ours = {
        (name, tuple(sorted(labels.items())), value)
        for name, samples in checks.parse_metrics(page).items()
        for labels, value in samples
    }
    theirs = {
        (sample.name, tuple(sorted(sample.labels.items())), sample.value)
        for family in text_string_to_metric_families(page)
        for sample in family.samples
    }
    assert ours == theirs
    assert ("ucm_commit_info", (("commit", record["commit"]), ("source", odd)), 1.0) in ours


# installing


def test_the_plugin_is_installed_for_every_user_to_run_and_removed(tmp_path: Path) -> None:
    root = tmp_path / "machine"
    path = nagios.install_plugin(root=root)
    assert path == root / "usr/local/lib/nagios/plugins/check_ucm"
    assert path.stat().st_mode & 0o7777 == 0o755
    assert path.parent.stat().st_mode & 0o777 == 0o755
    assert path.read_text().startswith("#!/usr/bin/python3 -I\n")
    assert shutil.which("check_ucm", path=str(path.parent)) == str(path)
    nagios.remove_plugin(root=root)
    assert not path.exists()
    nagios.remove_plugin(root=root)  # already gone: nothing to do


@pytest.mark.parametrize(
    ("address", "url"),
    [
        ("127.0.0.1", "http://127.0.0.1:9581/metrics"),
        ("0.0.0.0", "http://127.0.0.1:9581/metrics"),  # noqa: S104 - what the option may say
        ("::", "http://[::1]:9581/metrics"),
        ("10.1.2.3", "http://10.1.2.3:9581/metrics"),
        ("fd00::5", "http://[fd00::5]:9581/metrics"),
    ],
)
def test_the_checks_reach_the_endpoint_where_it_listens(address: str, url: str) -> None:
    assert nagios.endpoint_url(address, 9581) == url
