"""Point validation and InfluxDB line protocol encoding.

`LineEncoder.encode(point, index)` gives, for every point it accepts, exactly the line that
`influxdb.line_protocol.make_lines` makes for it (escaping, sorting and number formats
included), several times faster: a collector's points repeat a few measurements, tag sets and
field names, so their escaped and sorted text is cached and only values are formatted per
point. Points that InfluxDB would reject, or that make_lines would silently mangle, raise
`CollectorError` naming the point's index and the problem instead.
"""

from __future__ import annotations

from collections.abc import Mapping
from datetime import datetime, timezone
from typing import Any

from dateutil.parser import parse as parse_date

from .errors import CollectorError

_NAME_ESCAPES = str.maketrans({"\\": "\\\\", " ": "\\ ", ",": "\\,", "=": "\\=", "\n": "\\n"})
_STRING_ESCAPES = str.maketrans({"\\": "\\\\", '"': '\\"', "\n": "\\n"})
_EPOCH = datetime(1970, 1, 1, tzinfo=timezone.utc)
_CACHE_LIMIT = 10_000  # entries per cache; a cache is emptied when it reaches this


def _nanoseconds(moment: datetime) -> int:
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=timezone.utc)
    delta = moment - _EPOCH
    return (delta.days * 86400 + delta.seconds) * 10**9 + delta.microseconds * 10**3


class LineEncoder:
    """Turns points (the dicts `InfluxDBClient.write_points` takes) into line protocol."""

    def __init__(self) -> None:
        # (measurement, *tag items in the point's order) -> 'measurement,k=v,...' escaped
        self._series: dict[tuple[Any, ...], str] = {}
        # field names in the point's order -> [(name, 'escaped name=')] sorted
        self._field_keys: dict[tuple[Any, ...] | None, list[tuple[str, str]]] = {}
        self._last_time_text = ""
        self._last_time = ""

    def encode(self, point: Any, index: int, default_time: int | None = None) -> str:
        """The line for `point`, the `index`-th point of the run (named in errors).

        A point without a time gets `default_time` (nanoseconds) when one is given.
        """
        try:  # the hot path: a point shaped like ones seen before
            measurement: Any = point["measurement"]
            tags: Any = point.get("tags")
            series = self._series[(measurement, *tags.items()) if tags else (measurement,)]
            fields: Any = point["fields"]
            keys = self._field_keys[tuple(fields) if type(fields) is dict else None]
        except (KeyError, TypeError, AttributeError):
            measurement, tags, fields, series, keys = self._learn(point, index)
        line = series
        separator = " "
        for key, prefix in keys:
            value = fields[key]
            kind = type(value)
            if kind is int:
                line = f"{line}{separator}{prefix}{value}i"
            elif kind is float:
                if value - value:  # inf - inf and nan - nan are nan, which is true
                    raise _invalid(index, measurement, f"field {key!r} is {value}")
                line = f"{line}{separator}{prefix}{value!r}"
            elif kind is str:
                line = f'{line}{separator}{prefix}"{value.translate(_STRING_ESCAPES)}"'
            elif kind is bool:
                line = f"{line}{separator}{prefix}{value}"
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
            separator = ","
        if separator == " ":
            raise _invalid(index, measurement, "has no fields (all are None)")

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

    def _learn(self, point: Any, index: int) -> tuple[str, Any, Any, str, list[tuple[str, str]]]:
        """Check the shape of a point unlike those seen before, and remember its text parts."""
        if not isinstance(point, Mapping):
            raise _invalid(index, None, f"is a {type(point).__name__}, not a dict")
        measurement = point.get("measurement")
        if type(measurement) is not str or not measurement:
            raise _invalid(index, None, "has no measurement (a non-empty string)")
        tags = point.get("tags") or {}
        if not isinstance(tags, Mapping):
            raise _invalid(index, measurement, "tags is not a dict")
        series = measurement.translate(_NAME_ESCAPES)
        for key in sorted(tags):
            value = tags[key]
            if type(key) is not str or not key:
                raise _invalid(index, measurement, f"tag key {key!r} is not a non-empty string")
            if type(value) is not str:
                raise _invalid(
                    index,
                    measurement,
                    f"tag {key!r} has a {type(value).__name__} value {value!r}: "
                    "tag values must be strings",
                )
            if value:
                series += f",{key.translate(_NAME_ESCAPES)}={value.translate(_NAME_ESCAPES)}"
        if type(tags) is dict and tags:
            _cache(self._series, (measurement, *tags.items()), series)
        elif not tags:
            _cache(self._series, (measurement,), series)

        fields = point.get("fields")
        if not fields or not isinstance(fields, Mapping):
            raise _invalid(index, measurement, "has no fields")
        for key in fields:
            if type(key) is not str or not key:
                raise _invalid(index, measurement, f"field key {key!r} is not a non-empty string")
        keys = [(key, f"{key.translate(_NAME_ESCAPES)}=") for key in sorted(fields)]
        if type(fields) is dict:
            _cache(self._field_keys, tuple(fields), keys)
        return measurement, tags, fields, series, keys


def _cache(cache: dict[Any, Any], key: Any, value: Any) -> None:
    if len(cache) >= _CACHE_LIMIT:
        cache.clear()
    cache[key] = value


def _invalid(index: int, measurement: str | None, problem: str) -> CollectorError:
    what = f"point {index}" if measurement is None else f"point {index} ({measurement!r})"
    return CollectorError(f"{what} {problem}")
