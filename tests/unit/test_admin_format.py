"""Numbers as operators read them: durations in days/hours/minutes, chart axes whose middle line is a whole number."""

import re

import pytest

from authsvc.admin import human_duration
from authsvc.admin.charts import histogram, nice_top, stacked_bars


@pytest.mark.parametrize("seconds,text", [
    (0, "0 s"), (59, "59 s"), (60, "1 min"), (754, "12 min 34 s"), (3600, "1 h"), (86399, "23 h 59 min"),
    (86400, "1 day"), (2591996, "29 days 23 h"), ("junk", "—"), (None, "—"), (-5, "0 s"), (10**12, "11574074 days 1 h"),
])
def test_human_duration(seconds, text):
    assert human_duration(seconds) == text


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
