"""The Grafana dashboards: the COS one on the endpoint's ucm_ metrics, the InfluxDB one on the
collectors' collector_run series.

Both are checked as data (valid, in one stable form, every panel on the dashboard's datasource
variable), their queries by the real engines: PromQL by promtool, InfluxQL by influxd over
health points made by the collector framework itself.
"""

import json
import re
import shutil
import subprocess
import time
import urllib.request
from pathlib import Path
from typing import Any

import pytest
import yaml
from metrics.lib.basemetric import HEALTH_MEASUREMENT, _health_point
from metrics.lib.lineprotocol import LineEncoder
from metrics.testing import InfluxServer

ROOT = Path(__file__).resolve().parents[2]
# COS (cos_agent) sends every file of this folder to Grafana as a Prometheus dashboard.
COS_DASHBOARDS = ROOT / "src" / "grafana_dashboards"
COS_DASHBOARD = COS_DASHBOARDS / "ucm-collectors.json"
INFLUXDB_DASHBOARD = ROOT / "src" / "grafana_dashboards_influxdb" / "ucm-collector-runs.json"
SCHEMA_VERSION = 39
PROMTOOL = shutil.which("promtool")

# What the unit's endpoint serves (docs/operating.md); each must be on the COS dashboard.
ENDPOINT_METRICS = {
    "ucm_collector_last_run_timestamp_seconds",
    "ucm_collector_last_success_timestamp_seconds",
    "ucm_collector_last_run_ok",
    "ucm_collector_consecutive_failures",
    "ucm_collector_last_run_duration_seconds",
    "ucm_collector_interval_seconds",
    "ucm_collector_points_written_total",
    "ucm_collector_points_dropped_total",
    "ucm_collector_spooled_points",
    "ucm_commit_info",
    "ucm_last_pull_timestamp_seconds",
    "ucm_last_pull_ok",
    "ucm_pull_interval_seconds",
    "ucm_collectors_scheduled",
    "ucm_collectors_skipped",
}
PROMQL_KEYWORDS = {"and", "or", "unless", "bool", "offset", "inf", "nan"}
INFLUXQL_FIELDS = {"duration", "points_written", "points_spooled", "points_dropped", "ok", "error"}


def load(path: Path) -> dict[str, Any]:
    return json.loads(path.read_text())


def panels(dashboard: dict[str, Any]) -> list[dict[str, Any]]:
    return [panel for panel in dashboard["panels"] if panel["type"] != "row"]


def queries(dashboard: dict[str, Any], key: str) -> list[tuple[str, str]]:
    """(panel title and refId, query) of every target."""
    return [
        (f"{panel['title']} {target['refId']}", target[key])
        for panel in panels(dashboard)
        for target in panel["targets"]
    ]


def metric_names(expr: str) -> set[str]:
    """The metric names a PromQL expression selects: what is left once strings, label
    matchers, ranges, label lists, function calls and keywords are taken out."""
    expr = re.sub(r'"(?:[^"\\]|\\.)*"', '""', expr)
    expr = re.sub(r"\{[^}]*\}|\[[^\]]*\]", "", expr)
    expr = re.sub(r"\b(?:by|without|on|ignoring|group_left|group_right)\s*\([^)]*\)", "", expr)
    words = re.finditer(r"(?<![\w.])[A-Za-z_:][\w:]*(?![\w:])(?!\s*\()", expr)
    return {word.group() for word in words} - PROMQL_KEYWORDS


def without_grafana_variables(query: str, interval: str) -> str:
    query = re.sub(r"\$\{?__(?:rate_interval|interval|range)\}?", interval, query)
    return query.replace("$timeFilter", "time > now() - 1h")


@pytest.mark.parametrize(
    ("path", "datasource"),
    [(COS_DASHBOARD, "prometheus"), (INFLUXDB_DASHBOARD, "influxdb")],
    ids=["cos", "influxdb"],
)
def test_dashboard_is_complete_and_uses_its_datasource_variable(
    path: Path, datasource: str
) -> None:
    text = path.read_text()
    dashboard = json.loads(text)
    assert text == json.dumps(dashboard, indent=2, sort_keys=True) + "\n", (
        f"{path.name} is not in its reviewed form: rewrite it with "
        "json.dumps(dashboard, indent=2, sort_keys=True) and a final newline"
    )
    assert dashboard["schemaVersion"] == SCHEMA_VERSION
    assert dashboard["title"]
    assert dashboard["uid"]
    ids = [panel["id"] for panel in dashboard["panels"]]
    assert len(ids) == len(set(ids)), f"{path.name}: panel ids are not unique"
    variables = [v for v in dashboard["templating"]["list"] if v["type"] == "datasource"]
    assert [v["query"] for v in variables] == [datasource]
    uid = f"${{{variables[0]['name']}}}"
    assert panels(dashboard), f"{path.name} has no panel"
    for panel in panels(dashboard):
        assert panel["targets"], f"{panel['title']}: no query"
        for source in [panel["datasource"], *(t["datasource"] for t in panel["targets"])]:
            assert source == {"type": datasource, "uid": uid}, f"{panel['title']}: {source}"
    # COS adds the topology matchers to top-level panels only, not to those of a collapsed row.
    assert all(not row.get("panels") for row in dashboard["panels"] if row["type"] == "row")


def test_cos_dashboards_folder_holds_only_prometheus_dashboards() -> None:
    """COS reads every entry of the folder as a dashboard file: a folder there breaks it, and
    a dashboard on another datasource would show nothing in COS's Grafana."""
    entries = sorted(COS_DASHBOARDS.iterdir())
    assert entries
    for entry in entries:
        assert entry.is_file(), f"{entry.relative_to(ROOT)}: COS cannot read a folder here"
        assert entry.suffix == ".json", f"{entry.relative_to(ROOT)} is not a dashboard"
        assert '"influxdb"' not in entry.read_text(), f"{entry.name} uses InfluxDB"


def test_cos_dashboard_shows_every_endpoint_metric_and_no_other() -> None:
    exprs = queries(load(COS_DASHBOARD), "expr")
    shown: set[str] = set()
    for where, expr in exprs:
        names = metric_names(expr)
        assert names, f"{where}: no metric found in {expr!r}"
        foreign = {name for name in names if not name.startswith("ucm_") and name != "up"}
        assert not foreign, f"{where}: {sorted(foreign)} are not the endpoint's metrics"
        shown |= names
    assert sorted(ENDPOINT_METRICS - shown) == []
    assert sorted(shown - ENDPOINT_METRICS - {"up"}) == []


def test_metric_names_are_found_in_expressions() -> None:
    expr = (
        'sum by (collector) (rate(ucm_a_total{job="x", collector=~"a|b"}[5m])) * on(unit) '
        "group_left(commit) ucm_b_info unless ignoring(source) ucm_c > bool 1e3 or vector(0)"
    )
    assert metric_names(expr) == {"ucm_a_total", "ucm_b_info", "ucm_c"}


def test_promtool_parses_every_cos_dashboard_query(tmp_path: Path) -> None:
    assert PROMTOOL, "promtool not found: install Debian's prometheus package (./dev setup)"
    exprs = queries(load(COS_DASHBOARD), "expr")
    rules = [
        {"record": f"panel_query_{index}", "expr": without_grafana_variables(expr, "5m")}
        for index, (_, expr) in enumerate(exprs)
    ]
    rule_file = tmp_path / "dashboard.rule"
    rule_file.write_text(yaml.safe_dump({"groups": [{"name": "dashboard", "rules": rules}]}))
    result = subprocess.run(
        [PROMTOOL, "check", "rules", str(rule_file)],
        capture_output=True,
        text=True,
        check=False,
        timeout=120,
    )
    named = "\n".join(f"panel_query_{index}: {where}" for index, (where, _) in enumerate(exprs))
    assert result.returncode == 0, f"{result.stdout}{result.stderr}\n{named}"


def test_influxdb_dashboard_reads_only_the_health_series() -> None:
    health = _health_point("x", time.monotonic(), (0, 0, 0), [])
    known = {HEALTH_MEASUREMENT, *health["tags"], *health["fields"]}
    assert set(health["fields"]) == INFLUXQL_FIELDS
    for where, query in queries(load(INFLUXDB_DASHBOARD), "query"):
        assert re.findall(r"\bFROM\s+(\S+)", query) == [f'"{HEALTH_MEASUREMENT}"'], where
        # Identifiers are double-quoted; aliases (AS "name") name columns, not fields.
        identifiers = set(re.findall(r'"(\w+)"', re.sub(r'\bAS\s+"\w+"', "", query)))
        assert identifiers, f"{where}: no quoted field or tag"
        assert sorted(identifiers - known) == [], f"{where}: {query}"


@pytest.fixture(scope="module")
def influxd_with_runs() -> Any:
    """influxd with health points as the framework makes and encodes them: `good` failed ten
    minutes ago and succeeded since, `bugs` failed."""
    with InfluxServer() as server:
        server.create_database("metrics")
        started = time.monotonic()
        earlier = _health_point("good", started - 600, (0, 0, 0), ["stopped by SIGTERM"])
        earlier["time"] -= 600 * 10**9
        points = [
            earlier,
            _health_point("good", started - 1.5, (10, 0, 0), []),
            _health_point("bugs", started - 0.5, (3, 2, 1), ["boom: it broke"]),
        ]
        encoder = LineEncoder()
        body = "\n".join(encoder.encode(point, index) for index, point in enumerate(points))
        request = urllib.request.Request(
            f"{server.url}/write?db=metrics", data=body.encode(), method="POST"
        )
        with urllib.request.urlopen(request, timeout=30):
            pass
        yield server


def run_panel_query(server: InfluxServer, query: str) -> list[dict[str, Any]]:
    query = without_grafana_variables(query, "1m")
    # The collector and host variables, with "All" chosen.
    query = re.sub(r"\$\{?(?:collector|host)\}?", ".*", query)
    return server.query(query, database="metrics")


def test_influxdb_dashboard_queries_run_on_influxd(influxd_with_runs: InfluxServer) -> None:
    dashboard = load(INFLUXDB_DASHBOARD)
    for where, query in queries(dashboard, "query"):
        assert run_panel_query(influxd_with_runs, query), f"{where}: no rows for {query}"
    by_title = {panel["title"]: panel["targets"][0]["query"] for panel in panels(dashboard)}
    last_runs = run_panel_query(influxd_with_runs, by_title["Failing collectors"])
    assert {(row["collector"], row["ok"], row["error"]) for row in last_runs} == {
        ("good", True, ""),
        ("bugs", False, "boom: it broke"),
    }
    successes = run_panel_query(influxd_with_runs, by_title["Last success"])
    assert [row["collector"] for row in successes] == ["good"]
    failed: dict[str, int] = {}
    for row in run_panel_query(influxd_with_runs, by_title["Failed runs"]):
        failed[row["collector"]] = failed.get(row["collector"], 0) + row["count"]
    assert failed == {"good": 1, "bugs": 1}
