"""Scenario 8: systemd rates the collectors' sandbox as well confined (exposure <= 1.5)."""

from __future__ import annotations

import re

from machine_deploy import CharmUnit


def test_collector_service_exposure_is_at_most_1_5(steady_unit: CharmUnit) -> None:
    result = steady_unit.container.run(
        ["systemd-analyze", "security", "--no-pager", "metrics-collector@ticker.service"],
        check=False,
    )
    match = re.search(r"Overall exposure level for \S+: (\d+\.\d+)", result.stdout)
    assert match, f"no exposure level in:\n{result.stdout}\n{result.stderr}"
    exposure = float(match.group(1))
    assert exposure <= 1.5, f"exposure {exposure}:\n{result.stdout}"
