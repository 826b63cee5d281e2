"""``aether replay``: table, JSON lines, ranges, --state, not found."""

from __future__ import annotations

from pathlib import Path

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


FOLDS = '''
def totals(state, event):
    """Counts events per type and sums "items"."""
    state = dict(state)
    state[event.event_type] = state.get(event.event_type, 0) + 1
    state["items"] = state.get("items", 0) + event.data.get("items", 0)
    return state


class Nested:
    @staticmethod
    def versions(state, event):
        return {"versions": [*state.get("versions", []), event.version]}


def broken(state, event):
    if event.version == 2:
        raise ValueError("cannot fold this one")
    return state


def not_json(state, event):
    return {"when": object()}


NOT_A_FUNCTION = 42
'''


@pytest.fixture
def folds(tmp_path: Path) -> None:
    """A user module ``myfolds`` in the current directory (the test's tmp_path)."""
    (tmp_path / "myfolds.py").write_text(FOLDS)


def test_state_with_the_users_fold(cli: Cli, order: None, folds: None) -> None:
    out = cli("replay", "order-1", "--state", "--fold", "myfolds:totals", "--json")
    assert out.code == 0, out.stderr
    assert out.json() == {"OrderPlaced": 1, "OrderShipped": 1, "OrderDelivered": 1, "items": 3}
    ranged = cli("replay", "order-1", "--fold", "myfolds:Nested.versions", "--json", "--from", "2")
    assert ranged.json() == {"versions": [2, 3]}  # --fold implies --state
    start = cli(
        "replay", "order-1", "--fold", "myfolds:totals", "--initial", '{"items": 100}', "--json"
    )
    assert start.json()["items"] == 103  # type: ignore[index]
    human = cli("replay", "order-1", "--fold", "myfolds:totals")
    assert human.code == 0
    assert "State of 'order-1' at version 3 (3 events folded):" in human.stdout
    assert '"OrderShipped": 1' in human.stdout


@pytest.mark.parametrize(
    ("spec", "code", "words"),
    [
        ("myfolds", 2, "is not MODULE:FUNC"),
        ("myfolds:", 2, "is not MODULE:FUNC"),
        ("nosuchmodule:f", 2, "cannot import module 'nosuchmodule'"),
        ("myfolds:missing", 2, "has no attribute 'missing'"),
        ("myfolds:NOT_A_FUNCTION", 2, "not a function"),
        ("myfolds:broken", 1, "raised ValueError at version 2: cannot fold this one"),
        ("myfolds:not_json", 1, "not JSON"),
    ],
)
def test_fold_errors_are_one_line(
    cli: Cli, order: None, folds: None, spec: str, code: int, words: str
) -> None:
    out = cli("replay", "order-1", "--fold", spec, "--json")
    assert out.code == code, out.stderr
    assert words in out.error_line()
    assert out.stdout == ""


def test_initial_needs_fold_and_must_be_an_object(cli: Cli, order: None, folds: None) -> None:
    out = cli("replay", "order-1", "--state", "--initial", "{}")
    assert out.code == 2 and "--initial needs --fold" in out.error_line()
    out = cli("replay", "order-1", "--fold", "myfolds:totals", "--initial", "[1]")
    assert out.code == 2 and "--initial" in out.error_line()
