"""Point validation and InfluxDB line protocol encoding.

`LineEncoder.encode(point, index)` gives, for every point it accepts, exactly the line that
`influxdb.line_protocol.make_lines` makes for it (escaping, sorting and number formats
included), several times faster: escaped names are cached and the common types take a
direct path. Points that InfluxDB would reject, or that make_lines would silently mangle,
raise `CollectorError` naming the point's index and the problem instead.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from datetime import datetime, timezone
from typing import Any

from dateutil.parser import parse as parse_date

from .errors import CollectorError

_NAME_ESCAPES = str.maketrans({"\\": "\\\\", " ": "\\ ", ",": "\\,", "=": "\\=", "\n": "\\n"})
_STRING_ESCAPES = str.maketrans({"\\": "\\\\", '"': '\\"', "\n": "\\n"})
_EPOCH = datetime(1970, 1, 1, tzinfo=timezone.utc)
_CACHE_LIMIT = 100_000


def _nanoseconds(moment: datetime) -> int:
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=timezone.utc)
    delta = moment - _EPOCH
    return (delta.days * 86400 + delta.seconds) * 10**9 + delta.microseconds * 10**3


class LineEncoder:
    """Turns points (the dicts `InfluxDBClient.write_points` takes) into line protocol."""

    def __init__(self) -> None:
        self._escaped: dict[str, str] = {}
        self._last_time_text = ""
        self._last_time = ""

    def _escape(self, name: str) -> str:
        escaped = self._escaped.get(name)
        if escaped is None:
            if len(self._escaped) >= _CACHE_LIMIT:
                self._escaped.clear()
            escaped = self._escaped[name] = name.translate(_NAME_ESCAPES)
        return escaped

    def encode(self, point: Any, index: int, default_time: int | None = None) -> str:
        """The line for `point`, the `index`-th point of the run (named in errors).

        A point without a time gets `default_time` (nanoseconds) when one is given.
        """
        if not isinstance(point, Mapping):
            raise _invalid(index, None, f"is a {type(point).__name__}, not a dict")
        measurement = point.get("measurement")
        if type(measurement) is not str or not measurement:
            raise _invalid(index, None, "has no measurement (a non-empty string)")
        escape = self._escape
        line = escape(measurement)

        tags = point.get("tags")
        if tags:
            if not isinstance(tags, Mapping):
                raise _invalid(index, measurement, "tags is not a dict")
            parts = []
            for key in sorted(tags):
                value = tags[key]
                if type(key) is not str or not key:
                    raise _invalid(
                        index, measurement, f"tag key {key!r} is not a non-empty string"
                    )
                if type(value) is not str:
                    raise _invalid(
                        index,
                        measurement,
                        f"tag {key!r} has a {type(value).__name__} value {value!r}: "
                        "tag values must be strings",
                    )
                if value:
                    parts.append(f"{escape(key)}={escape(value)}")
            if parts:
                line += "," + ",".join(parts)

        fields = point.get("fields")
        if not fields or not isinstance(fields, Mapping):
            raise _invalid(index, measurement, "has no fields")
        parts = []
        for key in sorted(fields):
            value = fields[key]
            if type(key) is not str or not key:
                raise _invalid(index, measurement, f"field key {key!r} is not a non-empty string")
            kind = type(value)
            if kind is float:
                if not math.isfinite(value):
                    raise _invalid(index, measurement, f"field {key!r} is {value}")
                parts.append(f"{escape(key)}={value!r}")
            elif kind is int:
                parts.append(f"{escape(key)}={value}i")
            elif kind is str:
                parts.append(f'{escape(key)}="{value.translate(_STRING_ESCAPES)}"')
            elif kind is bool:
                parts.append(f"{escape(key)}={value}")
            elif value is None:
                continue
            elif isinstance(value, (dict, list, tuple, set)):
                raise _invalid(
                    index,
                    measurement,
                    f"field {key!r} holds a nested {kind.__name__}: "
                    "field values must be numbers, booleans or strings",
                )
            else:
                raise _invalid(
                    index,
                    measurement,
                    f"field {key!r} has a {kind.__name__} value: "
                    "field values must be numbers, booleans or strings",
                )
        if not parts:
            raise _invalid(index, measurement, "has no fields (all are None)")
        line += " " + ",".join(parts)

        moment = point.get("time")
        if moment is None:
            return line if default_time is None else f"{line} {default_time}"
        if type(moment) is int:
            return f"{line} {moment}"
        if type(moment) is str:
            if moment != self._last_time_text:
                try:
                    self._last_time = str(_nanoseconds(parse_date(moment)))
                except (ValueError, OverflowError) as error:
                    raise _invalid(
                        index, measurement, f"has a bad timestamp {moment!r} ({error})"
                    ) from None
                self._last_time_text = moment
            return f"{line} {self._last_time}"
        if isinstance(moment, datetime):
            return f"{line} {_nanoseconds(moment)}"
        raise _invalid(
            index,
            measurement,
            f"has a bad timestamp {moment!r}: use an int (ns), an ISO 8601 string or a datetime",
        )


def _invalid(index: int, measurement: str | None, problem: str) -> CollectorError:
    what = f"point {index}" if measurement is None else f"point {index} ({measurement!r})"
    return CollectorError(f"{what} {problem}")
