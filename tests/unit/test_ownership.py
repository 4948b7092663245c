"""Rendezvous hashing: every unit agrees on each collector's owner, and a unit joining or leaving
moves only the collectors it wins or held."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from workload.ownership import owned, owner, owners

UNIT_NAMES = st.integers(min_value=0, max_value=40).map(lambda n: f"ucm/{n}")
UNITS = st.sets(UNIT_NAMES, min_size=1, max_size=8).map(sorted)
COLLECTOR_NAMES = st.from_regex(r"[a-z_][a-z0-9_]{0,27}", fullmatch=True)
COLLECTORS = st.sets(COLLECTOR_NAMES, min_size=1, max_size=40).map(sorted)


@given(COLLECTORS, UNITS)
def test_every_unit_computes_the_same_owner_whatever_order_it_sees_the_units(
    collectors: list[str], units: list[str]
) -> None:
    expected = owners(collectors, units)
    assert owners(collectors, list(reversed(units))) == expected
    for unit in units:
        peers = [other for other in units if other != unit]
        assert owned(collectors, unit, peers) == [c for c in collectors if expected[c] == unit]


@given(COLLECTORS, UNITS)
def test_each_collector_has_exactly_one_owner(collectors: list[str], units: list[str]) -> None:
    mine = [set(owned(collectors, unit, units)) for unit in units]
    assert sorted(name for names in mine for name in names) == collectors


@given(COLLECTORS, UNITS, UNIT_NAMES)
def test_a_joining_unit_takes_collectors_only_for_itself(
    collectors: list[str], units: list[str], new: str
) -> None:
    before = owners(collectors, units)
    after = owners(collectors, [*units, new])
    moved = {name for name in collectors if before[name] != after[name]}
    assert all(after[name] == new for name in moved)


@given(COLLECTORS, UNITS)
def test_a_leaving_unit_gives_away_only_its_own_collectors(
    collectors: list[str], units: list[str]
) -> None:
    leaving, rest = units[0], units[1:]
    if not rest:
        return
    before = owners(collectors, units)
    after = owners(collectors, rest)
    moved = {name for name in collectors if before[name] != after[name]}
    assert moved == {name for name in collectors if before[name] == leaving}


@pytest.mark.parametrize("count", [2, 3, 5, 10, 12])
def test_collectors_spread_evenly(count: int) -> None:
    units = [f"ubuntu-community-metrics/{n}" for n in range(count)]
    collectors = [f"collector_{n}" for n in range(2000)]
    per_unit = [len(owned(collectors, unit, units)) for unit in units]
    mean = len(collectors) / count
    assert max(per_unit) <= 1.25 * mean  # bench/scale.py measures it at 10,000 collectors


def test_a_single_unit_owns_everything() -> None:
    assert owner("x", ["ucm/0"]) == "ucm/0"
    assert owned(["b", "a"], "ucm/0", []) == ["b", "a"]
    assert owned(["b", "a"], "ucm/0", ["ucm/0"]) == ["b", "a"]
