"""Integration tests need a reachable Juju controller; without one, every test here is skipped.

The check runs once, at collection. Without a controller the test modules are not imported:
each of their tests is collected as a skipped placeholder showing the reason, so that
`pytest tests/integration` exits 0 and no pytest-operator fixture tries to connect. Every
test module in this folder (the charm's and the Mojo bundle's) shares it.
"""

from __future__ import annotations

import ast
import functools
import json
import shutil
import subprocess
from collections.abc import Iterator
from pathlib import Path
from typing import Any

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


class SkippedTest(pytest.Item):
    """Stands for one test of a module that was not imported because no controller answers."""

    def __init__(self, *, reason: str, line: int, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.line = line
        self.add_marker(pytest.mark.skip(reason=reason))

    def runtest(self) -> None:
        raise AssertionError("a skipped placeholder never runs")

    def reportinfo(self) -> tuple[Path, int, str]:
        return self.path, self.line, self.name


class SkippedModule(pytest.File):
    """A test module listed from its `ast`, one skipped item per test, and never imported.

    Importing it would let pytest-asyncio inspect its async tests, which the pinned
    pytest-asyncio cannot do under the pinned pytest; with no controller there is nothing to
    run anyway, and each test still shows as skipped with the reason.
    """

    def __init__(self, *, reason: str, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.reason = reason

    def collect(self) -> Iterator[pytest.Item]:
        tree = ast.parse(self.path.read_text(), filename=str(self.path))
        for node in tree.body:
            test_function = isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef))
            if (test_function and node.name.startswith("test")) or (
                isinstance(node, ast.ClassDef) and node.name.startswith("Test")
            ):
                yield SkippedTest.from_parent(
                    self, name=node.name, reason=self.reason, line=node.lineno - 1
                )


@pytest.hookimpl(tryfirst=True)
def pytest_pycollect_makemodule(module_path: Path, parent: pytest.Collector) -> pytest.File | None:
    if HERE not in module_path.resolve().parents:
        return None
    reason = no_controller_reason()
    if reason is None:
        return None
    return SkippedModule.from_parent(parent, path=module_path, reason=reason)
