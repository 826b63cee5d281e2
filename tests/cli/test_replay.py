"""``aether replay``: table, JSON lines, ranges, --state, not found."""

from __future__ import annotations

import pytest

from tests.cli.conftest import Cli


@pytest.fixture
def order(cli: Cli) -> None:
    """order-1 with three events; other-actor with one, in between."""
    assert cli("append", "order-1", "OrderPlaced", "-d", '{"total": 99.99, "items": 3}').code == 0
    assert cli("append", "other-actor", "Noise", "-d", '{"x": 1}').code == 0
    assert cli("append", "order-1", "OrderShipped", "-d", '{"carrier": "FastShip"}').code == 0
    assert (
        cli("append", "order-1", "OrderDelivered", "-d", '{"carrier": "Neighbour", "at": 5}').code
        == 0
    )


def test_table_shows_version_type_timestamp_and_data(cli: Cli, order: None) -> None:
    out = cli("replay", "order-1")
    assert out.code == 0 and out.stderr == ""
    for text in ("Version", "Type", "Timestamp", "Data", "OrderPlaced", "OrderShipped"):
        assert text in out.stdout
    assert '{"total":99.99,"items":3}' in out.stdout
    assert "Noise" not in out.stdout
    assert "order-1 (3 events)" in out.stdout


def test_json_lines_in_version_order_with_positions(cli: Cli, order: None) -> None:
    events = cli("replay", "order-1", "--json").json_lines()
    assert [e["version"] for e in events] == [1, 2, 3]  # type: ignore[index]
    assert [e["position"] for e in events] == [1, 3, 4]  # type: ignore[index]
    assert events[0]["data"] == {"total": 99.99, "items": 3}  # type: ignore[index]
    assert {e["actor_id"] for e in events} == {"order-1"}  # type: ignore[index]


@pytest.mark.parametrize(
    ("bounds", "expected"),
    [
        (["--from", "2"], [2, 3]),
        (["--to", "2"], [1, 2]),
        (["--from", "2", "--to", "2"], [2]),
        (["--from", "0", "--to", "99"], [1, 2, 3]),
    ],
)
def test_version_range_is_inclusive(
    cli: Cli, order: None, bounds: list[str], expected: list[int]
) -> None:
    events = cli("replay", "order-1", "--json", *bounds).json_lines()
    assert [e["version"] for e in events] == expected  # type: ignore[index]


def test_state_folds_data_later_keys_win(cli: Cli, order: None) -> None:
    out = cli("replay", "order-1", "--state", "--json")
    assert out.code == 0
    assert out.json() == {"total": 99.99, "items": 3, "carrier": "Neighbour", "at": 5}
    up_to_2 = cli("replay", "order-1", "--state", "--json", "--to", "2").json()
    assert up_to_2 == {"total": 99.99, "items": 3, "carrier": "FastShip"}
    human = cli("replay", "order-1", "--state")
    assert human.code == 0
    assert "State of 'order-1' at version 3 (3 events folded):" in human.stdout
    assert '"carrier": "Neighbour"' in human.stdout


def test_unknown_actor_is_not_found(cli: Cli, order: None) -> None:
    for args in (["replay", "nobody"], ["replay", "nobody", "--json"], ["replay", "x", "--state"]):
        out = cli(*args)
        assert out.code == 4
        line = out.error_line()
        assert "not found" in line and "has no events" in line and "'default'" in line
        assert out.stdout == ""


def test_empty_range_is_not_found(cli: Cli, order: None) -> None:
    out = cli("replay", "order-1", "--from", "4")
    assert out.code == 4
    assert "from version 4" in out.error_line()


def test_bad_arguments_are_usage_errors(cli: Cli, order: None) -> None:
    for args, named in (
        (["replay", "order-1", "--from", "3", "--to", "2"], "--to 2 is before --from 3"),
        (["replay", "order-1", "--from", "-1"], "--from"),
        (["replay", ""], "ACTOR"),
        (["replay"], "ACTOR"),
        (["-n", "a.b", "replay", "x"], "namespace"),
    ):
        out = cli(*args)
        assert out.code == 2, args
        assert named in out.error_line()


def test_markup_in_ids_and_data_is_printed_literally(cli: Cli) -> None:
    actor = "[bold]boss[/bold]"
    assert cli("append", actor, "Said[red]", "-d", '{"m": "[blink]hi[/blink]"}').code == 0
    out = cli("replay", actor)
    assert out.code == 0
    assert "[bold]boss[/bold]" in out.stdout
    assert "Said[red]" in out.stdout
    assert "[blink]hi[/blink]" in out.stdout
