"""The alert rules COS loads from src/prometheus_alert_rules/, checked with the real promtool.

Every `*.rule` file is valid for Prometheus (`promtool check rules`) and has its unit test
beside it, `<name>.test.yaml`, which passes (`promtool test rules`) and tests each of its
alerts both firing and silent. Each alert carries what an operator needs: a severity, a
summary, and a description whose commands are actions the charm has.
"""

import re
import shutil
import subprocess
from pathlib import Path
from typing import Any

import pytest
import yaml

ROOT = Path(__file__).resolve().parents[2]
RULES_DIR = ROOT / "src" / "prometheus_alert_rules"
RULE_FILES = sorted(RULES_DIR.glob("*.rule"))
SEVERITIES = {"critical", "warning", "info"}
# promtool is Debian's prometheus package, which ./dev setup installs: no test is skipped.
PROMTOOL = shutil.which("promtool")


def promtool(*args: str, cwd: Path) -> subprocess.CompletedProcess[str]:
    assert PROMTOOL, "promtool not found: install Debian's prometheus package (./dev setup)"
    return subprocess.run(
        [PROMTOOL, *args], cwd=cwd, capture_output=True, text=True, check=False, timeout=120
    )


def alerts(rule_file: Path) -> list[dict[str, Any]]:
    groups = yaml.safe_load(rule_file.read_text())["groups"]
    return [rule for group in groups for rule in group["rules"] if "alert" in rule]


def test_there_are_rule_files() -> None:
    assert RULE_FILES, f"no *.rule file in {RULES_DIR.relative_to(ROOT)}"


@pytest.mark.parametrize("rule_file", RULE_FILES, ids=lambda path: path.name)
def test_promtool_accepts_the_rules(rule_file: Path) -> None:
    result = promtool("check", "rules", rule_file.name, cwd=RULES_DIR)
    assert result.returncode == 0, result.stdout + result.stderr


@pytest.mark.parametrize("rule_file", RULE_FILES, ids=lambda path: path.name)
def test_promtool_unit_tests_pass(rule_file: Path) -> None:
    test_file = rule_file.with_suffix(".test.yaml")
    assert test_file.is_file(), f"{rule_file.name} has no promtool test {test_file.name}"
    assert yaml.safe_load(test_file.read_text())["rule_files"] == [rule_file.name]
    result = promtool("test", "rules", test_file.name, cwd=RULES_DIR)
    assert result.returncode == 0, result.stdout + result.stderr


@pytest.mark.parametrize("rule_file", RULE_FILES, ids=lambda path: path.name)
def test_every_alert_is_tested_firing_and_silent(rule_file: Path) -> None:
    cases = [
        case
        for test in yaml.safe_load(rule_file.with_suffix(".test.yaml").read_text())["tests"]
        for case in test.get("alert_rule_test", [])
    ]
    for alert in alerts(rule_file):
        name = alert["alert"]
        expected = [case["exp_alerts"] for case in cases if case["alertname"] == name]
        assert any(expected), f"{name}: no test case where it fires"
        assert not all(expected), f"{name}: no test case where it must stay silent"


@pytest.mark.parametrize("rule_file", RULE_FILES, ids=lambda path: path.name)
def test_every_alert_says_how_bad_what_and_what_to_do(rule_file: Path) -> None:
    actions = yaml.safe_load((ROOT / "actions.yaml").read_text())
    names = [alert["alert"] for alert in alerts(rule_file)]
    assert names, f"{rule_file.name} has no alert"
    assert len(names) == len(set(names)), f"{rule_file.name}: an alert name is used twice"
    runs = []
    for alert in alerts(rule_file):
        name, annotations = alert["alert"], alert.get("annotations", {})
        assert alert.get("labels", {}).get("severity") in SEVERITIES, f"{name}: severity"
        assert annotations.get("summary", "").strip(), f"{name}: no summary"
        # Template fields ({{ $labels.juju_unit }}) stand for one word of the command.
        description = re.sub(r"\{\{.*?\}\}", "X", annotations.get("description", ""))
        assert "`juju " in description, f"{name}: the description names no command to run"
        # Only actions the charm has, with parameters they take.
        for action, params in re.findall(
            r"`juju run \S+ ([\w-]+)((?: [\w-]+=\S+)*)`", description
        ):
            runs.append(action)
            assert action in actions, f"{name}: the charm has no action {action!r}"
            for param in re.findall(r" ([\w-]+)=", params):
                assert param in actions[action].get("params", {}), f"{name}: {action} {param}="
    assert runs, f"{rule_file.name}: no description shows an action (juju run UNIT ACTION)"


@pytest.mark.parametrize("rule_file", RULE_FILES, ids=lambda path: path.name)
def test_no_juju_topology_in_expressions(rule_file: Path) -> None:
    """COS injects the topology matchers; written here they would pin one model's name."""
    for alert in alerts(rule_file):
        assert "juju_" not in alert["expr"], f"{alert['alert']}: juju_ label in its expression"
