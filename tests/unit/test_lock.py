"""The charm's lock file (requirements.txt) is in step with requirements.in, so a pack ships
exactly the pinned dependencies."""

from __future__ import annotations

import hashlib
import re
from pathlib import Path

REPOSITORY = Path(__file__).resolve().parents[2]
PIN = re.compile(r"^[A-Za-z0-9_.-]+==[A-Za-z0-9_.+!-]+$")


def _requirements(path: Path) -> list[str]:
    lines = (line.strip() for line in path.read_text().splitlines())
    return [line for line in lines if line and not line.startswith("#")]


def test_the_lock_was_made_from_the_current_requirements_in() -> None:
    recorded = re.search(
        r"^# requirements\.in sha256: ([0-9a-f]{64})$",
        (REPOSITORY / "requirements.txt").read_text(),
        re.MULTILINE,
    )
    assert recorded, "requirements.txt has no requirements.in hash: run ./dev lock"
    current = hashlib.sha256((REPOSITORY / "requirements.in").read_bytes()).hexdigest()
    assert recorded.group(1) == current, "requirements.in changed: run ./dev lock"


def test_every_dependency_is_pinned_and_every_direct_one_is_locked() -> None:
    locked = _requirements(REPOSITORY / "requirements.txt")
    assert [line for line in locked if not PIN.match(line)] == []
    names = {_normalized(line.split("==")[0]) for line in locked}
    direct = {
        _normalized(re.split(r"[<>=!~\[ ;]", line)[0])
        for line in _requirements(REPOSITORY / "requirements.in")
    }
    assert direct <= names


def _normalized(name: str) -> str:
    """A project name as PyPI compares them (PEP 503): pip freeze writes prometheus_client
    for prometheus-client."""
    return re.sub(r"[-_.]+", "-", name).lower()
