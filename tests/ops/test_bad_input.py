"""Bad-input sweep: every command with hostile input.

Each case asserts a non-zero exit, exactly one ``error:`` line on stderr, no traceback,
and that the store holds exactly what it held before. In-process (CliRunner) where
that is enough, subprocesses where process behaviour matters (binary argv, a server that
dies mid-command).
"""

from __future__ import annotations

import asyncio
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import nats
import nats.js.errors
import orjson
import pytest

from aether.config import Settings
from aether.store import open_store
from tests.ops.conftest import AETHER_MAIN, Cli, Outcome, ServerFactory
from tests.servers import NatsServer, free_port

State = list[tuple[str, int, str, str, bytes]]
BENCH_BANNER = "bench: running "


def store_state(*global_args: str) -> State:
    """Every stored event (actor, version, id, type, data) of the store the args select."""
    overrides: dict[str, object] = {}
    args = list(global_args)
    while args:
        flag = args.pop(0)
        if flag in ("-s", "--server"):
            overrides["nats.servers"] = args.pop(0)
        elif flag in ("-n", "--namespace"):
            overrides["namespace"] = args.pop(0)

    async def dump() -> State:
        store = await open_store(Settings.load(overrides=overrides, env={}))
        try:
            return [
                (e.actor_id, e.version, e.id, e.event_type, orjson.dumps(e.data))
                async for e in store.read_all()
            ]
        finally:
            await store.close()

    return asyncio.run(dump())


def rejected(outcome: Outcome, before: State, *global_args: str, code: int | None = None) -> str:
    """Assert a clean refusal that changed nothing; return the error line."""
    assert outcome.code != 0, (outcome.stdout, outcome.stderr)
    if code is not None:
        assert outcome.code == code, (outcome.code, outcome.stderr)
    if outcome.stderr.startswith(BENCH_BANNER):  # `aether bench` announces itself first
        outcome = Outcome(outcome.code, outcome.stdout, outcome.stderr.split("\n", 1)[1])
    line = outcome.error_line()
    assert store_state(*global_args) == before
    return line


@pytest.fixture
def seeded(cli: Cli) -> State:
    """The SQLite store of the working directory with two events in it."""
    assert cli("append", "order-1", "OrderPlaced", "--data", '{"total": 99.99}').code == 0
    assert cli("append", "order-1", "OrderShipped", "--data", '{"carrier": "F"}').code == 0
    return store_state()


INVALID_ACTOR_IDS = [
    "",
    "\n",
    "a\nb",
    "a\rb",
    "a\r\nb",
    "\x00",
    "nul\x00byte",
    "\x1b[31mred",
    "del\x7f",
    "line\u2028sep",
    "\x85",
    "x" * 1025,
    "é" * 513,  # 1026 bytes of UTF-8
    "x" * 1_000_000,  # a 1 MB argument
    "lone\udcffsurrogate",  # what undecodable argv bytes become
]


@pytest.mark.parametrize("actor", INVALID_ACTOR_IDS, ids=lambda a: repr(a[:12]))
def test_invalid_actor_ids_are_refused_by_every_command(
    cli: Cli, seeded: State, actor: str
) -> None:
    for args in (
        ("append", actor, "X", "--data", "{}", "--expect-version", "0"),
        ("replay", actor, "--state", "--json"),
        ("versions", "order-1", actor),
        ("tail", "--actor", actor, "--count", "1"),
    ):
        line = rejected(cli(*args), seeded)
        assert "actor" in line.lower() or "ACTOR" in line, (args[0], line)


WEIRD_VALID_IDS = [
    ".",
    "*",
    ">",
    " ",
    "a b",
    " lead",
    "$SYS",
    "$JS.API.>",
    "a.b.*.>",
    "ü",
    "日本語",
    "🚀",
    "user@example.com",
    "=x",
    "-",
    "a" * 1024,
]


def test_ids_with_dots_wildcards_spaces_dollar_and_unicode_are_distinct_actors(cli: Cli) -> None:
    for actor in WEIRD_VALID_IDS:
        out = cli("append", actor, "Seen", "--data", orjson.dumps({"id": actor}).decode())
        assert out.code == 0, (actor, out.stderr)
    versions = cli("--json", "versions").json()
    assert versions == {actor: 1 for actor in WEIRD_VALID_IDS}
    for actor in WEIRD_VALID_IDS:
        replay = cli("--json", "replay", actor)
        assert replay.code == 0, replay.stderr
        (event,) = [orjson.loads(line) for line in replay.stdout.splitlines()]
        assert event["actor_id"] == actor and event["data"] == {"id": actor}


INVALID_EVENT_TYPES = [
    "",
    " ",
    "a b",
    "a\tb",
    "a\nb",
    "*",
    ">",
    "a.*",
    "x" * 257,
    "\x00",
    "t" * 1_000_000,
]


@pytest.mark.parametrize("event_type", INVALID_EVENT_TYPES, ids=lambda t: repr(t[:12]))
def test_invalid_event_types(cli: Cli, seeded: State, event_type: str) -> None:
    line = rejected(cli("append", "order-1", event_type, "--data", "{}"), seeded, code=2)
    assert "event_type" in line
    line = rejected(cli("tail", "--type", event_type, "--count", "1"), seeded)
    assert "--type" in line


INVALID_NAMESPACES = ["", "bad.ns", ">", "a b\n", "ü", "x" * 65]


@pytest.mark.parametrize("namespace", INVALID_NAMESPACES, ids=repr)
def test_invalid_namespaces(cli: Cli, namespace: str) -> None:
    for args in (
        ("-n", namespace, "append", "a", "X", "--data", "{}"),
        ("-n", namespace, "replay", "order-1"),
        ("-n", namespace, "versions"),
        ("-n", namespace, "tail", "--count", "1"),
        ("tail", namespace, "--count", "1"),
        ("-n", namespace, "cluster", "status"),
        ("-n", namespace, "node", "run"),
        ("-n", namespace, "bench", "append", "--events", "10"),
        ("-n", namespace, "config", "show"),
        ("config", "permissions", namespace),
    ):
        line = rejected(cli(*args), [], code=2)
        assert "namespace" in line.lower(), (args, line)


@pytest.mark.parametrize(
    "args",
    [
        ("append", "order-1", "X", "--expect-version", "-1"),
        ("append", "order-1", "X", "--expect-version", "x"),
        ("append", "order-1", "X", "--expect-version", str(2**64)),
        ("append", "order-1", "X", "--expect-version", "99999999999999999999999999999"),
        ("append", "order-1", "X", "--expect-version", "0"),  # a conflict: exit 3
        ("append", "order-1", "X", "--expect-version", "1"),
        ("append", "order-1", "X", "--expect-version", "5"),
        ("replay", "order-1", "--from", "-1"),
        ("replay", "order-1", "--from", str(2**64)),
        ("replay", "order-1", "--to", "99999999999999999999999999999"),
        ("replay", "order-1", "--from", "3", "--to", "2"),
        ("replay", "order-1", "--from", "3"),  # nothing there: not found
        ("replay", "order-1", "--from", "1.5"),
        ("tail", "--from-position", "-1"),
        ("tail", "--from-position", "0"),
        ("tail", "--count", "-3"),
        ("tail", "--since", "yesterday-ish"),
        ("bench", "append", "--events", "-5"),
        ("bench", "append", "--events", str(2**70)),
        ("bench", "append", "--payload", "-1"),
        ("bench", "append", "--concurrency", "0"),
        ("bench", "nosuch"),
    ],
    ids=lambda a: " ".join(a)[:60],
)
def test_negative_huge_and_conflicting_versions(
    cli: Cli, seeded: State, args: tuple[str, ...]
) -> None:
    rejected(cli(*args), seeded)


@pytest.mark.parametrize(
    "data",
    [
        "",
        " ",
        "not json",
        "{",
        '{"a": 1',
        "[1, 2]",
        '"a string"',
        "null",
        "42",
        '{"x": NaN}',
        '{"x": Infinity}',
        '{"x": -Infinity}',
        '{"x": 1e999}',
        '{"x": "\\ud800"}',
        '{"a": 1}{"b": 2}',
        "{'single': 'quotes'}",
        '{"a": 1,}',
        "[" * 100_000 + "]" * 100_000,
        '{"a": ' * 5000 + "1" + "}" * 5000,
        '{"big": "' + "x" * 1_100_000 + '"}',  # over the 1 MiB event limit
        "\x00\x01\x02",
        "@/nonexistent/file.json",
        "@",
    ],
    ids=lambda d: repr(d[:16]),
)
def test_malformed_data(cli: Cli, seeded: State, data: str) -> None:
    line = rejected(cli("append", "order-1", "X", "--data", data), seeded)
    assert "data" in line or "event" in line, line


def test_malformed_metadata_and_binary_data_files(cli: Cli, seeded: State, tmp_path: Path) -> None:
    for meta in ('{"a": 1}', '{"a": null}', "[]", "x", '{"a": {"b": "c"}}'):
        rejected(cli("append", "order-1", "X", "--metadata", meta), seeded)
    binary = tmp_path / "binary.json"
    binary.write_bytes(bytes(range(256)) * 10)
    rejected(cli("append", "order-1", "X", "--data", f"@{binary}"), seeded)
    latin1 = tmp_path / "latin1.json"
    latin1.write_bytes('{"name": "Müller"}'.encode("latin-1"))
    rejected(cli("append", "order-1", "X", "--data", f"@{latin1}"), seeded)
    rejected(cli("append", "order-1", "X", "--data", f"@{tmp_path}"), seeded)  # a directory


def _jsonl(path: Path, n: int, bad_line: int | None, bad: str = "{not json") -> None:
    with path.open("w") as f:
        for i in range(1, n + 1):
            if i == bad_line:
                f.write(bad + "\n")
            else:
                event = {"actor_id": f"bulk-{i % 10}", "event_type": "Bulk", "data": {"i": i}}
                f.write(orjson.dumps(event).decode() + "\n")


@pytest.mark.parametrize(
    "bad",
    [
        "{not json",
        "[1, 2, 3]",
        '{"actor_id": "a\\nb", "event_type": "Bulk", "data": {}}',
        '{"actor_id": "bulk-1", "event_type": "a b", "data": {}}',
        '{"actor_id": "bulk-1", "event_type": "Bulk", "data": {"x": NaN}}',
        '{"actor_id": "bulk-1", "event_type": "Bulk", "data": [1]}',
        '{"actor_id": "bulk-1", "event_type": "Bulk", "data": {}, "version": -1}',
        '{"actor_id": "bulk-1", "event_type": "Bulk", "data": {}, "version": 1' + "0" * 30 + "}",
        '{"event_type": "Bulk", "data": {}}',
        "\x00\x01binary",
    ],
    ids=lambda b: repr(b[:20]),
)
def test_a_bad_line_names_the_line_and_writes_nothing(
    cli: Cli, seeded: State, tmp_path: Path, bad: str
) -> None:
    path = tmp_path / "events.jsonl"
    _jsonl(path, 1000, 500, bad)
    line = rejected(cli("append", "--file", str(path)), seeded)
    assert "line 500" in line, line


def test_bad_line_5000_of_10000_from_a_file_and_stdin(
    cli: Cli, seeded: State, tmp_path: Path
) -> None:
    path = tmp_path / "events.jsonl"
    _jsonl(path, 10_000, 5000, "{not json")
    line = rejected(cli("append", "--file", str(path)), seeded)
    assert "line 5000" in line, line
    _jsonl(path, 10_000, 5000, '{"actor_id": "bulk-1", "event_type": "Bulk", "data": {"x": NaN}}')
    stdin = cli("append", "--file", "-", input=path.read_bytes())
    assert "line 5000" in rejected(stdin, seeded)


def test_bulk_files_that_are_not_json_lines(cli: Cli, seeded: State, tmp_path: Path) -> None:
    garbage = tmp_path / "garbage.jsonl"
    garbage.write_bytes(os.urandom(4096).replace(b"\n", b"\x00"))
    rejected(cli("append", "--file", str(garbage)), seeded)
    array = tmp_path / "array.jsonl"
    array.write_text('[{"actor_id": "a", "event_type": "X", "data": {}}]\n')
    rejected(cli("append", "--file", str(array)), seeded)
    rejected(cli("append", "--file", str(tmp_path / "missing.jsonl")), seeded)
    rejected(cli("append", "--file", str(tmp_path)), seeded)


@pytest.mark.parametrize(
    ("content", "fragment"),
    [
        (b"nats: [unclosed\n", "YAML"),
        (b"\tnamespace: a\n:\n", "YAML"),
        (b"namespace: a\ncolour: blue\n", "colour: unknown setting"),
        (b"nats:\n  servers: [nats://127.0.0.1:4222]\n  retries: 3\n", "nats.retries: unknown"),
        (b"jetstream:\n  replicas: many\n", "jetstream.replicas"),
        (b"nats:\n  connect_timeout: forever\n", "nats.connect_timeout"),
        (b"- just\n- a list\n", "mapping"),
        (b"\xff\xfe\x00binary", "UTF-8"),
        (b"namespace: 'bad.ns'\n", "namespace"),
    ],
    ids=lambda c: repr(c)[:24],
)
def test_bad_config_files(
    cli: Cli, seeded: State, tmp_path: Path, content: bytes, fragment: str
) -> None:
    conf = tmp_path / "bad.yaml"
    conf.write_bytes(content)
    commands = ALL_COMMANDS if b"colour" in content else ALL_COMMANDS[::3]
    for args in commands:
        line = rejected(cli("--config", str(conf), *args), seeded, code=2)
        assert fragment in line, (args, line)


ALL_COMMANDS: list[tuple[str, ...]] = [
    ("append", "order-1", "X", "--data", "{}"),
    ("replay", "order-1"),
    ("versions",),
    ("tail", "--count", "1"),
    ("cluster", "status"),
    ("node", "run"),
    ("bench", "append", "--events", "10"),
    ("config", "show"),
    ("config", "check"),
]


def test_unreachable_server(cli: Cli, seeded: State) -> None:
    url = f"nats://127.0.0.1:{free_port()}"
    for args in (
        ("append", "order-1", "X", "--data", "{}"),
        ("replay", "order-1"),
        ("versions",),
        ("tail", "--count", "1"),
        ("tail", "--bus", "--count", "1"),
        ("cluster", "status"),
        ("node", "run"),
        ("bench", "append", "--events", "10"),
        ("config", "check"),
    ):
        line = rejected(cli("-s", url, *args), seeded, code=5)
        assert url in line, (args, line)


def test_data_over_the_servers_max_payload(cli: Cli, make_server: ServerFactory) -> None:
    server = make_server("max_payload: 4096")
    g = ("-s", server.url)
    assert cli(*g, "append", "a", "X", "--data", '{"small": 1}').code == 0
    before = store_state(*g)
    big = orjson.dumps({"x": "y" * 8000}).decode()
    line = rejected(cli(*g, "append", "a", "X", "--data", big), before, *g)
    assert "exceeds" in line
    rejected(cli(*g, "append", "b", "X", "--data", big, "--expect-version", "0"), before, *g)
    # a --file line under max_event_bytes but over the server's max_payload: by line number
    lines = Path("e.jsonl")
    small = orjson.dumps({"actor_id": "b", "event_type": "X", "data": {}})
    lines.write_bytes(small.replace(b"{}", big.encode()) + b"\n" + small + b"\n")
    line = rejected(cli(*g, "append", "--file", str(lines)), before, *g, code=2)
    assert "line 1" in line and "exceeds" in line and "0 earlier events" in line, line


def test_binary_arguments_in_a_real_process(tmp_path: Path) -> None:
    env = {k: v for k, v in os.environ.items() if not k.startswith("AETHER_")}
    argv: list[str | bytes] = [sys.executable, "-c", AETHER_MAIN]
    for args in (
        [b"append", b"\xff\xfe\xfd", b"X", b"--data", b"{}"],
        [b"append", b"a", b"X", b"--data", b'{"a": "\xff"}'],
        [b"-n", b"\xc3\x28", b"versions"],
    ):
        res = subprocess.run([*argv, *args], cwd=tmp_path, env=env, capture_output=True, timeout=60)
        assert res.returncode == 2, (args, res.stderr)
        assert res.stderr.count(b"\n") == 1 and res.stderr.startswith(b"error: "), res.stderr
        assert b"Traceback" not in res.stderr
    assert not (tmp_path / ".aether" / "events.db").exists() or store_state() == []


def _wait_for_messages(url: str, stream: str, at_least: int, timeout: float = 60) -> None:
    async def poll() -> None:
        nc = await nats.connect(url)
        try:
            deadline = time.monotonic() + timeout
            while time.monotonic() < deadline:
                try:
                    info = await nc.jetstream().stream_info(stream)
                    if info.state.messages >= at_least:
                        assert info.state.messages < 30_000, "the append finished too soon"
                        return
                except nats.js.errors.NotFoundError:
                    pass
                await asyncio.sleep(0.02)
            raise AssertionError(f"{stream} did not reach {at_least} messages")
        finally:
            await nc.close()

    asyncio.run(poll())


def test_a_server_that_dies_mid_command(nats_server: NatsServer, tmp_path: Path) -> None:
    path = tmp_path / "many.jsonl"
    _jsonl(path, 30_000, None)
    env = {k: v for k, v in os.environ.items() if not k.startswith("AETHER_")}
    env |= {
        "AETHER_NATS_URL": nats_server.url,
        "AETHER_NATS_RECONNECT_ATTEMPTS": "3",
        "AETHER_NATS_RECONNECT_WAIT": "200ms",
        "AETHER_JETSTREAM_PUBLISH_TIMEOUT": "2s",
    }
    cmds = {
        "append": ["append", "--file", str(path)],
        "tail": ["tail", "--from-start"],
    }
    procs = {
        name: subprocess.Popen(
            [sys.executable, "-c", AETHER_MAIN, *args],
            cwd=tmp_path,
            env=env,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.PIPE,
        )
        for name, args in cmds.items()
    }
    try:
        _wait_for_messages(nats_server.url, "AETHER_default", at_least=200)
        nats_server.stop(kill=True)  # the append is under way, tail is following
        for name, proc in procs.items():
            _, err = proc.communicate(timeout=60)
            assert proc.returncode != 0, (name, err)
            assert proc.returncode != -signal.SIGKILL
            text = err.decode()
            assert "Traceback" not in text, (name, text)
            errors = [line for line in text.splitlines() if line.startswith("error: ")]
            assert len(errors) == 1, (name, text)
    finally:
        for proc in procs.values():
            if proc.poll() is None:
                proc.kill()
                proc.wait()


# --- bounded, validated input (issue 11) ----------------------------------------------------

OUT_OF_RANGE_SINCE = [
    "1000000d",
    "99999999999d",
    "1" + "0" * 400 + "s",
    "0001-01-01T00:00:00+01:00",
    "9999-12-31T23:59:59-01:00",
    "2026-13-01T00:00:00Z",
]


@pytest.mark.parametrize("since", OUT_OF_RANGE_SINCE)
def test_since_out_of_range(cli: Cli, seeded: State, since: str) -> None:
    line = rejected(cli("tail", "--since", since, "--count", "1"), seeded, code=2)
    assert "--since" in line, line


@pytest.mark.parametrize(
    ("field", "value"),
    [
        ("timestamp", "0001-01-01T00:00:00+01:00"),
        ("timestamp", "9999-12-31T23:59:59-01:00"),
        ("timestamp", "2026-01-01T00:00:00"),  # no timezone
        ("timestamp", 12),
        ("id", 0),
        ("id", ""),
        ("id", False),
        ("id", None),
        ("id", "x" * 257),
        ("id", "a\nb"),
        ("id", ["list"]),
    ],
    ids=lambda v: repr(v)[:20],
)
def test_bad_timestamps_and_explicit_ids_in_a_file(
    cli: Cli, seeded: State, tmp_path: Path, field: str, value: object
) -> None:
    path = tmp_path / "events.jsonl"
    good = {"actor_id": "bulk-1", "event_type": "Bulk", "data": {}}
    path.write_bytes(orjson.dumps(good) + b"\n" + orjson.dumps({**good, field: value}) + b"\n")
    line = rejected(cli("append", "--file", str(path)), seeded, code=2)
    assert "line 2" in line and field in line, line


@pytest.mark.parametrize(
    "args",
    [
        ("tail", "--actor", ""),
        ("tail", "--actor", "a\nb"),
        ("tail", "--type", "a b"),
        ("tail", "--type", "*"),
        ("tail", "--slices", "1024"),
        ("tail", "--slices", "5-2"),
        ("tail", "--slices", ""),
        ("tail", "--bus", "--slices", "0-1"),
    ],
    ids=lambda a: " ".join(a)[:40],
)
def test_tail_filters_are_usage_errors(cli: Cli, seeded: State, args: tuple[str, ...]) -> None:
    rejected(cli(*args, "--count", "1"), seeded, code=2)


@pytest.mark.parametrize(
    "args",
    [
        ("append", "order-1", "X", "-e", "1.0"),
        ("append", "order-1", "X", "-e", "2e0"),
        ("append", "order-1", "X", "-e", "0x2"),
        ("append", "order-1", "X", "-e", str(2**63)),
        ("tail", "--count", "1.0"),
        ("tail", "--from-position", "1.5"),
        ("tail", "--from-position", "18446744073709551616"),
        ("replay", "order-1", "--from", "1.0"),
        ("replay", "order-1", "--to", "2e0"),
        ("bench", "append", "--events", "1e3"),
        ("bench", "append", "--concurrency", "4.0"),
    ],
    ids=lambda a: " ".join(a)[:40],
)
def test_integer_options_refuse_floats_and_overflow(
    cli: Cli, seeded: State, args: tuple[str, ...]
) -> None:
    out = cli(*args)
    line = rejected(out, seeded, code=2)
    assert args[-2] in line, line
    assert out.stdout == ""  # nothing printed before the refusal ("following ...")


def test_debug_adds_a_traceback_and_keeps_the_exit_code(cli: Cli, seeded: State) -> None:
    conflict = cli("--debug", "append", "order-1", "X", "--expect-version", "0")
    assert conflict.code == 3, conflict.stderr
    assert "Traceback" in conflict.stderr and "VersionConflictError" in conflict.stderr
    assert conflict.stderr.rstrip().splitlines()[-1].startswith("error: version conflict")
    bad = cli("--debug", "append", "order-1", "X", "--data", "[1]")
    assert bad.code == 2, bad.stderr
    assert bad.stderr.rstrip().splitlines()[-1].startswith("error: ")
    missing = cli("--debug", "replay", "nobody")
    assert missing.code == 4, missing.stderr
    assert store_state() == seeded


@pytest.mark.parametrize(
    ("content", "key"),
    [
        ("max_event_bytes: -1\n", "max_event_bytes"),
        ("max_event_bytes: 0\n", "max_event_bytes"),
        ("max_event_bytes: 1TB\n", "max_event_bytes"),
        ("jetstream:\n  max_age: 1.0e+400\n", "jetstream.max_age"),
        ("jetstream:\n  max_age: -5\n", "jetstream.max_age"),
        ("jetstream:\n  duplicate_window: 1.0e+400\n", "jetstream.duplicate_window"),
        (f"jetstream:\n  max_bytes: {2**70}\n", "jetstream.max_bytes"),
        ("jetstream:\n  max_bytes: 0\n", "jetstream.max_bytes"),
        ("jetstream:\n  publish_timeout: 0\n", "jetstream.publish_timeout"),
        ("jetstream:\n  max_in_flight: 1.0\n", "jetstream.max_in_flight"),
        ("nats:\n  connect_timeout: 99999999\n", "nats.connect_timeout"),
        ("nats:\n  connect_timeout: .nan\n", "nats.connect_timeout"),
        ("nats:\n  reconnect_attempts: 1.5\n", "nats.reconnect_attempts"),
        ("nats:\n  reconnect_wait: 1000d\n", "nats.reconnect_wait"),
    ],
    ids=lambda c: c.strip().replace("\n", " ")[:40],
)
def test_numeric_settings_are_range_checked_at_load(
    cli: Cli, seeded: State, tmp_path: Path, content: str, key: str
) -> None:
    conf = tmp_path / "bad.yaml"
    conf.write_text(content)
    for args in ALL_COMMANDS[::2]:
        line = rejected(cli("--config", str(conf), *args), seeded, code=2)
        assert key in line and ("from" in line or "like" in line), (args, line)


BILLION_LAUGHS = b"""a: &a ["lol","lol","lol","lol","lol","lol","lol","lol","lol"]
b: &b [*a,*a,*a,*a,*a,*a,*a,*a,*a]
c: &c [*b,*b,*b,*b,*b,*b,*b,*b,*b]
d: &d [*c,*c,*c,*c,*c,*c,*c,*c,*c]
e: &e [*d,*d,*d,*d,*d,*d,*d,*d,*d]
f: &f [*e,*e,*e,*e,*e,*e,*e,*e,*e]
nats:
  servers: [*f,*f,*f,*f,*f,*f,*f,*f,*f]
"""


def test_yaml_aliases_are_refused(cli: Cli, seeded: State, tmp_path: Path) -> None:
    conf = tmp_path / "laughs.yaml"
    conf.write_bytes(BILLION_LAUGHS)
    out = cli("--config", str(conf), "versions")
    line = rejected(out, seeded, code=2)
    assert "aliases" in line and len(line) < 300, line


def test_unbounded_inputs_end_at_once(cli: Cli, seeded: State) -> None:
    line = rejected(cli("versions", env={"AETHER_CONFIG": "/dev/zero"}), seeded, code=2)
    assert "larger than" in line, line
    line = rejected(cli("append", "order-1", "X", "--data", "@/dev/zero"), seeded, code=2)
    assert "--data" in line and "larger than" in line, line
    line = rejected(cli("append", "order-1", "X", "--metadata", "@/dev/zero"), seeded, code=2)
    assert "--metadata" in line, line
    line = rejected(cli("append", "--file", "/dev/zero"), seeded, code=2)
    assert "line 1" in line and "max_event_bytes" in line, line


def test_a_line_longer_than_max_event_bytes(cli: Cli, seeded: State, tmp_path: Path) -> None:
    path = tmp_path / "events.jsonl"
    small = orjson.dumps({"actor_id": "bulk-1", "event_type": "Bulk", "data": {}})
    big = orjson.dumps({"actor_id": "bulk-1", "event_type": "Bulk", "data": {"x": "y" * 3000}})
    path.write_bytes(small + b"\n" + small.replace(b"{}", b'{"n": 2}') + b"\n" + big + b"\n")
    env = {"AETHER_MAX_EVENT_BYTES": "2048"}
    line = rejected(cli("append", "--file", str(path), env=env), seeded, code=2)
    assert "line 3" in line and "max_event_bytes" in line, line
    # from stdin too
    out = cli("append", "--file", "-", input=path.read_bytes(), env=env)
    assert "line 3" in rejected(out, seeded, code=2)


@pytest.mark.parametrize("cut", [0.3, 0.6, 0.9])
def test_truncated_creds_file(
    cli: Cli, seeded: State, tmp_path: Path, make_server: ServerFactory, cut: float
) -> None:
    from tests.ops.auth_setup import operator_setup

    setup = operator_setup(tmp_path)
    creds = tmp_path / "app.creds"
    creds.write_text(setup.creds[: int(len(setup.creds) * cut)])
    line = rejected(
        cli("-s", "nats://127.0.0.1:1", "--creds", str(creds), "versions"), seeded, code=2
    )
    assert "nats.creds_file" in line and "TypeError" not in line, line


def test_bad_nkey_seed_file(cli: Cli, seeded: State, tmp_path: Path) -> None:
    seed = tmp_path / "user.nk"
    seed.write_text("SUAM-not-a-seed\n")
    line = rejected(
        cli("-s", "nats://127.0.0.1:1", "--nkey", str(seed), "versions"), seeded, code=2
    )
    assert "nats.nkey_seed_file" in line, line


def test_a_listener_that_never_speaks_nats(cli: Cli, seeded: State) -> None:
    import socket

    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as silent:
        silent.bind(("127.0.0.1", 0))
        silent.listen(8)
        url = f"nats://127.0.0.1:{silent.getsockname()[1]}"
        env = {"AETHER_NATS_CONNECT_TIMEOUT": "300ms"}
        line = rejected(cli("-s", url, "versions", env=env), seeded, code=5)
        assert url in line, line
        huge = {"AETHER_NATS_CONNECT_TIMEOUT": "100000d"}
        line = rejected(cli("-s", url, "versions", env=huge), seeded, code=2)
        assert "nats.connect_timeout" in line and "1m" in line, line
