"""The unit's metrics endpoint on booted Ubuntu 22.04 and 24.04: what it serves after real runs,
how it is confined, and a real Prometheus scraping it with the charm's alert rules."""

from __future__ import annotations

import json
import shutil
import subprocess
import urllib.request
from collections.abc import Iterator
from pathlib import Path

import pytest
from machine_deploy import CharmUnit
from machine_harness import wait_for
from metrics.testing import free_port
from prometheus_client.parser import text_string_to_metric_families

REPOSITORY = Path(__file__).resolve().parents[2]
RULES = REPOSITORY / "src" / "prometheus_alert_rules" / "collectors.rule"
CAP_DAC_READ_SEARCH = 2


def scrape(url: str) -> dict[tuple[str, frozenset[tuple[str, str]]], float]:
    try:
        with urllib.request.urlopen(url, timeout=10) as response:
            text = response.read().decode()
    except OSError:
        return {}
    return {
        (sample.name, frozenset(sample.labels.items())): sample.value
        for family in text_string_to_metric_families(text)
        for sample in family.samples
    }


def per_collector(samples: dict, name: str) -> dict[str, float]:  # type: ignore[type-arg]
    return {
        dict(labels)["collector"]: value
        for (sample, labels), value in samples.items()
        if sample == name
    }


def test_the_endpoint_serves_each_collectors_health_after_real_runs(
    steady_unit: CharmUnit,
) -> None:
    url = steady_unit.metrics_url

    def settled() -> dict | None:  # type: ignore[type-arg]
        samples = scrape(url)
        failures = per_collector(samples, "ucm_collector_consecutive_failures")
        written = per_collector(samples, "ucm_collector_points_written_total")
        if failures.get("raises", 0) >= 2 and written.get("ticker", 0) >= 1:
            return samples
        return None

    samples = wait_for("a ticker success and two failures of raises", settled, timeout=90)
    assert isinstance(samples, dict)
    assert per_collector(samples, "ucm_collector_last_run_ok")["ticker"] == 1
    assert per_collector(samples, "ucm_collector_last_run_ok")["raises"] == 0
    assert per_collector(samples, "ucm_collector_interval_seconds")["ticker"] == 3
    assert per_collector(samples, "ucm_collector_points_dropped_total")["ticker"] == 0
    assert per_collector(samples, "ucm_collector_spooled_points")["ticker"] == 0
    status = json.loads(steady_unit.workload("status", "--json").stdout)
    commits = [
        dict(labels)["commit"]
        for (name, labels), _ in samples.items()
        if name == "ucm_commit_info"
    ]
    assert commits == [status["commit"]]
    # The two collectors the charm leaves out (a syntax error, a bad RUN_INTERVAL).
    assert samples[("ucm_collectors_skipped", frozenset())] == 2
    scheduled = set(per_collector(samples, "ucm_collector_interval_seconds"))
    assert scheduled == {"ticker", "slow_ticker", "raises", "hangs", "sandbox_probe"}


def test_the_endpoint_reads_only_what_it_reports_on(steady_unit: CharmUnit) -> None:
    run = steady_unit.container.run
    pid = steady_unit.show("metrics-exporter.service", "MainPID")["MainPID"]
    assert pid != "0"
    status = run(["cat", f"/proc/{pid}/status"]).stdout
    fields = dict(line.split(":\t", 1) for line in status.splitlines() if ":\t" in line)
    assert fields["Uid"].split()[0] != "0"
    assert int(fields["CapEff"], 16) == 1 << CAP_DAC_READ_SEARCH
    assert int(fields["CapBnd"], 16) == 1 << CAP_DAC_READ_SEARCH
    inside = ["nsenter", f"--target={pid}", "--mount", "--"]
    # The credentials and settings (a token may be in the branch URL) are out of its sight,
    # and of /var/lib/juju only the charm's own folder is there, not the agent's secrets.
    assert run([*inside, "ls", "-A", "/etc/ubuntu-community-metrics"]).stdout == ""
    agents = run([*inside, "ls", "-A", "/var/lib/juju/agents"]).stdout.split()
    assert len(agents) == 1
    assert run([*inside, "ls", "-A", f"/var/lib/juju/agents/{agents[0]}"]).stdout.split() == [
        "charm"
    ]
    assert run([*inside, "ls", "-A", "/var/lib/private"]).stdout.split() == ["metrics-collector"]


@pytest.fixture
def prometheus(steady_unit: CharmUnit, tmp_path: Path) -> Iterator[str]:
    """Debian's Prometheus scraping the unit's endpoint every second with the charm's rules."""
    binary = shutil.which("prometheus")
    assert binary, "prometheus is not installed: ./dev setup installs it"
    target = steady_unit.metrics_url.removeprefix("http://").removesuffix("/metrics")
    config = tmp_path / "prometheus.yml"
    config.write_text(
        json.dumps(
            {
                "global": {"scrape_interval": "1s", "evaluation_interval": "1s"},
                "rule_files": [str(RULES)],
                "scrape_configs": [
                    {"job_name": "ubuntu-community-metrics", "static_configs": [
                        {"targets": [target]}
                    ]}
                ],
            }
        )
    )  # fmt: skip
    address = f"127.0.0.1:{free_port()}"
    process = subprocess.Popen(
        [
            binary,
            f"--config.file={config}",
            f"--storage.tsdb.path={tmp_path / 'data'}",
            f"--web.listen-address={address}",
        ],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
    )
    try:
        yield f"http://{address}"
    finally:
        process.terminate()
        process.wait(30)


def firing(prometheus: str) -> set[tuple[str, str]]:
    try:
        with urllib.request.urlopen(f"{prometheus}/api/v1/alerts", timeout=10) as response:
            alerts = json.load(response)["data"]["alerts"]
    except OSError:
        return set()
    return {
        (alert["labels"]["alertname"], alert["labels"].get("collector", ""))
        for alert in alerts
        if alert["state"] == "firing"
    }


def test_prometheus_scrapes_the_unit_and_a_failing_collector_fires_its_alert(
    prometheus: str,
) -> None:
    alerts = wait_for(
        "UcmCollectorFailing for raises",
        lambda: (a := firing(prometheus)) and ("UcmCollectorFailing", "raises") in a and a,
        timeout=90,
    )
    assert isinstance(alerts, set)
    assert ("UcmCollectorFailing", "ticker") not in alerts
    assert ("UcmCollectorFailing", "slow_ticker") not in alerts
    assert not [name for name, _ in alerts if name == "UcmEndpointDown"]
