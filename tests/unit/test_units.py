"""Rendered unit files, checked by the real systemd-analyze (verify and security)."""

import re
import shutil
import subprocess
from pathlib import Path

import pytest

from workload.discovery import Collector
from workload.settings import Proxy
from workload.timespan import parse_timespan
from workload.units import (
    COLLECTOR_DRY_RUN_SERVICE,
    COLLECTOR_REPLAY_SERVICE,
    COLLECTOR_SERVICE,
    EXPORTER_SERVICE,
    GENERATED_MARK,
    LOG_SERVICE,
    MAX_NAME_LENGTH,
    PULL_SERVICE,
    PULL_TIMER,
    TEMPLATES,
    USER_PREFIX,
    UnitOptions,
    collector_timer,
    is_generated,
    is_started,
    render_units,
    write_units,
)

SYSTEMD_ANALYZE = shutil.which("systemd-analyze")
needs_systemd_analyze = pytest.mark.skipif(
    SYSTEMD_ANALYZE is None, reason="systemd-analyze is not installed (Debian package systemd)"
)
# verify checks that ExecStart= binaries exist, so the units point at a real interpreter.
PYTHON = Path(shutil.which("python3") or "/usr/bin/python3").resolve()

COLLECTORS = [
    Collector("fast", "15s", None),
    Collector("hourly", "1h 30min", None),
    Collector("default_interval", "5m", None),
    Collector("fractional", "1.5h", None),
    Collector("tiny", "1s", None),
    Collector("x" * MAX_NAME_LENGTH, "2d", None),
    Collector("broken", "5 parsecs", "metrics/collectors/broken/__init__.py: bad interval"),
]


def options(tmp_path: Path, **overrides: object) -> UnitOptions:
    values: dict[str, object] = {
        "tree": tmp_path / "current",
        "venv_python": PYTHON,
        "credentials_file": tmp_path / "etc" / "influxdb.json",
        "sync_python": PYTHON,
        "sync_pythonpath": (tmp_path / "charm" / "src", tmp_path / "charm" / "venv"),
    }
    values.update(overrides)
    return UnitOptions(**values)  # type: ignore[arg-type]


def directives(content: str, key: str) -> list[str]:
    return re.findall(rf"^{re.escape(key)}=(.*)$", content, flags=re.MULTILINE)


def analyze(*args: str) -> subprocess.CompletedProcess[str]:
    assert SYSTEMD_ANALYZE is not None
    return subprocess.run(
        [SYSTEMD_ANALYZE, *args],
        capture_output=True,
        text=True,
        env={"PATH": "/usr/bin:/bin", "SYSTEMD_COLORS": "0", "LC_ALL": "C.UTF-8"},
        check=False,
    )


def test_templates_are_found_beside_src() -> None:
    names = sorted(path.name for path in TEMPLATES.glob("*.j2"))
    assert names == [
        "logrotate.j2",
        "metrics-collector@.service.j2",
        "metrics-collector@.timer.j2",
        "metrics-exporter.service.j2",
        "metrics-log.service.j2",
        "metrics-pull.service.j2",
        "metrics-pull.timer.j2",
    ]


def test_one_timer_per_schedulable_collector(tmp_path: Path) -> None:
    units = render_units(COLLECTORS, options(tmp_path))
    schedulable = [c.name for c in COLLECTORS if c.problem is None]
    assert sorted(units) == sorted(
        [
            COLLECTOR_SERVICE,
            COLLECTOR_DRY_RUN_SERVICE,
            COLLECTOR_REPLAY_SERVICE,
            PULL_SERVICE,
            PULL_TIMER,
            EXPORTER_SERVICE,
            *map(collector_timer, schedulable),
        ]
    )
    assert collector_timer("broken") not in units
    for name, content in units.items():
        template = "metrics-collector@.timer" if name.endswith(".timer") else name
        template = "metrics-pull.timer" if name == PULL_TIMER else template
        template = (
            COLLECTOR_SERVICE
            if name in (COLLECTOR_DRY_RUN_SERVICE, COLLECTOR_REPLAY_SERVICE)
            else template
        )
        first_line = content.splitlines()[0]
        assert first_line == f"{GENERATED_MARK} from templates/{template}.j2; do not edit."
        assert is_generated(name, content)


@needs_systemd_analyze
def test_systemd_analyze_verify_is_clean_for_every_unit(tmp_path: Path) -> None:
    out = tmp_path / "units"
    units = render_units(
        COLLECTORS,
        options(tmp_path, dry_run=True, proxy=Proxy("http://p:3128"), log_file=True),
    )
    assert LOG_SERVICE in units
    paths = write_units(units, out)
    assert {path.name for path in paths} == set(units)
    result = analyze("verify", "--man=no", *(str(path) for path in paths))
    assert (result.returncode, result.stdout, result.stderr) == (0, "", "")


@needs_systemd_analyze
def test_verify_would_catch_a_missing_interpreter(tmp_path: Path) -> None:
    """The verify test above can fail: a venv python that does not exist is reported."""
    units = render_units([], options(tmp_path, venv_python=tmp_path / "no-venv" / "python3"))
    paths = write_units({COLLECTOR_SERVICE: units[COLLECTOR_SERVICE]}, tmp_path / "units")
    result = analyze("verify", "--man=no", *(str(path) for path in paths))
    assert result.returncode != 0
    assert "is not executable" in result.stderr


@needs_systemd_analyze
@pytest.mark.parametrize("unit", [COLLECTOR_SERVICE, COLLECTOR_DRY_RUN_SERVICE])
def test_collector_service_security_exposure_at_most_1_5(tmp_path: Path, unit: str) -> None:
    units = render_units(COLLECTORS, options(tmp_path))
    (service,) = write_units({unit: units[unit]}, tmp_path / "units")
    result = analyze("security", "--offline=true", str(service))
    match = re.search(r"Overall exposure level for \S+: (\d+\.\d+)", result.stdout)
    assert match, result.stdout + result.stderr
    assert float(match.group(1)) <= 1.5, result.stdout
    # Network access is kept on purpose: collectors fetch from the internet.
    assert re.search(r"✗ RestrictAddressFamilies=~AF_\(INET\|INET6\)", result.stdout)


@needs_systemd_analyze
def test_metrics_endpoint_security_exposure_at_most_1_5(tmp_path: Path) -> None:
    units = render_units([], options(tmp_path))
    (service,) = write_units({EXPORTER_SERVICE: units[EXPORTER_SERVICE]}, tmp_path / "units")
    result = analyze("security", "--offline=true", str(service))
    match = re.search(r"Overall exposure level for \S+: (\d+\.\d+)", result.stdout)
    assert match, result.stdout + result.stderr
    assert float(match.group(1)) <= 1.5, result.stdout
    # Its one capability, to read the collectors' private health files.
    assert re.search(r"✗ CapabilityBoundingSet=~CAP_\(DAC_\*", result.stdout)


@needs_systemd_analyze
def test_log_service_security_exposure_at_most_1_5(tmp_path: Path) -> None:
    units = render_units(COLLECTORS, options(tmp_path, log_file=True))
    (service,) = write_units({LOG_SERVICE: units[LOG_SERVICE]}, tmp_path / "units")
    result = analyze("security", "--offline=true", str(service))
    match = re.search(r"Overall exposure level for \S+: (\d+\.\d+)", result.stdout)
    assert match, result.stdout + result.stderr
    assert float(match.group(1)) <= 1.5, result.stdout
    # It reads the journal and writes its standard output: no network at all.
    assert re.search(r"✓ PrivateNetwork=", result.stdout)


def follower_units(content: str) -> list[str]:
    """The units whose journal the log service copies (its --unit= arguments)."""
    return re.findall(r"--unit=(\S+)", content)


def test_log_service_follows_each_scheduled_collector_its_dry_runs_and_the_pull(
    tmp_path: Path,
) -> None:
    units = render_units(COLLECTORS, options(tmp_path, log_file=True))

    scheduled = [c.name for c in COLLECTORS if c.problem is None]
    content = units[LOG_SERVICE]
    assert sorted(follower_units(content)) == sorted(
        [
            *(f"metrics-collector@{name}.service" for name in scheduled),
            *(f"metrics-collector-dry-run@{name}.service" for name in scheduled),
            PULL_SERVICE,
        ]
    )
    # Exact names only: journalctl expands a pattern against the units it already knows.
    assert not [unit for unit in follower_units(content) if "*" in unit or "?" in unit]
    assert directives(content, "StandardOutput") == [
        "append:/var/log/ubuntu-community-metrics/collectors.log"
    ]
    assert directives(content, "DynamicUser") == ["yes"]
    assert directives(content, "SupplementaryGroups") == ["systemd-journal"]
    assert is_started(LOG_SERVICE)


def test_no_log_service_unless_asked_or_with_nothing_to_follow(tmp_path: Path) -> None:
    assert LOG_SERVICE not in render_units(COLLECTORS, options(tmp_path))
    # The bundled tree has no pull; with no collector either, journalctl would copy everything.
    nothing = render_units([], options(tmp_path, log_file=True, pull=False))
    assert LOG_SERVICE not in nothing
    bundled = render_units(COLLECTORS, options(tmp_path, log_file=True, pull=False))
    assert PULL_SERVICE not in follower_units(bundled[LOG_SERVICE])


@pytest.mark.parametrize(
    ("address", "port", "loopback"),
    [("127.0.0.1", 9581, True), ("0.0.0.0", 9100, False), ("::", 9581, False), ("::1", 1, True)],  # noqa: S104
)
def test_metrics_endpoint_listens_where_configured(
    tmp_path: Path, address: str, port: int, loopback: bool
) -> None:
    units = render_units([], options(tmp_path, metrics_address=address, metrics_port=port))
    service = units[EXPORTER_SERVICE]
    assert directives(service, "ExecStart") == [
        f"{PYTHON} -m workload exporter --address {address} --port {port}"
    ]
    assert directives(service, "IPAddressDeny") == (["any"] if loopback else [])
    assert directives(service, "AmbientCapabilities") == ["CAP_DAC_READ_SEARCH"]


@pytest.mark.parametrize(
    ("address", "port", "problem"),
    [
        ("localhost", 9581, "config metrics-address='localhost' is not an IP address"),
        ("127.0.0.1 --port 1", 9581, "is not an IP address"),
        ("127.0.0.1", 0, "config metrics-port=0 is not a TCP port"),
        ("127.0.0.1", 65536, "config metrics-port=65536 is not a TCP port"),
    ],
)
def test_a_bad_metrics_address_or_port_is_refused_naming_the_option(
    tmp_path: Path, address: str, port: int, problem: str
) -> None:
    with pytest.raises(ValueError, match=re.escape(problem)):
        render_units([], options(tmp_path, metrics_address=address, metrics_port=port))


def test_collector_service_runs_the_collector_sandboxed(tmp_path: Path) -> None:
    opts = options(tmp_path, collector_timeout="7min 30s")
    service = render_units([], opts)[COLLECTOR_SERVICE]
    assert directives(service, "Type") == ["oneshot"]
    assert directives(service, "ExecStart") == [f"{PYTHON} -m metrics.collectors.%i"]
    assert directives(service, "WorkingDirectory") == [str(tmp_path / "current")]
    assert directives(service, "TimeoutStartSec") == ["7min 30s"]
    assert directives(service, "DynamicUser") == ["yes"]
    assert directives(service, "User") == ["mc-%i"]
    assert directives(service, "StateDirectory") == ["metrics-collector/%i"]
    assert directives(service, "StateDirectoryMode") == ["0700"]
    assert directives(service, "LoadCredential") == [f"influxdb:{tmp_path}/etc/influxdb.json"]
    assert directives(service, "InaccessiblePaths") == [f"-{tmp_path}/etc"]
    assert directives(service, "ProtectSystem") == ["strict"]
    assert directives(service, "RestrictAddressFamilies") == ["AF_UNIX AF_INET AF_INET6"]
    assert directives(service, "PrivateNetwork") == []
    assert directives(service, "EnvironmentFile") == []


def test_dry_run_and_proxy(tmp_path: Path) -> None:
    proxy = Proxy(http="http://proxy:3128", https="http://proxy:3129", no_proxy='a,b %x"\\y')
    service = render_units([], options(tmp_path, dry_run=True, proxy=proxy))[COLLECTOR_SERVICE]
    assert directives(service, "ExecStart") == [f"{PYTHON} -m metrics.collectors.%i --dry-run"]
    environment = directives(service, "Environment")
    assert '"HTTP_PROXY=http://proxy:3128"' in environment
    assert '"https_proxy=http://proxy:3129"' in environment
    # systemd turns %% into %, \" into " and \\ into \ again.
    assert '"NO_PROXY=a,b %%x\\"\\\\y"' in environment
    assert not any("INFLUX" in line for line in environment)


def test_dry_run_twin_differs_only_by_dry_run(tmp_path: Path) -> None:
    units = render_units([], options(tmp_path))
    service = units[COLLECTOR_SERVICE].splitlines()
    twin = units[COLLECTOR_DRY_RUN_SERVICE].splitlines()
    differences = [(a, b) for a, b in zip(service, twin, strict=True) if a != b]
    assert differences == [
        (
            "Description=Metrics collector %i (ubuntu-community-metrics)",
            "Description=Metrics collector %i (dry run) (ubuntu-community-metrics)",
        ),
        (
            f"ExecStart={PYTHON} -m metrics.collectors.%i",
            f"ExecStart={PYTHON} -m metrics.collectors.%i --dry-run",
        ),
    ]


def test_no_proxy_variables_without_a_proxy(tmp_path: Path) -> None:
    service = render_units([], options(tmp_path))[COLLECTOR_SERVICE]
    names = [line.strip('"').split("=")[0] for line in directives(service, "Environment")]
    assert names == ["PYTHONDONTWRITEBYTECODE", "PYTHONUNBUFFERED"]


@pytest.mark.parametrize(
    ("interval", "every", "boot", "randomized", "accuracy"),
    [
        ("15s", "15s", "15s", "1s 500ms", "1s"),
        ("5m", "5min", "5min", "30s", "1s"),
        ("1h 30min", "1h 30min", "5min", "5min", "1s"),
        ("1s", "1s", "1s", "100ms", "100ms"),
        ("1.5", "1s 500ms", "1s 500ms", "150ms", "150ms"),
    ],
)
def test_timer_schedule(
    tmp_path: Path, interval: str, every: str, boot: str, randomized: str, accuracy: str
) -> None:
    units = render_units([Collector("c", interval, None)], options(tmp_path))
    timer = units[collector_timer("c")]
    assert directives(timer, "Unit") == ["metrics-collector@c.service"]
    assert directives(timer, "OnUnitInactiveSec") == [every]
    assert directives(timer, "OnBootSec") == [boot]
    assert directives(timer, "RandomizedDelaySec") == [randomized]
    assert directives(timer, "AccuracySec") == [accuracy]
    assert directives(timer, "WantedBy") == ["timers.target"]
    # A collector runs at most a tenth of its interval late (plus systemd's accuracy).
    period = parse_timespan(interval)
    assert parse_timespan(randomized) <= period // 10
    assert parse_timespan(accuracy) <= max(1, min(period // 10, 1_000_000))


def test_interval_is_rendered_canonically_never_verbatim(tmp_path: Path) -> None:
    """A RUN_INTERVAL literal with a newline cannot smuggle a directive into the timer."""
    units = render_units([Collector("c", "5m\n5s", None)], options(tmp_path))
    timer = units[collector_timer("c")]
    assert directives(timer, "OnUnitInactiveSec") == ["5min 5s"]
    assert "\n5s\n" not in timer


def test_pull_units(tmp_path: Path) -> None:
    units = render_units([], options(tmp_path, pull_interval="30min"))
    service, timer = units[PULL_SERVICE], units[PULL_TIMER]
    assert directives(service, "ExecStart") == [f"{PYTHON} -m workload sync"]
    assert f"PYTHONPATH={tmp_path}/charm/src:{tmp_path}/charm/venv" in directives(
        service, "Environment"
    )
    assert directives(timer, "OnUnitInactiveSec") == ["30min"]
    assert PULL_SERVICE not in render_units([], options(tmp_path, pull=False))


@pytest.mark.parametrize(
    ("collector", "message"),
    [
        (Collector("x" * (MAX_NAME_LENGTH + 1), "5m", None), "at most 28 characters"),
        (Collector("n\u00e4me", "5m", None), "ASCII Python identifier"),
        (Collector("a-b", "5m", None), "rename its folder"),
        (Collector("zero", "0", None), "collector 'zero': RUN_INTERVAL '0' is zero"),
    ],
)
def test_unschedulable_collector_is_named(
    tmp_path: Path, collector: Collector, message: str
) -> None:
    with pytest.raises(ValueError, match=re.escape(message)):
        render_units([collector], options(tmp_path))


def test_duplicate_collector(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="'a' is listed twice"):
        render_units([Collector("a", "5m", None), Collector("a", "1h", None)], options(tmp_path))


@pytest.mark.parametrize(
    ("overrides", "message"),
    [
        ({"collector_timeout": "ten minutes"}, "config collector-timeout: invalid systemd"),
        ({"collector_timeout": "0"}, "config collector-timeout must be longer than 0"),
        ({"pull_interval": "infinity"}, "config pull-interval: RUN_INTERVAL 'infinity'"),
        ({"proxy": Proxy(http="http://user:secret@proxy:3128")}, "config http-proxy contains"),
        ({"proxy": Proxy(https="http://p\n:3128")}, "config https-proxy contains a control"),
        ({"tree": Path("/srv/my tree")}, "collectors tree '/srv/my tree' cannot go in"),
        ({"venv_python": Path("relative/python")}, "venv python 'relative/python'"),
        ({"credentials_file": Path("/etc/100%.json")}, "credentials file"),
    ],
)
def test_bad_options_are_named(tmp_path: Path, overrides: dict[str, object], message: str) -> None:
    with pytest.raises(ValueError, match=re.escape(message)):
        render_units([], options(tmp_path, **overrides))


def test_credentials_never_reach_a_unit_file(tmp_path: Path) -> None:
    """Only the credentials file's path is in a unit, never its content."""
    credentials = tmp_path / "etc" / "influxdb.json"
    credentials.parent.mkdir()
    credentials.write_text('{"password": "hunter2-secret"}')
    units = render_units(COLLECTORS, options(tmp_path))
    assert not any("hunter2" in content for content in units.values())


def test_is_generated_recognises_only_our_files() -> None:
    mark = f"{GENERATED_MARK} from templates/x.j2; do not edit.\n"
    assert is_generated("metrics-collector@abc.timer", mark)
    assert is_generated("metrics-pull.timer", mark)
    assert not is_generated("metrics-collector@abc.timer", "[Timer]\n")
    assert is_generated("metrics-collector-dry-run@.service", mark)
    assert is_generated("metrics-log.service", mark)
    assert not is_generated("metrics-collector@abc.service", mark)
    assert not is_generated("other.timer", mark)
    assert not is_generated("metrics-collector@a-b.timer", mark)


def test_the_longest_collector_name_discovery_accepts_makes_a_valid_systemd_user_name() -> None:
    # systemd refuses user names longer than 31 characters (the unit would not start).
    assert len(USER_PREFIX + "x" * MAX_NAME_LENGTH) == 31
