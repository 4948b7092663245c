"""workload.timespan against the real `systemd-analyze timespan` (systemd's own parser).

The differential tests feed the same strings to both and require the same verdict and the same
number of microseconds. `systemd-analyze timespan` takes many arguments and stops at the first
it cannot parse, so strings are checked in batches and a batch is resumed after a rejection.
"""

import re
import shutil
import subprocess
from concurrent.futures import ThreadPoolExecutor

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from workload.timespan import (
    USEC_INFINITY,
    format_timespan,
    parse_run_interval,
    parse_timespan,
)

SYSTEMD_ANALYZE = shutil.which("systemd-analyze")
needs_systemd_analyze = pytest.mark.skipif(
    SYSTEMD_ANALYZE is None, reason="systemd-analyze is not installed (Debian package systemd)"
)


def systemd_verdicts(texts: list[str]) -> list[int | None]:
    """Microseconds per text as systemd-analyze parses it, None where it rejects the text."""
    # Every rejection costs a process, so chunks run side by side.
    chunks = [texts[start : start + 25] for start in range(0, len(texts), 25)]
    with ThreadPoolExecutor(max_workers=4) as pool:
        return [verdict for chunk in pool.map(_systemd_chunk, chunks) for verdict in chunk]


def _systemd_chunk(texts: list[str]) -> list[int | None]:
    assert SYSTEMD_ANALYZE is not None
    verdicts: list[int | None] = []
    pending = list(texts)
    while pending:
        proc = subprocess.run(
            [SYSTEMD_ANALYZE, "timespan", "--", *pending],
            capture_output=True,
            env={"LC_ALL": "C.UTF-8", "SYSTEMD_COLORS": "0", "PATH": "/usr/bin:/bin"},
            check=False,
        )
        # One "      μs: N" line per parsed text. The table indents continuation lines of a
        # multi-line original by ten columns, so they cannot look like this line.
        values = re.findall(r"^ {6}\u03bcs: (\d+)$", proc.stdout.decode(), flags=re.MULTILINE)
        verdicts.extend(int(value) for value in values)
        parsed = len(values)
        if parsed == len(pending):
            assert proc.returncode == 0, proc.stderr
            break
        # The first text it did not print is the one it rejected.
        assert proc.returncode != 0, pending[parsed]
        assert b"Failed to parse time span" in proc.stderr, proc.stderr
        verdicts.append(None)
        pending = pending[parsed + 1 :]
    return verdicts


def our_verdict(text: str) -> int | None:
    try:
        return parse_timespan(text)
    except ValueError:
        return None


def assert_same_as_systemd(texts: list[str]) -> None:
    expected = systemd_verdicts(texts)
    mismatches = [
        (text, want, our_verdict(text))
        for text, want in zip(texts, expected, strict=True)
        if our_verdict(text) != want
    ]
    assert mismatches == [], "text, systemd, ours"


TRICKY = [
    *("5m", "1h 30min", "15s", "1.5h", "1.5", ".5s", "0", "00005", "+5s", " +5"),
    *("", " ", "\t", "\n", "\r", "\v", "\f", " \t\n\r5s \t\n\r", "\v5", "\f5", "\v-0", "\v-5"),
    *("-1", "-0", "+0", " -5", "5 -5", "+", "+.5", "+ 5", "++5", "+-5", "-", "."),
    *("5.", "5.s", "1..5", "1.5.5s", "5s.", "5s .5", "5s.5", "12.34 .56", "1 .5", "0.-0"),
    *("3.+1", "3. 1", "3.sec", "1s.5", "1ms.5", "1e3", "0x10", "1_0", "1,5", "5S", "1Min"),
    *("infinity", " infinity ", "infinityx", "infinity 5", "5 infinity", "Infinity", "inf"),
    *("\vinfinity", "infinity\v", "infinity\n", "\ninfinity"),
    *("1us", "1usec", "1\u03bcs", "1\u00b5s", "1 \u00b5s", "1\u03bc", "1ns", "1nsec"),
    *("1ms", "1msec", "1s", "1sec", "1second", "1seconds", "1secs", "1m", "1min", "1mins"),
    *("1minute", "1minutes", "1h", "1hr", "1hrs", "1hour", "1hours", "1d", "1day", "1days"),
    *("1w", "1week", "1weeks", "1M", "1month", "1months", "1y", "1year", "1years", "1mo"),
    *("5 M", "1M5", "1ms5", "1msec5", "1s 2", "5s5", "5 5", "5s 5s", "1 m s", "1 hrs", "s"),
    *(".s", "1.123456789s", "1.0000005s", "0.0000001s", "00.000001s", "1.5M", "1.99999999y"),
    *("9223372036854775807us", "9223372036854775808us", "18446744073709551614us"),
    *("18446744073709551615", "18446744073709551615us", "99999999999999999999999"),
    *("584542y", "584541y", "584542.1y", "584541.99999y", "9223372036854775807", "213503d"),
    *(
        "213503982334us",
        "18446744073709551614us 1us",
        "9223372036854775807us 9223372036854775807us",
    ),
    *("18446744073709.551614s", "18446744073709.551615s", "18446744073709.551616s"),
    *("999999999999999999", "999999999999999999us", "999999999999999999y", "584542w"),
    *("0000000000000000005m", "1000000000000000000", "5m ", " 5m", "5m\n", "5\nm", "5mm"),
    *("\u0665s", "\uff15s", "5\u00a0s", "5\u2003s", "\u00a05s", "5s\u00a0"),
]


@needs_systemd_analyze
def test_tricky_corpus_matches_systemd() -> None:
    assert_same_as_systemd(TRICKY)


ATOMS = [
    *("0", "1", "5", "15", "9", "00", "123456789", "9223372036854775807", "18446744073709551615"),
    *(".", ".", "+", "-", " ", " ", "\t", "\n", "\r", "\v", "\f"),
    *("us", "usec", "\u03bcs", "\u00b5s", "ms", "msec", "s", "sec", "second", "seconds"),
    *("m", "min", "minute", "minutes", "h", "hr", "hour", "hours", "d", "day", "days"),
    *("w", "week", "weeks", "M", "month", "months", "y", "year", "years"),
    *("infinity", "x", "S", "e", "n", "o", "\u03bc", ",", "_", "\u00a0"),
]

span_like = st.lists(st.sampled_from(ATOMS), min_size=0, max_size=8).map("".join)
# Mostly grammar-shaped strings, some arbitrary text without NUL (argv cannot carry NUL) and
# without lone surrogates (not encodable as UTF-8).
candidate = st.one_of(
    span_like,
    span_like,
    span_like,
    st.text(
        alphabet=st.characters(blacklist_categories=("Cs",), blacklist_characters="\0"),
        max_size=12,
    ),
)


@needs_systemd_analyze
@settings(max_examples=20, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.lists(candidate, min_size=150, max_size=150))
def test_generated_strings_match_systemd(texts: list[str]) -> None:
    assert_same_as_systemd(texts)


@needs_systemd_analyze
@settings(max_examples=20, deadline=None)
@given(st.lists(st.integers(min_value=0, max_value=10**18), min_size=50, max_size=50))
def test_format_parses_back_to_the_same_value_in_systemd(values: list[int]) -> None:
    texts = [format_timespan(value) for value in values]
    assert systemd_verdicts(texts) == values
    assert [parse_timespan(text) for text in texts] == values


def test_common_values() -> None:
    assert parse_timespan("5m") == 300_000_000
    assert parse_timespan("1h 30min") == 5_400_000_000
    assert parse_timespan("15") == 15_000_000
    assert parse_timespan("infinity") == USEC_INFINITY
    assert format_timespan(5_400_000_000) == "1h 30min"
    assert format_timespan(1_500_000) == "1s 500ms"
    assert format_timespan(0) == "0"


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("", "empty"),
        ("5x", "unknown unit 'x' at position 2"),
        ("5 mins", "expected a number at position 6, found 's'"),
        ("-5m", "negative"),
        ("5.m", "digits after the decimal point"),
        ("1.5.5s", "unknown unit '.5s'"),
        ("m", "expected a number at position 1"),
        ("600000y", "too large"),
        ("infinity 5", "nothing may follow 'infinity'"),
    ],
)
def test_errors_say_what_is_wrong(text: str, message: str) -> None:
    with pytest.raises(ValueError, match="invalid systemd time span") as caught:
        parse_timespan(text)
    assert message in str(caught.value)


@pytest.mark.parametrize(
    ("text", "message"),
    [("0", "zero"), ("0.0000001s", "zero"), ("infinity", "infinity"), ("5x", "unknown unit")],
)
def test_run_interval_must_be_schedulable(text: str, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        parse_run_interval(text)


def test_run_interval_accepts_a_positive_span() -> None:
    assert parse_run_interval("15s") == 15_000_000
