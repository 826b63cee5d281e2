"""Global behaviour of the ``aether`` app: usage errors, config errors, help."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.cli.conftest import Cli


@pytest.mark.parametrize(
    ("args", "named"),
    [
        (["nosuch"], "No such command 'nosuch'"),
        (["--bogus", "versions"], "--bogus"),
        (["--store"], "--store"),
        (["replay", "a", "--from", "x"], "--from"),
        (["versions", "--nope"], "--nope"),
    ],
)
def test_usage_errors_are_one_line_exit_2(cli: Cli, args: list[str], named: str) -> None:
    out = cli(*args)
    assert out.code == 2
    line = out.error_line()
    assert named in line
    assert "--help" in line  # where to look next


def test_bare_aether_prints_help(cli: Cli) -> None:
    out = cli()
    assert out.code == 2
    shown = out.stdout + out.stderr
    assert "append" in shown and "replay" in shown and "versions" in shown


def test_help_exits_0(cli: Cli) -> None:
    for args in (["--help"], ["append", "--help"], ["replay", "-h"], ["versions", "--help"]):
        out = cli(*args)
        assert out.code == 0
        assert "Usage" in out.stdout


@pytest.mark.parametrize(
    ("content", "named"),
    [
        ("namespace: [unclosed\n", "not valid YAML"),
        ("nats:\n  sever: x\n", "nats.sever: unknown setting"),
        ("store: cassandra\n", "store: must be one of"),
        ("- a list\n", "must be a mapping"),
    ],
)
def test_config_errors_are_one_line_exit_2(
    cli: Cli, tmp_path: Path, content: str, named: str
) -> None:
    (tmp_path / "bad.yaml").write_text(content)
    out = cli("--config", "bad.yaml", "versions")
    assert out.code == 2
    line = out.error_line()
    assert "bad.yaml" in line or "from file" in line or named.startswith("store")
    assert named in line


def test_missing_config_file_is_an_error(cli: Cli) -> None:
    out = cli("--config", "nowhere.yaml", "versions")
    assert out.code == 2
    assert "nowhere.yaml" in out.error_line()


def test_config_file_in_working_dir_selects_namespace(cli: Cli, tmp_path: Path) -> None:
    (tmp_path / "aether.yaml").write_text("namespace: from-file\n")
    assert cli("append", "a", "X").code == 0
    assert cli("-n", "from-file", "versions", "--json").json() == {"a": 1}
    empty = cli("-n", "default", "versions", "--json")  # no events there: not found
    assert empty.code == 4 and "'default' has no events" in empty.error_line()
    assert "'from-file'" in cli("replay", "nobody").stderr


def test_sqlite_path_from_environment(
    cli: Cli, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("AETHER_SQLITE_PATH", str(tmp_path / "elsewhere" / "e.db"))
    assert cli("append", "a", "X").code == 0
    assert (tmp_path / "elsewhere" / "e.db").is_file()
    assert not (tmp_path / ".aether").exists()


def test_boolean_flags_show_no_metavar(cli: Cli) -> None:
    for args in (["--help"], ["tail", "--help"], ["append", "--help"], ["config", "check", "-h"]):
        res = cli(*args)
        assert res.code == 0, res.stderr
        assert "<bool>" not in res.stdout, (args, res.stdout)
    assert "--json" in cli("--help").stdout


def test_the_cli_adds_hints_the_library_does_not(cli: Cli) -> None:
    import asyncio

    from aether.config import Settings
    from aether.connect import connect
    from aether.errors import ConfigError, NatsUnavailableError
    from tests.servers import free_port

    res = cli("--store", "jetstream", "versions")
    assert res.code == 2
    assert "nats.servers" in res.stderr and "--server" in res.stderr, res.stderr
    url = f"nats://127.0.0.1:{free_port()}"
    res = cli("-s", url, "versions")
    assert res.code == 5 and "`aether server` starts one" in res.stderr, res.stderr
    for overrides, error in (
        ({"store": "jetstream"}, ConfigError),
        ({"nats.servers": url}, NatsUnavailableError),
    ):
        settings = Settings.load(overrides=overrides, env={}, search_default_files=False)
        try:
            asyncio.run(connect(settings))
        except error as e:
            assert "--" not in str(e) and "aether server" not in str(e), str(e)
        else:
            raise AssertionError("connected")
