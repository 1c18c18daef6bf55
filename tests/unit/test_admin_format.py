"""Numbers as operators read them: durations in days/hours/minutes, chart axes whose middle line is a whole number."""

import re

import pytest

from authsvc.admin import human_duration
from authsvc.admin.charts import histogram, nice_top, stacked_bars


@pytest.mark.parametrize("seconds,text", [
    (0, "0 sec"), (59, "59 sec"), (60, "1 min"), (754, "12 min 34 sec"), (3600, "1 hr"), (86399, "23 hr 59 min"),
    (86400, "1 day"), (2591996, "29 days 23 hr"), ("junk", "—"), (None, "—"), (-5, "0 sec"),
    (10**12, "11574074 days 1 hr"), (float("nan"), "—"), (float("inf"), "—"), ("1e5", "—"), ([3], "—"),
    (10**30, "999999999 days"),  # past the longest timedelta: understated, never an error
])
def test_human_duration(seconds, text):
    assert human_duration(seconds) == text


@pytest.mark.parametrize("locale,text", [
    ("de", "29 Tg. 23 Std."), ("nb", "29 d 23 t"), ("es", "29 d 23 h"), ("pt_BR", "29 dias 23 h"), ("en", "29 days 23 hr"),
])
def test_human_duration_in_each_language_babel_units_never_weeks(locale, text):
    """Babel's format_timedelta would round 2591996 s to "4 weeks"; each unit is formatted at its own granularity."""
    assert human_duration(2591996, locale) == text


@pytest.mark.parametrize("value", [0, 1, 2, 3, 5, 9, 11, 37, 99, 101, 4999, 123456])
def test_axis_top_is_at_least_the_data_and_its_half_is_whole(value):
    top = nice_top(value)
    assert top >= value and top >= 2 and top % 2 == 0 and top <= max(2, value) * 2.5


def _axis_labels(svg: str) -> list[int]:
    return [int(x) for x in re.findall(r'<text class="axis"[^>]*text-anchor="end">(\d+)</text>', str(svg))]


def test_charts_with_one_login_read_two_one_zero_not_one_zero_zero():
    svg = stacked_bars("c", "t", "d", ["00", "01"], [("allowed", "bar-allowed", [1, 0])])
    assert sorted(_axis_labels(svg)) == [0, 1, 2]
    svg = histogram("h", "t", "d", [("0-1", 1, "bar-allowed"), ("1-2", 0, "bar-stepup")])
    assert sorted(_axis_labels(svg)) == [0, 1, 2]
