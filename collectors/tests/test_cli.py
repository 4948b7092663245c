"""The command lines, run as the charm and operators run them: in a new process."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

from metrics.testing import InfluxServer, UpstreamServer, free_port

COLLECTORS = Path(__file__).resolve().parents[1]
RECORDED = Path(__file__).parent / "recorded"


def run(
    *args: str, env: dict[str, str] | None = None, cwd: Path = COLLECTORS
) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", *args],
        cwd=cwd,
        env={"PATH": os.environ["PATH"], **(env or {})},
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )


def tree_with(tmp_path: Path, name: str, files: dict[str, str]) -> Path:
    """A collectors tree: this framework plus the collector `name` made of `files`."""
    tree = tmp_path / "collectors"
    shutil.copytree(COLLECTORS / "metrics", tree / "metrics")
    folder = tree / "metrics" / "collectors" / name
    folder.mkdir()
    for file_name, text in files.items():
        (folder / file_name).write_text(text)
    return tree


def test_list_shows_every_bundled_collector_without_problems() -> None:
    """Whatever collectors the tree holds: each folder is listed once, schedulable."""
    folders = sorted(
        path.parent.name
        for path in (COLLECTORS / "metrics" / "collectors").glob("*/__init__.py")
        if not path.parent.name.startswith(("_", "."))
    )
    listed = run("metrics", "list")
    as_json = run("metrics", "list", "--json")

    assert listed.returncode == 0, listed.stderr
    assert folders, "the bundled tree has no collector"
    assert [line.split()[0] for line in listed.stdout.splitlines()] == folders
    entries = json.loads(as_json.stdout)
    assert [entry["name"] for entry in entries] == folders
    assert [entry["problem"] for entry in entries] == [None] * len(folders)
    for line, entry in zip(listed.stdout.splitlines(), entries, strict=True):
        assert line.split() == [entry["name"], entry["interval"]]


def test_list_reports_a_broken_collector_and_run_refuses_it(tmp_path: Path) -> None:
    tree = tmp_path / "collectors"
    shutil.copytree(COLLECTORS / "metrics", tree / "metrics")
    broken = tree / "metrics" / "collectors" / "broken"
    broken.mkdir()
    (broken / "__init__.py").write_text('RUN_INTERVAL = "5 parsecs"\nfrom .x import run_metric\n')

    listed = run("metrics", "list", cwd=tree)
    refused = run("metrics", "run", "broken", cwd=tree)

    assert listed.returncode == 1
    assert (
        "broken                   5 parsecs   metrics/collectors/broken/__init__.py line 1: "
        "RUN_INTERVAL: invalid systemd time span '5 parsecs'"
    ) in listed.stdout
    assert refused.returncode == 2
    assert "collector 'broken' cannot run: metrics/collectors/broken/__init__.py" in refused.stderr


OLD_STYLE_COLLECTOR = {
    "__init__.py": "def run_metric():\n    pass\n",
    "__main__.py": (
        "from metrics.lib.basemetric import run_metric_main\n"
        'run_metric_main("metrics.collectors.legacy.collector", "Legacy")\n'
    ),
    "collector.py": (
        "from metrics.lib.basemetric import Metric\n"
        "class Legacy(Metric):\n"
        "    def collect(self):\n"
        '        return [{"measurement": "legacy", "fields": {"count": 1}}]\n'
    ),
}


def test_a_collector_written_for_the_original_framework_still_runs(tmp_path: Path) -> None:
    tree = tree_with(tmp_path, "legacy", OLD_STYLE_COLLECTOR)

    direct = run("metrics.collectors.legacy", "--dry-run", cwd=tree)
    through_run = run("metrics", "run", "legacy", "--dry-run", cwd=tree)

    for result in (direct, through_run):
        assert result.returncode == 0, result.stderr
        assert result.stdout == "legacy count=1i\n"


def test_run_dry_run_prints_points_and_needs_no_credentials() -> None:
    body = (RECORDED / "autopkgtest_queues.json").read_text()
    with UpstreamServer({"/queues.json": (200, body)}) as upstream:
        result = run(
            "metrics",
            "run",
            "autopkgtest_queues",
            "--dry-run",
            env={"AUTOPKGTEST_URL": upstream.url},
        )

    assert result.returncode == 0, result.stderr
    assert "autopkgtest_queue_size,arch=s390x,queue=ubuntu,release=noble count=1i" in result.stdout
    assert len(result.stdout.splitlines()) == 5


def test_run_unknown_collector_says_which_exist() -> None:
    result = run("metrics", "run", "nope")

    assert result.returncode == 2
    assert "no collector 'nope'" in result.stderr
    assert "autopkgtest_queues" in result.stderr


def test_collector_main_exits_1_and_reports_unreachable_upstream(tmp_path: Path) -> None:
    upstream = f"http://127.0.0.1:{free_port()}"
    with InfluxServer() as influx:
        influx.create_database("metrics")
        result = run(
            "metrics.collectors.autopkgtest_queues",
            env={
                "AUTOPKGTEST_URL": upstream,
                "INFLUXDB_HOSTNAME": influx.host,
                "INFLUXDB_PORT": str(influx.port),
                "INFLUXDB_DATABASE": "metrics",
                "STATE_DIRECTORY": str(tmp_path),
            },
        )
        (health,) = influx.query('SELECT * FROM "collector_run"', "metrics")

    assert result.returncode == 1
    assert f"collector failed: cannot fetch {upstream}/queues.json" in result.stderr
    assert health["ok"] is False
    assert health["collector"] == "autopkgtest_queues"


# A collector like six of the original ten: it logs in to its upstream while it is constructed,
# before Metric.run() can report anything.
LOGIN_IN_INIT = {
    "__init__.py": 'RUN_INTERVAL = "5m"\nfrom .collector import run_metric\n',
    "__main__.py": (
        "import sys\nfrom metrics.lib.basemetric import main\nfrom . import run_metric\n"
        "sys.exit(main(run_metric))\n"
    ),
    "collector.py": (
        "from metrics.lib.basemetric import Metric\n"
        "class NeedsLogin(Metric):\n"
        "    def __init__(self, dry_run=False, verbose=False):\n"
        "        super().__init__(dry_run, verbose)\n"
        "        raise ConnectionError('cannot log in to the tracker\\nsecond line')\n"
        "    def collect(self):\n"
        "        return []\n"
        "def run_metric(dry_run=False, verbose=False):\n"
        "    NeedsLogin(dry_run, verbose).run()\n"
    ),
}


def test_a_failure_before_the_run_still_reports_its_health_in_one_line(tmp_path: Path) -> None:
    tree = tree_with(tmp_path, "needs_login", LOGIN_IN_INIT)
    with InfluxServer() as influx:
        influx.create_database("metrics")
        env = {
            "INFLUXDB_HOSTNAME": influx.host,
            "INFLUXDB_PORT": str(influx.port),
            "INFLUXDB_DATABASE": "metrics",
            "STATE_DIRECTORY": str(tmp_path / "state"),
        }
        quiet = run("metrics.collectors.needs_login", env=env, cwd=tree)
        verbose = run("metrics.collectors.needs_login", "--verbose", env=env, cwd=tree)
        health = influx.query('SELECT * FROM "collector_run"', "metrics")

    assert quiet.returncode == 1
    assert quiet.stderr == (
        "ERROR metrics: collector failed before its run: ConnectionError: cannot log in to the"
        " tracker\n"
    )
    assert verbose.returncode == 1
    assert "Traceback" in verbose.stderr
    assert len(health) == 2
    assert health[0]["collector"] == "needs_login"
    assert health[0]["ok"] is False
    assert health[0]["error"] == "ConnectionError: cannot log in to the tracker"


# A collector whose own module fails to import (a dependency missing from requirements.txt):
# the error comes before any framework code of the collector runs.
IMPORT_FAILS = {
    "__init__.py": 'RUN_INTERVAL = "5m"\nimport not_in_requirements  # noqa\n',
    "__main__.py": "from . import run_metric\nrun_metric()\n",
}


def test_an_import_failure_in_the_collector_still_reports_its_health(tmp_path: Path) -> None:
    tree = tree_with(tmp_path, "needs_module", IMPORT_FAILS)
    state = tmp_path / "state"
    with InfluxServer() as influx:
        influx.create_database("metrics")
        env = {
            "INFLUXDB_HOSTNAME": influx.host,
            "INFLUXDB_PORT": str(influx.port),
            "INFLUXDB_DATABASE": "metrics",
            "STATE_DIRECTORY": str(state),
        }
        quiet = run("metrics.collectors.needs_module", env=env, cwd=tree)
        verbose = run("metrics.collectors.needs_module", "-v", env=env, cwd=tree)
        dry_run = run("metrics.collectors.needs_module", "--dry-run", env=env, cwd=tree)
        health = influx.query('SELECT * FROM "collector_run"', "metrics")

    failure = "ModuleNotFoundError: No module named 'not_in_requirements'"
    assert quiet.returncode == 1
    assert quiet.stderr == f"ERROR metrics: collector failed while importing it: {failure}\n"
    assert verbose.returncode == 1
    assert "Traceback" in verbose.stderr
    assert dry_run.returncode == 1  # a dry run reports nothing, and shows the traceback
    assert "Traceback" in dry_run.stderr
    assert [(point["collector"], point["ok"], point["error"]) for point in health] == [
        ("needs_module", False, failure)
    ] * 2
    record = json.loads((state / "health.json").read_text())
    assert record["runs_total"] == 2
    assert record["consecutive_failures"] == 2
    assert record["last_success"] is None


def test_each_run_is_kept_in_health_json_for_the_metrics_endpoint(tmp_path: Path) -> None:
    tree = tree_with(tmp_path, "legacy", OLD_STYLE_COLLECTOR)
    state = tmp_path / "state"
    with InfluxServer() as influx:
        influx.create_database("metrics")
        env = {
            "INFLUXDB_HOSTNAME": influx.host,
            "INFLUXDB_PORT": str(influx.port),
            "INFLUXDB_DATABASE": "metrics",
            "STATE_DIRECTORY": str(state),
        }
        first = run("metrics.collectors.legacy", env=env, cwd=tree)
        after_first = json.loads((state / "health.json").read_text())
        influx.stop()
        down = run("metrics.collectors.legacy", env=env, cwd=tree)
    after_down = json.loads((state / "health.json").read_text())

    assert first.returncode == 0, first.stderr
    assert after_first["last_run_ok"] is True
    assert after_first["last_success"] == after_first["last_run_ended"]
    assert after_first["last_run_started"] <= after_first["last_run_ended"]
    assert (after_first["points_written_total"], after_first["spooled_points"]) == (1, 0)
    assert down.returncode == 1
    assert after_down["last_run_ok"] is False
    assert after_down["last_success"] == after_first["last_success"]
    assert after_down["consecutive_failures"] == 1
    assert after_down["runs_total"] == 2
    # The collector's point and the run's own health point wait in the spool.
    assert (after_down["points_written_total"], after_down["spooled_points"]) == (1, 2)


def test_running_a_collector_the_charm_would_skip_warns(tmp_path: Path) -> None:
    tree = tree_with(tmp_path, "legacy", OLD_STYLE_COLLECTOR)
    legacy = tree / "metrics" / "collectors" / "legacy"
    (legacy / "__init__.py").write_text(
        'RUN_INTERVAL = "every tuesday"\n' + OLD_STYLE_COLLECTOR["__init__.py"]
    )

    result = run("metrics.collectors.legacy", "--dry-run", cwd=tree)

    assert result.returncode == 0, result.stderr
    assert result.stdout == "legacy count=1i\n"
    assert result.stderr.startswith(
        "WARNING metrics: the charm skips this collector, so it never runs on a unit: "
        "metrics/collectors/legacy/__init__.py line 1: RUN_INTERVAL"
    )


def test_replay_writes_a_collectors_spool_without_running_it(tmp_path: Path) -> None:
    tree = tree_with(tmp_path, "legacy", OLD_STYLE_COLLECTOR)
    with InfluxServer() as influx:
        influx.create_database("metrics")
        env = {
            "INFLUXDB_HOSTNAME": influx.host,
            "INFLUXDB_PORT": str(influx.port),
            "INFLUXDB_DATABASE": "metrics",
            "STATE_DIRECTORY": str(tmp_path / "state"),
            "METRICS_UNIT": "ubuntu-community-metrics/2",
        }
        nothing = run("metrics", "replay", "legacy", env=env, cwd=tree)
        influx.stop()
        spooled = run("metrics.collectors.legacy", env=env, cwd=tree)
        still_down = run("metrics", "replay", "legacy", env=env, cwd=tree)
        influx.start()
        # The collector is broken now: a replay must not run it.
        (tree / "metrics" / "collectors" / "legacy" / "collector.py").write_text("1/0\n")
        replayed = run("metrics", "replay", "legacy", env=env, cwd=tree)
        rows = influx.query('SELECT * FROM "legacy"', "metrics")
        health = influx.query('SELECT * FROM "collector_run"', "metrics")

    assert (nothing.returncode, nothing.stderr) == (
        0,
        "INFO metrics: nothing spooled for legacy\n",
    )
    assert spooled.returncode == 1
    assert still_down.returncode == 1
    assert "0 still spooled" not in still_down.stderr
    assert replayed.returncode == 0, replayed.stderr
    assert "legacy: replayed 2 spooled points, 0 dropped, 0 still spooled" in replayed.stderr
    assert [row["count"] for row in rows] == [1]
    (run_point,) = health  # the spooled run's own point, naming the unit that ran it
    assert (run_point["collector"], run_point["unit"]) == ("legacy", "ubuntu-community-metrics/2")
