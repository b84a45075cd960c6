from __future__ import annotations

import pytest

from coral_core.labels.palette import (
    BACKGROUND_COLOR,
    IGNORE_COLOR,
    distinct_colors,
    parse_color,
    to_hex,
)


@pytest.mark.parametrize("n", [0, 1, 7, 16, 20, 21, 100, 254])
def test_distinct_colors_are_unique_valid_and_not_reserved(n: int) -> None:
    colors = distinct_colors(n)
    assert len(colors) == n
    assert len(set(colors)) == n
    assert BACKGROUND_COLOR not in colors and IGNORE_COLOR not in colors
    assert all(0 <= c <= 255 for color in colors for c in color)


def test_distinct_colors_are_deterministic_and_prefix_stable() -> None:
    assert distinct_colors(40) == distinct_colors(40)
    assert distinct_colors(40)[:16] == distinct_colors(16)


def test_first_colors_are_far_apart() -> None:
    colors = distinct_colors(16)
    closest = min(
        sum((a - b) ** 2 for a, b in zip(c1, c2, strict=True)) ** 0.5
        for i, c1 in enumerate(colors)
        for c2 in colors[i + 1 :]
    )
    assert closest > 40


def test_negative_count_is_an_error() -> None:
    with pytest.raises(ValueError, match=r"in 0\.\.256"):
        distinct_colors(-1)
    with pytest.raises(ValueError, match=r"in 0\.\.256"):
        distinct_colors(257)


@pytest.mark.parametrize(
    ("value", "expected"),
    [("#ff8000", (255, 128, 0)), ("00ff00", (0, 255, 0)), ([1, 2, 3], (1, 2, 3))],
)
def test_parse_color(value: object, expected: tuple[int, int, int]) -> None:
    assert parse_color(value) == expected
    assert parse_color(to_hex(expected)) == expected


@pytest.mark.parametrize("value", ["#fff", "#gg0000", [1, 2], [1, 2, 256], [True, 0, 0], 7])
def test_parse_color_rejects(value: object) -> None:
    with pytest.raises(ValueError, match="colour"):
        parse_color(value)
