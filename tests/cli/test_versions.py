"""``aether versions``."""

from __future__ import annotations

from pathlib import Path

from tests.cli.conftest import Cli


def test_no_store_is_not_found_and_creates_nothing(cli: Cli, tmp_path: Path) -> None:
    for args in (["versions"], ["versions", "--json"], ["versions", "a"]):
        out = cli(*args)
        assert out.code == 4 and out.stdout == ""
        assert "no SQLite store at" in out.error_line()
    assert not (tmp_path / ".aether").exists()


def test_no_events_on_the_memory_store(cli: Cli) -> None:
    out = cli("--store", "memory", "versions")
    assert out.code == 0
    assert out.stdout == "No events in namespace 'default'\n"
    assert cli("--store", "memory", "versions", "--json").json() == {}


def test_prefix_filters_the_listing(cli: Cli) -> None:
    for actor in ("acct-1", "acct-2", "acct-2", "transfer-1", "ACCT-3", "acct"):
        assert cli("append", actor, "E").code == 0
    out = cli("versions", "--prefix", "acct-", "--json")
    assert out.code == 0
    assert list(out.json().items()) == [("acct-1", 1), ("acct-2", 2)]  # type: ignore[union-attr]
    table = cli("versions", "--prefix", "transfer")
    assert "transfer-1" in table.stdout and "acct" not in table.stdout
    none = cli("versions", "--prefix", "zzz")
    assert none.code == 0
    assert none.stdout == "No actor starting with 'zzz' in namespace 'default'\n"
    assert cli("versions", "--prefix", "zzz", "--json").json() == {}
    both = cli("versions", "--prefix", "a", "acct-1")
    assert both.code == 2 and "--prefix" in both.error_line()
    empty = cli("versions", "--prefix", "")
    assert empty.code == 2 and "--prefix: must not be empty" in empty.error_line()


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
