"""Which unit runs which collector when the application has several units.

Rendezvous (highest random weight) hashing: each unit scores every collector with a hash of the
collector's and the unit's names, and a collector belongs to the unit with the highest score.
Every unit computes the same answer from the same list of units, with no coordinator, and when
a unit joins or leaves only the collectors it wins or held move (about 1/N of them). See
docs/design.md, "Several units".
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterable


def score(collector: str, unit: str) -> int:
    """The weight of `unit` for `collector`: the first 8 bytes of a SHA-256 of both names."""
    digest = hashlib.sha256(f"{collector}\0{unit}".encode()).digest()
    return int.from_bytes(digest[:8], "big")


def owner(collector: str, units: Iterable[str]) -> str:
    """The unit among `units` (not empty) that runs `collector`; ties go to the lower name."""
    return max(units, key=lambda unit: (score(collector, unit), _reverse(unit)))


def owned(collectors: Iterable[str], unit: str, peers: Iterable[str]) -> list[str]:
    """The collectors `unit` runs when it and `peers` (other units; `unit` may be among them)
    share the application."""
    units = sorted({unit, *peers})
    return [name for name in collectors if owner(name, units) == unit]


def owners(collectors: Iterable[str], units: Iterable[str]) -> dict[str, str]:
    """Collector name -> the unit that runs it."""
    everyone = sorted(set(units))
    return {name: owner(name, everyone) for name in collectors}


def _reverse(unit: str) -> tuple[int, ...]:
    # max() keeps the first of equal keys only by position; ordering by the negated characters
    # makes the lower name win a tie whatever order the units came in.
    return tuple(-ord(char) for char in unit)
