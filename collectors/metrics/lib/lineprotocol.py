"""Point validation and InfluxDB line protocol encoding.

`LineEncoder.encode(point, index)` gives, for every point it accepts, exactly the line that
`influxdb.line_protocol.make_lines` makes for it (escaping, sorting and number formats
included), several times faster: a collector's points repeat a few shapes (measurement, tag
set, field names and value types), so each shape's escaped and sorted text is cached with a
small function that formats only the values. Points that InfluxDB would reject, or that
make_lines would silently mangle, raise `CollectorError` naming the point's index and the
problem instead.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Mapping
from datetime import datetime, timezone
from itertools import islice
from types import MappingProxyType
from typing import Any, NamedTuple

from dateutil.parser import parse as parse_date

from .errors import CollectorError

_NAME_ESCAPES = str.maketrans({"\\": "\\\\", " ": "\\ ", ",": "\\,", "=": "\\=", "\n": "\\n"})
_EPOCH = datetime(1970, 1, 1, tzinfo=timezone.utc)
_CACHE_LIMIT = 10_000  # entries per cache; a cache is emptied when it reaches this
# Separates tag items from field names in a shape's cache key; no point can hold it.
_FIELDS = object()
_NO_TAGS: Mapping[str, str] = MappingProxyType({})  # what a point without tags has

# (fields, time) -> the line of one series, or None when the careful path must make it
Formatter = Callable[[Any, Any], "str | None"]


class _Shape(NamedTuple):
    measurement: str
    series: str  # 'measurement,tag=value,...' escaped, tags sorted
    keys: list[tuple[str, str]]  # [(field name, 'escaped name=')] sorted by name
    format: Formatter


def _escape_string(value: str) -> str:
    # Three replace() calls, as make_lines does: several times faster than str.translate.
    return value.replace("\\", "\\\\").replace('"', '\\"').replace("\n", "\\n")


def _nanoseconds(moment: datetime) -> int:
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=timezone.utc)
    delta = moment - _EPOCH
    return (delta.days * 86400 + delta.seconds) * 10**9 + delta.microseconds * 10**3


class LineEncoder:
    """Turns points (the dicts `InfluxDBClient.write_points` takes) into line protocol."""

    def __init__(self) -> None:
        # A shape's key: (measurement, *tag values, *tag keys, _FIELDS, *field names), all in
        # the point's order. Flat, without a tuple per tag, because it is made for every
        # point; _FIELDS tells tag items from field names.
        self._shapes: dict[tuple[Any, ...], _Shape] = {}
        # The hot path's key, without the field names: (measurement, *tag values, *tag
        # keys) -> the formatter of the fields last learned for that series. The formatter
        # checks the field names itself (their number, and a lookup each), for less than
        # putting them in the key costs; a point with other fields takes the slower path.
        self._formatters: dict[tuple[Any, ...], Formatter] = {}
        self._last_time_text = ""
        self._last_time = ""

    def encode(self, point: Any, index: int, default_time: int | None = None) -> str:
        """The line for `point`, the `index`-th point of the run (named in errors).

        A point without a time gets `default_time` (nanoseconds) when one is given.
        """
        try:
            fields: Any = point["fields"]
            tags: Any = point.get("tags") or _NO_TAGS
            key = (point["measurement"], *tags.values(), *tags, _FIELDS, *fields)
            shape = self._shapes[key]
        except (KeyError, TypeError, AttributeError):
            shape = self._learn(point, index)
            fields = point["fields"]
        moment = point.get("time")
        if moment is None:
            moment = default_time
        line = shape.format(fields, moment)
        if line is not None:
            return line
        line = self._fields_carefully(shape, fields, index)
        if moment is None:
            return line
        if type(moment) is int:
            return f"{line} {moment}"
        if type(moment) is str:
            if moment != self._last_time_text:
                try:
                    self._last_time = str(_nanoseconds(parse_date(moment)))
                except (ValueError, OverflowError) as error:
                    raise _invalid(
                        index, shape.measurement, f"has a bad timestamp {moment!r} ({error})"
                    ) from None
                self._last_time_text = moment
            return f"{line} {self._last_time}"
        if isinstance(moment, datetime):
            return f"{line} {_nanoseconds(moment)}"
        raise _invalid(
            index,
            shape.measurement,
            f"has a bad timestamp {moment!r}: use an int (ns), an ISO 8601 string or a datetime",
        )

    def encode_into(
        self,
        lines: list[str],
        points: Iterator[Any],
        count: int,
        first_index: int,
        default_time: int | None,
    ) -> None:
        """Append to `lines` the lines of the next `count` points of `points` (fewer at its
        end), as `encode` makes them; the first is the `first_index`-th point of the run.

        The write path's loop: for a point shaped like one seen before whose values have the
        usual types, one key, one lookup and one call. Anything else goes to `encode`. On an
        exception (from `points`, or an invalid point) `lines` holds the points before it.
        """
        formatters = self._formatters
        append = lines.append
        no_tags = _NO_TAGS
        skipped = first_index - len(lines)  # a point's index is this plus len(lines)
        # islice stops after `count` without taking another point from `points`.
        for point in islice(points, count):
            try:
                fields: Any = point["fields"]
                tags: Any = point.get("tags") or no_tags
                moment = point.get("time")
                line = formatters[(point["measurement"], *tags.values(), *tags)](
                    fields, default_time if moment is None else moment
                )
                if line is not None:
                    append(line)
                    continue
            except (KeyError, TypeError, AttributeError):
                pass
            append(self.encode(point, skipped + len(lines), default_time))

    def _fields_carefully(self, shape: _Shape, fields: Any, index: int) -> str:
        """The line without its time, each value checked: what the shape's formatter left."""
        line = shape.series
        separator = " "
        for key, prefix in shape.keys:
            value = fields[key]
            kind = type(value)
            if kind is int:
                line = f"{line}{separator}{prefix}{value}i"
            elif kind is float:
                if value - value:  # inf - inf and nan - nan are nan, which is true
                    raise _invalid(index, shape.measurement, f"field {key!r} is {value}")
                line = f"{line}{separator}{prefix}{value!r}"
            elif kind is str:
                line = f'{line}{separator}{prefix}"{_escape_string(value)}"'
            elif kind is bool:
                line = f"{line}{separator}{prefix}{value}"
            elif value is None:
                continue
            elif isinstance(value, (dict, list, tuple, set)):
                raise _invalid(
                    index,
                    shape.measurement,
                    f"field {key!r} holds a nested {kind.__name__}: "
                    "field values must be numbers, booleans or strings",
                )
            else:
                raise _invalid(
                    index,
                    shape.measurement,
                    f"field {key!r} has a {kind.__name__} value: "
                    "field values must be numbers, booleans or strings",
                )
            separator = ","
        if separator == " ":
            raise _invalid(index, shape.measurement, "has no fields (all are None)")
        return line

    def _learn(self, point: Any, index: int) -> _Shape:
        """Check the shape of a point unlike those seen before, and remember its text parts."""
        if not isinstance(point, Mapping):
            raise _invalid(index, None, f"is a {type(point).__name__}, not a dict")
        measurement = point.get("measurement")
        if type(measurement) is not str or not measurement:
            raise _invalid(index, None, "has no measurement (a non-empty string)")
        tags = point.get("tags") or _NO_TAGS
        if not isinstance(tags, Mapping):
            raise _invalid(index, measurement, "tags is not a dict")
        series = measurement.translate(_NAME_ESCAPES)
        # Only shapes whose tag values are strings are remembered: True, 1 and 1.0 are one
        # key to a dict but three tags ("True", "1", "1.0") to make_lines.
        remember = True
        for key in sorted(tags):
            value = tags[key]
            if type(key) is not str or not key:
                raise _invalid(index, measurement, f"tag key {key!r} is not a non-empty string")
            if type(value) is not str:
                value = _tag_text(value)
                remember = False
            if value:
                series += f",{key.translate(_NAME_ESCAPES)}={value.translate(_NAME_ESCAPES)}"

        fields = point.get("fields")
        if not fields or not isinstance(fields, Mapping):
            raise _invalid(index, measurement, "has no fields")
        for key in fields:
            if type(key) is not str or not key:
                raise _invalid(index, measurement, f"field key {key!r} is not a non-empty string")
        keys = [(key, f"{key.translate(_NAME_ESCAPES)}=") for key in sorted(fields)]
        formatter = _formatter(series, keys, [type(fields[key]) for key, _ in keys])
        shape = _Shape(measurement, series, keys, formatter)
        if remember and type(fields) is dict and (type(tags) is dict or tags is _NO_TAGS):
            if len(self._shapes) >= _CACHE_LIMIT:
                self._shapes.clear()
                self._formatters.clear()
            self._shapes[(measurement, *tags.values(), *tags, _FIELDS, *fields)] = shape
            self._formatters[(measurement, *tags.values(), *tags)] = formatter
        return shape


def _tag_text(value: Any) -> str:
    """A tag value that is not a string, as make_lines writes it: None left out (""), bytes
    decoded, anything else through str() (True, 3, 1.5)."""
    if value is None:
        return ""
    if isinstance(value, bytes):
        return value.decode("utf-8")
    return str(value)


def _careful(fields: Any, moment: Any) -> None:
    """The formatter of a shape first seen with a value of no usual type: the careful path."""


# The code of a formatter, by value type: how the value is checked and written after 'name='.
_TEXTS = {
    int: "{{v{i}!s}}i",
    float: "{{v{i}!r}}",
    bool: '{{"True" if v{i} else "False"}}',  # faster than formatting the bool
    str: '"{{v{i}}}"',
}
# Most strings need no escaping; three `in` tests cost less than three replace() calls.
_ESCAPE = r"""            if "\\" in v{i} or '"' in v{i} or "\n" in v{i}:
                v{i} = v{i}.replace("\\", "\\\\").replace('"', '\\"').replace("\n", "\\n")
"""
_makers: dict[tuple[type, ...], Callable[..., Formatter]] = {}


def _formatter(series: str, keys: list[tuple[str, str]], types: list[type]) -> Formatter:
    """A function that formats the points of one series with these fields fast, while their
    values keep these types. Its code is shared by all fields of the same number and types.

    For the series 'queue,arch=amd64' and field names ("count", "ratio") first seen with an
    int and a float it is, with the series and the first field's escaped name as `head`
    ('queue,arch=amd64 count='), the other names as `joint1` (',ratio=') and the names as
    k0 and k1, all bound from the closure:

        def format_line(fields, moment):
            v0 = fields[k0]
            v1 = fields[k1]
            if len(fields) == 2 and type(v0) is int and type(v1) is float and not v1 - v1:
                if type(moment) is int:
                    return f"{head}{v0!s}i{joint1}{v1!r} {moment}"
                if moment is None:
                    return f"{head}{v0!s}i{joint1}{v1!r}"
            return None

    It returns None, leaving the point to the careful path, for other fields (a name missing
    raises KeyError, one more is caught by the count), other types (a None value, a float
    that is not finite, another type) and a time that is not an int. Its code depends
    only on the number and types of the fields: no name or value from a point is part of it.
    Fields first seen with a value of another type get `_careful`.
    """
    if not all(kind in _TEXTS for kind in types):
        return _careful
    signature = tuple(types)
    maker = _makers.get(signature)
    if maker is None:
        count = range(len(types))
        names = ", ".join(["head", *(f"joint{i}" for i in count[1:]), *(f"k{i}" for i in count)])
        checks = f"len(fields) == {len(types)} and " + " and ".join(
            f"type(v{i}) is {kind.__name__}" for i, kind in enumerate(types)
        )
        floats = [f"v{i} - v{i}" for i, kind in enumerate(types) if kind is float]
        if floats:
            # Finite floats: 0.0 (false). An inf or a nan anywhere makes the sum nan (true).
            checks += f" and not {' + '.join(floats)}"
        escapes = "".join(_ESCAPE.format(i=i) for i, kind in enumerate(types) if kind is str)
        text = "".join(
            ("{head}" if i == 0 else f"{{joint{i}}}") + _TEXTS[kind].format(i=i)
            for i, kind in enumerate(types)
        )
        source = (
            f"def make({names}):\n"
            "    def format_line(fields, moment):\n"
            + "".join(f"        v{i} = fields[k{i}]\n" for i in count)
            + f"        if {checks}:\n"
            + escapes
            + "            if type(moment) is int:\n"
            f"                return f'{text} {{moment}}'\n"
            "            if moment is None:\n"
            f"                return f'{text}'\n"
            "        return None\n"
            "    return format_line\n"
        )
        namespace: dict[str, Any] = {}
        exec(source, namespace)  # noqa: S102 - source made only of the fixed pieces above
        maker = namespace["make"]
        if len(_makers) >= _CACHE_LIMIT:
            _makers.clear()
        _makers[signature] = maker
    joints = [f",{prefix}" for _, prefix in keys[1:]]  # ',p1', ...: fewer pieces to join
    return maker(f"{series} {keys[0][1]}", *joints, *(key for key, _ in keys))


def _invalid(index: int, measurement: str | None, problem: str) -> CollectorError:
    what = f"point {index}" if measurement is None else f"point {index} ({measurement!r})"
    return CollectorError(f"{what} {problem}")
