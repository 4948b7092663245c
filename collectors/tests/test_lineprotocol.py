"""The encoder writes what influxdb.line_protocol.make_lines writes, and refuses bad points."""

from __future__ import annotations

from datetime import datetime, timedelta, timezone
from typing import Any
from zoneinfo import ZoneInfo

import pytest
from hypothesis import given
from hypothesis import strategies as st
from influxdb.line_protocol import make_lines
from metrics.lib.errors import CollectorError
from metrics.lib.lineprotocol import LineEncoder

names = st.text(min_size=1)
field_values = st.one_of(
    st.integers(min_value=-(2**63), max_value=2**63 - 1),
    st.floats(allow_nan=False, allow_infinity=False),
    st.booleans(),
    st.text(),
    st.none(),
)
zones = st.one_of(
    st.sampled_from([timezone.utc, ZoneInfo("Europe/London"), ZoneInfo("Asia/Kolkata")]),
    st.integers(min_value=-1439, max_value=1439).map(lambda m: timezone(timedelta(minutes=m))),
)
moments = st.datetimes(
    min_value=datetime(1900, 1, 1), max_value=datetime(2200, 1, 1), timezones=zones
)
times = st.one_of(
    st.none(),
    st.integers(min_value=0, max_value=2**63 - 1),
    moments,
    st.datetimes(min_value=datetime(1900, 1, 1), max_value=datetime(2200, 1, 1)),
    moments.map(datetime.isoformat),
)
points = st.fixed_dictionaries(
    {
        "measurement": names,
        # make_lines takes any tag value through str() (None left out, bytes decoded), and
        # the original collectors send bools (upload_queues) and None (images).
        "tags": st.dictionaries(
            names,
            st.one_of(
                st.text(),
                st.booleans(),
                st.integers(),
                st.floats(),
                st.none(),
                st.text().map(str.encode),
            ),
        ),
        "fields": st.dictionaries(names, field_values, min_size=1).filter(
            lambda fields: any(value is not None for value in fields.values())
        ),
        "time": times,
    }
)


@given(st.lists(points, min_size=1, max_size=20))
def test_lines_are_byte_identical_to_make_lines(batch: list[dict[str, Any]]) -> None:
    encoder = LineEncoder()
    accepted, lines = [], []
    for index, point in enumerate(batch):
        try:
            lines.append(encoder.encode(point, index))
        except CollectorError:
            # Only a time string dateutil cannot read (an offset with seconds) gets here.
            with pytest.raises(ValueError, match="format"):
                make_lines({"points": [point]})
        else:
            accepted.append(point)

    if accepted:
        expected = make_lines({"points": accepted}).encode()
        assert ("\n".join(lines) + "\n").encode() == expected
        # The write path's loop, twice over the points: the second time every shape is known.
        batch_lines: list[str] = []
        LineEncoder().encode_into(batch_lines, iter(accepted * 2), len(accepted) * 2, 0, None)
        assert ("\n".join(batch_lines) + "\n").encode() == expected * 2


def test_escaping_and_types_match_make_lines_on_a_known_point() -> None:
    point = {
        "measurement": 'disk usage,total=all "x"\\',
        "tags": {"host name": "a,b=c\nd", "empty": "", "z\\": "\\"},
        "fields": {
            "quoted": 'say "hi"\\\nbye',
            "int": 42,
            "float": 0.1,
            "big": 1e300,
            "flag": False,
            "gone": None,
        },
        "time": "2024-04-25T12:00:00+02:00",
    }

    line = LineEncoder().encode(point, 0)

    assert line + "\n" == make_lines({"points": [point]})
    assert line.startswith(
        'disk\\ usage\\,total\\=all\\ "x"\\\\,host\\ name=a\\,b\\=c\\nd,z\\\\=\\\\ '
    )
    assert line.endswith(" 1714039200000000000")


def test_shapes_seen_with_other_value_types_are_encoded_like_make_lines() -> None:
    # A shape's fast formatter is made for the types first seen; other types take the
    # careful path, which still checks and formats each value.
    points = [
        {"measurement": "m", "tags": {"t": "a"}, "fields": {"v": 1, "w": "x"}, "time": 1},
        {"measurement": "m", "tags": {"t": "a"}, "fields": {"v": 1.5, "w": True}, "time": 2},
        {"measurement": "m", "tags": {"t": "a"}, "fields": {"v": None, "w": 'q"'}},
        {
            "measurement": "m",
            "tags": {"t": "a"},
            "fields": {"v": 2, "w": "y"},
            "time": "1970-01-01",
        },
        {"measurement": "n", "fields": {"v": None, "w": 3}, "time": 4},
        {"measurement": "n", "fields": {"v": 5, "w": 3}, "time": 5},
    ]
    encoder = LineEncoder()
    lines: list[str] = []
    encoder.encode_into(lines, iter(points), 100, 0, None)

    assert "\n".join(lines) + "\n" == make_lines({"points": points})
    assert lines[1] == "m,t=a v=1.5,w=True 2"


def test_one_series_with_changing_field_names_is_encoded_like_make_lines() -> None:
    # The hot path finds a formatter by series alone; the formatter must notice a point of
    # that series with one field more, one fewer, another name or the names reordered.
    fields = [
        {"a": 1, "b": 2},
        {"a": 1, "b": 2, "c": 3},
        {"a": 1},
        {"a": 1, "c": 2},
        {"b": 2, "a": 1},
        {"c": 3, "d": 4},
        {"a": 1, "b": 2},
    ]
    points = [
        {"measurement": "m", "tags": {"t": "x"}, "fields": f, "time": i}
        for i, f in enumerate(fields * 2)
    ]
    lines: list[str] = []
    LineEncoder().encode_into(lines, iter(points), 100, 0, None)

    assert "\n".join(lines) + "\n" == make_lines({"points": points})
    assert lines[1:4] == ["m,t=x a=1i,b=2i,c=3i 1", "m,t=x a=1i 2", "m,t=x a=1i,c=2i 3"]


def test_encode_into_names_the_run_index_of_a_bad_point_and_keeps_the_lines_before() -> None:
    points = iter([{"measurement": "m", "fields": {"v": i}} for i in range(3)])
    lines: list[str] = []
    LineEncoder().encode_into(lines, points, 2, 10, 7)
    assert lines == ["m v=0i 7", "m v=1i 7"]
    rest = iter([next(points), {"measurement": "m", "fields": {"v": float("nan")}}])

    with pytest.raises(CollectorError, match=r"point 13 \('m'\) field 'v' is nan"):
        LineEncoder().encode_into(lines, rest, 5, 12, 7)

    assert lines == ["m v=0i 7", "m v=1i 7", "m v=2i 7"]


def test_a_point_without_time_gets_the_default_time() -> None:
    point = {"measurement": "m", "fields": {"v": 1}}

    assert LineEncoder().encode(point, 0, default_time=17) == "m v=1i 17"
    assert LineEncoder().encode({**point, "time": 5}, 0, default_time=17) == "m v=1i 5"


def test_tags_equal_as_keys_but_not_as_text_make_their_own_series() -> None:
    """True == 1 == 1.0 to a dict, but make_lines writes "True", "1" and "1.0"."""
    batch = [
        {"measurement": "queue", "tags": {"devel": value}, "fields": {"size": 3}, "time": 1}
        for value in (True, 1, 1.0, "1", None, False, 0, b"1")
    ]
    lines: list[str] = []
    LineEncoder().encode_into(lines, iter(batch * 2), len(batch) * 2, 0, None)

    assert "\n".join(lines) + "\n" == make_lines({"points": batch * 2})
    assert lines[:3] == [
        "queue,devel=True size=3i 1",
        "queue,devel=1 size=3i 1",
        "queue,devel=1.0 size=3i 1",
    ]


@pytest.mark.parametrize(
    ("point", "problem"),
    [
        ("m v=1", "point 3 is a str, not a dict"),
        ({"fields": {"v": 1}}, "point 3 has no measurement"),
        ({"measurement": "", "fields": {"v": 1}}, "point 3 has no measurement"),
        ({"measurement": "m"}, "point 3 ('m') has no fields"),
        ({"measurement": "m", "fields": {}}, "point 3 ('m') has no fields"),
        (
            {"measurement": "m", "fields": {"v": None}},
            "point 3 ('m') has no fields (all are None)",
        ),
        ({"measurement": "m", "fields": {"v": {"a": 1}}}, "field 'v' holds a nested dict"),
        ({"measurement": "m", "fields": {"v": [1]}}, "field 'v' holds a nested list"),
        ({"measurement": "m", "fields": {"v": float("nan")}}, "point 3 ('m') field 'v' is nan"),
        ({"measurement": "m", "fields": {"v": float("-inf")}}, "field 'v' is -inf"),
        ({"measurement": "m", "fields": {"v": b"x"}}, "field 'v' has a bytes value"),
        ({"measurement": "m", "tags": ["t"], "fields": {"v": 1}}, "tags is not a dict"),
        (
            {"measurement": "m", "fields": {"v": 1}, "time": "yesterday"},
            "bad timestamp 'yesterday'",
        ),
        ({"measurement": "m", "fields": {"v": 1}, "time": 1.5}, "bad timestamp 1.5"),
        ({"measurement": "m", "fields": {"v": 1}, "time": True}, "bad timestamp True"),
    ],
)
def test_invalid_point_names_its_index_and_problem(point: Any, problem: str) -> None:
    with pytest.raises(CollectorError) as raised:
        LineEncoder().encode(point, 3)

    assert problem in str(raised.value)


def test_datetime_and_string_times_agree() -> None:
    encoder = LineEncoder()
    moment = datetime(2024, 1, 2, 3, 4, 5, 678901, tzinfo=timezone.utc)

    by_datetime = encoder.encode({"measurement": "m", "fields": {"v": 1}, "time": moment}, 0)
    by_string = encoder.encode(
        {"measurement": "m", "fields": {"v": 1}, "time": moment.isoformat()}, 1
    )

    assert by_datetime == by_string == "m v=1i 1704164645678901000"
