"""Integration tests need a reachable Juju controller; without one, every test here is skipped.

The check runs once, at collection, and marks every test of this folder skipped with the
reason, so that no pytest-operator fixture (which would try to connect) is set up and
`pytest tests/integration` exits 0. Every test module here (the charm's and the Mojo
bundle's) shares it.
"""

from __future__ import annotations

import functools
import json
import shutil
import subprocess
from pathlib import Path

import pytest

HERE = Path(__file__).resolve().parent
JUJU_TIMEOUT = 60


@functools.cache
def no_controller_reason() -> str | None:
    """Why no integration test can run here, or None when a Juju controller answers."""
    juju = shutil.which("juju")
    if juju is None:
        return "no Juju controller: the juju client is not on PATH (install it and bootstrap)"
    try:
        listed = subprocess.run(
            [juju, "controllers", "--format", "json"],
            capture_output=True,
            text=True,
            timeout=JUJU_TIMEOUT,
            check=False,
        )
    except subprocess.TimeoutExpired:
        return f"no Juju controller: `juju controllers` did not answer in {JUJU_TIMEOUT}s"
    if listed.returncode != 0:
        return f"no Juju controller: `juju controllers` failed: {_first_line(listed.stderr)}"
    try:
        current = json.loads(listed.stdout or "{}").get("current-controller")
    except ValueError:
        current = None
    if not current:
        return "no Juju controller: none is current (juju bootstrap, or juju switch to one)"
    try:
        shown = subprocess.run(
            [juju, "show-controller", current, "--format", "json"],
            capture_output=True,
            text=True,
            timeout=JUJU_TIMEOUT,
            check=False,
        )
    except subprocess.TimeoutExpired:
        return f"Juju controller {current} did not answer in {JUJU_TIMEOUT}s"
    if shown.returncode != 0:
        return f"Juju controller {current} is unreachable: {_first_line(shown.stderr)}"
    return None


def _first_line(text: str) -> str:
    lines = [line for line in text.splitlines() if line.strip()]
    return lines[0].strip() if lines else "no error message"


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    ours = [item for item in items if HERE in item.path.resolve().parents]
    if not ours:
        return
    reason = no_controller_reason()
    if reason is None:
        return
    for item in ours:
        item.add_marker(pytest.mark.skip(reason=reason))
