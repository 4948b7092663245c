"""The collectors tree carries copies of the workload's static discovery and time span checker.

The workload runs as root and must never import code from a collectors checkout, and the
collectors tree must stand alone, so the two modules exist twice (docs/design.md). A drift
between the copies would let `python3 -m metrics list` accept a collector that the charm skips.
"""

from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]


@pytest.mark.parametrize("module", ["discovery.py", "timespan.py"])
def test_collectors_copy_is_identical_to_workload_original(module: str) -> None:
    original = ROOT / "src" / "workload" / module
    copy = ROOT / "collectors" / "metrics" / "lib" / module
    assert copy.read_bytes() == original.read_bytes(), (
        f"{copy.relative_to(ROOT)} differs from {original.relative_to(ROOT)}: "
        f"copy the original over it (cp {original.relative_to(ROOT)} {copy.relative_to(ROOT)})"
    )
