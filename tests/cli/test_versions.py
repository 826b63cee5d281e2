"""``aether versions``."""

from __future__ import annotations

from tests.cli.conftest import Cli


def test_no_events(cli: Cli) -> None:
    out = cli("versions")
    assert out.code == 0
    assert out.stdout == "No events in namespace 'default'\n"
    assert cli("versions", "--json").json() == {}


def test_every_actor_sorted_with_latest_version(cli: Cli) -> None:
    for actor, n in (("zeta", 1), ("alpha", 3), ("a.b", 2)):
        for _ in range(n):
            assert cli("append", actor, "E").code == 0
    out = cli("--json", "versions")
    assert out.code == 0
    assert out.stdout.count("\n") == 1  # one JSON document
    assert list(out.json().items()) == [("a.b", 2), ("alpha", 3), ("zeta", 1)]  # type: ignore[union-attr]
    table = cli("versions")
    assert table.code == 0
    lines = [line for line in table.stdout.splitlines() if "│" in line]
    assert [line.split("│")[1].strip() for line in lines] == ["a.b", "alpha", "zeta"]
    assert [line.split("│")[2].strip() for line in lines] == ["2", "3", "1"]


def test_named_actors_unknown_is_zero(cli: Cli) -> None:
    assert cli("append", "a", "E").code == 0
    assert cli("append", "a", "E").code == 0
    out = cli("versions", "a", "missing", "--json")
    assert out.code == 0
    assert out.json() == {"a": 2, "missing": 0}


def test_bad_actor_is_a_usage_error(cli: Cli) -> None:
    out = cli("versions", "ok", "")
    assert out.code == 2
    assert "ACTOR: must not be empty" in out.error_line()
