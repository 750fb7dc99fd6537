"""Compose interpolation rules (compose-spec 12-interpolation.md)."""

import pytest

from opskit.interpolate import InterpolationError, interpolate, interpolate_tree

ENV = {"SET": "value", "EMPTY": "", "PORT": "6379"}


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("${SET}", "value"),
        ("$SET", "value"),
        ("${UNSET}", ""),
        ("$UNSET/x", "/x"),
        ("${UNSET:-fallback}", "fallback"),
        ("${EMPTY:-fallback}", "fallback"),
        ("${EMPTY-fallback}", ""),
        ("${UNSET-fallback}", "fallback"),
        ("${SET:-fallback}", "value"),
        ("${SET:+alt}", "alt"),
        ("${EMPTY:+alt}", ""),
        ("${EMPTY+alt}", "alt"),
        ("${UNSET+alt}", ""),
        ("$$", "$"),
        ("$${SET}", "${SET}"),
        ("cost: 5$", "cost: 5$"),
        ("${UNSET:-${PORT}}", "6379"),
        ("${UNSET:-${ALSO_UNSET:-deep}}", "deep"),
        ("127.0.0.1:${PORT:-1}/path", "127.0.0.1:6379/path"),
        ("${UNSET:-a b c}", "a b c"),
    ],
)
def test_interpolation(text, expected):
    assert interpolate(text, ENV) == expected


def test_required_unset_names_the_variable_and_message():
    with pytest.raises(InterpolationError) as info:
        interpolate("${NEEDED:?set it in .env}", ENV)
    assert info.value.variable == "NEEDED"
    assert "NEEDED" in str(info.value) and "set it in .env" in str(info.value)


def test_required_colon_rejects_empty_but_plain_accepts_it():
    with pytest.raises(InterpolationError):
        interpolate("${EMPTY:?}", ENV)
    assert interpolate("${EMPTY?}", ENV) == ""


@pytest.mark.parametrize("text", ["${", "${SET", "${1BAD}", "${SET:*x}", "${SET:-unclosed"])
def test_malformed(text):
    with pytest.raises(InterpolationError):
        interpolate(text, ENV)


def test_tree_interpolates_values_not_keys_and_reports_the_path():
    tree = {"${SET}": ["${PORT}", {"inner": "$SET"}], "n": 3}
    assert interpolate_tree(tree, ENV) == {"${SET}": ["6379", {"inner": "value"}], "n": 3}
    with pytest.raises(InterpolationError) as info:
        interpolate_tree({"services": {"redis": {"ports": ["${NOPE:?}"]}}}, ENV)
    assert info.value.path == "services.redis.ports[0]"
