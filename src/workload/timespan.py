"""systemd time spans, parsed exactly as systemd 252 parses them.

Standard library only: `collectors/metrics/lib/timespan.py` is a byte-identical copy.

- `parse_timespan(text) -> int`: microseconds. Accepts exactly what `systemd-analyze timespan`
  accepts ("5m", "1h 30min", "1.5h", "15", "infinity", ...); anything else raises `ValueError`
  with a message saying what is wrong. "infinity" returns `USEC_INFINITY`.
- `parse_run_interval(text) -> int`: microseconds of a collector's `RUN_INTERVAL`: a valid time
  span that is also schedulable (more than zero, not infinity). Discovery uses this one.
- `format_timespan(usec) -> str`: a canonical, readable form ("1h 30min") that parses back to
  the same value; unit files are rendered from it, never from the author's literal.

The grammar (systemd's `parse_time()`): after leading blanks, either `infinity` followed only by
blanks, or one or more `<number>[<blanks>][<unit>]` items separated by optional blanks, summed.
A number is an optional `+`, decimal digits, and an optional fraction (`.5`, `1.25`; `1.` is not
a number), truncated to whole microseconds digit by digit. A missing unit means seconds. The sum
must stay below 2**64 - 1 microseconds and each integer part below 2**63.

Speed: discovery checks every collector's `RUN_INTERVAL` on every hook, and almost all of them
are one whole number and one unit ("5m", "15s"): `_SIMPLE` takes those in one regular
expression match and a dict look-up (the same value the full parser gives: a string the pattern
matches whole is one item whose unit is its longest matching suffix), and `parse_run_interval`
caches its answers, as a tree holds few different intervals.
"""

import functools
import re

USEC_INFINITY = 2**64 - 1

_USEC_PER_SEC = 1_000_000
_USEC_PER_MINUTE = 60 * _USEC_PER_SEC
_USEC_PER_HOUR = 60 * _USEC_PER_MINUTE
_USEC_PER_DAY = 24 * _USEC_PER_HOUR
_USEC_PER_WEEK = 7 * _USEC_PER_DAY
_USEC_PER_MONTH = 2_629_800 * _USEC_PER_SEC
_USEC_PER_YEAR = 31_557_600 * _USEC_PER_SEC

# Longest first, so the first prefix that matches is the longest one, as in systemd's table.
_UNITS: tuple[tuple[str, int], ...] = tuple(
    sorted(
        {
            "seconds": _USEC_PER_SEC,
            "second": _USEC_PER_SEC,
            "sec": _USEC_PER_SEC,
            "s": _USEC_PER_SEC,
            "minutes": _USEC_PER_MINUTE,
            "minute": _USEC_PER_MINUTE,
            "min": _USEC_PER_MINUTE,
            "months": _USEC_PER_MONTH,
            "month": _USEC_PER_MONTH,
            "M": _USEC_PER_MONTH,
            "msec": 1000,
            "ms": 1000,
            "m": _USEC_PER_MINUTE,
            "hours": _USEC_PER_HOUR,
            "hour": _USEC_PER_HOUR,
            "hr": _USEC_PER_HOUR,
            "h": _USEC_PER_HOUR,
            "days": _USEC_PER_DAY,
            "day": _USEC_PER_DAY,
            "d": _USEC_PER_DAY,
            "weeks": _USEC_PER_WEEK,
            "week": _USEC_PER_WEEK,
            "w": _USEC_PER_WEEK,
            "years": _USEC_PER_YEAR,
            "year": _USEC_PER_YEAR,
            "y": _USEC_PER_YEAR,
            "usec": 1,
            "us": 1,
            "\u03bcs": 1,  # GREEK SMALL LETTER MU
            "\u00b5s": 1,  # MICRO SIGN
        }.items(),
        key=lambda item: -len(item[0]),
    )
)

_UNIT_USEC = dict(_UNITS)
# One item: whole digits and an optional unit, nothing else (no blanks, sign or fraction).
_SIMPLE = re.compile("([0-9]{1,18})(" + "|".join(re.escape(suffix) for suffix, _ in _UNITS) + ")?")

# systemd skips these between items; strtoll() also skips \v and \f before a number.
_BLANKS = " \t\n\r"
_C_SPACE = " \t\n\v\f\r"
_DIGITS = "0123456789"
_INT64_MAX = 2**63 - 1

_UNIT_HINT = "units: us, ms, s, min, h, d, w, M (months), y, e.g. '5min' or '1h 30min'"


def _span(text: str, start: int, chars: str) -> int:
    """Index of the first character at or after `start` that is not in `chars`."""
    end = start
    while end < len(text) and text[end] in chars:
        end += 1
    return end


def _invalid(text: str, problem: str) -> ValueError:
    return ValueError(f"invalid systemd time span {text!r}: {problem}")


def _too_large(text: str) -> ValueError:
    return _invalid(text, "too large (the limit is about 584,542 years)")


def parse_timespan(text: str) -> int:
    """Microseconds in `text`, a systemd time span; ValueError saying what is wrong otherwise."""
    simple = _SIMPLE.fullmatch(text)
    if simple is not None:
        integer = int(simple[1])
        multiplier = _UNIT_USEC[simple[2]] if simple[2] else _USEC_PER_SEC
        if integer < USEC_INFINITY // multiplier:
            return integer * multiplier
        # too large: the full parser below says so
    if "\0" in text:
        raise _invalid(text, "contains a NUL character")
    pos = _span(text, 0, _BLANKS)
    if text.startswith("infinity", pos):
        rest = _span(text, pos + len("infinity"), _BLANKS)
        if rest != len(text):
            raise _invalid(text, "nothing may follow 'infinity'")
        return USEC_INFINITY

    total = 0
    something = False
    while True:
        pos = _span(text, pos, _BLANKS)
        if pos == len(text):
            if not something:
                raise _invalid(text, f"empty; give a number with a unit ({_UNIT_HINT})")
            return total
        if text[pos] == "-":
            raise _invalid(text, "negative time spans are not allowed")

        # strtoll(): C blanks, an optional sign, decimal digits; no digits means no number.
        number_start = _span(text, pos, _C_SPACE)
        digits_start = number_start
        negative = False
        if digits_start < len(text) and text[digits_start] in "+-":
            negative = text[digits_start] == "-"
            digits_start += 1
        int_end = _span(text, digits_start, _DIGITS)
        if int_end == digits_start:
            integer = 0
            int_end = pos  # strtoll() leaves its end pointer where it started
        else:
            integer = int(text[digits_start:int_end])
            if negative:
                integer = -integer
            if integer > _INT64_MAX or integer < -_INT64_MAX - 1:
                raise _too_large(text)
            if integer < 0:
                raise _invalid(text, "negative time spans are not allowed")

        has_fraction = int_end < len(text) and text[int_end] == "."
        if has_fraction:
            fraction_end = _span(text, int_end + 1, _DIGITS)
        elif int_end == pos:
            raise _invalid(
                text, f"expected a number at position {pos + 1}, found {text[pos : pos + 10]!r}"
            )
        else:
            fraction_end = int_end

        unit_start = _span(text, fraction_end, _BLANKS)
        multiplier = _USEC_PER_SEC
        after_unit = unit_start
        for suffix, usec in _UNITS:
            if text.startswith(suffix, unit_start):
                multiplier = usec
                after_unit = unit_start + len(suffix)
                break
        if after_unit == fraction_end and after_unit != len(text):
            raise _invalid(
                text,
                f"unknown unit {text[after_unit : after_unit + 10]!r} at position"
                f" {after_unit + 1} ({_UNIT_HINT})",
            )
        pos = after_unit

        if integer >= USEC_INFINITY // multiplier:
            raise _too_large(text)
        part = integer * multiplier
        if part >= USEC_INFINITY - total:
            raise _too_large(text)
        total += part
        something = True

        if has_fraction:
            if fraction_end == int_end + 1:
                raise _invalid(
                    text, f"expected digits after the decimal point at position {int_end + 1}"
                )
            scale = multiplier // 10
            for digit in text[int_end + 1 : fraction_end]:
                part = int(digit) * scale
                if part >= USEC_INFINITY - total:
                    raise _too_large(text)
                total += part
                scale //= 10


@functools.lru_cache(maxsize=1024)
def parse_run_interval(text: str) -> int:
    """Microseconds of a collector's RUN_INTERVAL; ValueError unless a timer can use it."""
    usec = parse_timespan(text)
    if usec == USEC_INFINITY:
        raise ValueError(
            f"RUN_INTERVAL {text!r} is infinity: a timer would never run it; give a finite"
            " interval such as '5min'"
        )
    if usec == 0:
        raise ValueError(
            f"RUN_INTERVAL {text!r} is zero: give an interval greater than zero such as '5min'"
        )
    if usec < MIN_RUN_INTERVAL_USEC:
        raise ValueError(
            f"RUN_INTERVAL {text!r} is shorter than 1s, the shortest a collector may have (a"
            " timer cannot start runs faster, nor InfluxDB take them): give e.g. '15s'"
        )
    return usec


# Floors (docs/collectors.md, docs/operating.md).
MIN_RUN_INTERVAL_USEC = _USEC_PER_SEC


_FORMAT_UNITS = (
    ("y", _USEC_PER_YEAR),
    ("M", _USEC_PER_MONTH),
    ("w", _USEC_PER_WEEK),
    ("d", _USEC_PER_DAY),
    ("h", _USEC_PER_HOUR),
    ("min", _USEC_PER_MINUTE),
    ("s", _USEC_PER_SEC),
    ("ms", 1000),
    ("us", 1),
)


def format_timespan(usec: int) -> str:
    """Exact, canonical systemd time span for `usec` microseconds, e.g. "1h 30min".

    systemd parses it back to `usec` for any value up to 10**18 (31,688 years).
    """
    if usec < 0:
        raise ValueError(f"a time span cannot be negative: {usec}")
    if usec == USEC_INFINITY:
        return "infinity"
    if usec == 0:
        return "0"
    parts: list[str] = []
    for suffix, size in _FORMAT_UNITS:
        count, usec = divmod(usec, size)
        if count:
            parts.append(f"{count}{suffix}")
    return " ".join(parts)
