"""`aether.config.Settings`: precedence, sources, parsing, errors, and config.example.yaml."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml

from aether.config import (
    SECRET_KEYS,
    Settings,
    parse_duration,
    parse_size,
    setting_keys,
)
from aether.errors import ConfigError

EXAMPLE = Path(__file__).resolve().parents[1] / "config.example.yaml"


def load(
    config: Path | None = None, env: dict[str, str] | None = None, **overrides: object
) -> Settings:
    return Settings.load(config, env=env or {}, overrides=overrides, search_default_files=False)


def test_defaults() -> None:
    s = load()
    assert s.namespace == "default" and s.store == "auto" and s.resolved_store == "sqlite"
    assert s.sqlite.path == ".aether/events.db" and s.sqlite.synchronous == "FULL"
    assert s.nats.servers == []
    assert set(s.sources.values()) == {"default"}


def test_precedence_file_then_env_then_overrides(tmp_path: Path) -> None:
    f = tmp_path / "a.yaml"
    f.write_text("namespace: from-file\nsqlite:\n  path: file.db\njetstream:\n  replicas: 3\n")
    s = load(f)
    assert (s.namespace, s.sqlite.path, s.jetstream.replicas) == ("from-file", "file.db", 3)
    assert s.sources["namespace"] == f"file {f}"

    env = {"AETHER_NAMESPACE": "from-env", "AETHER_SQLITE_PATH": "env.db"}
    s = load(f, env)
    assert (s.namespace, s.sqlite.path, s.jetstream.replicas) == ("from-env", "env.db", 3)
    assert s.sources["namespace"] == "env AETHER_NAMESPACE"
    assert s.sources["jetstream.replicas"] == f"file {f}"

    s = load(f, env, namespace="from-flag", **{"sqlite.path": None})
    assert (s.namespace, s.sqlite.path) == ("from-flag", "env.db")  # None = flag not given
    assert s.sources["namespace"] == "flag"
    assert s.sources["store"] == "default"


def test_config_file_from_environment_and_default_files(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    (tmp_path / "x.yaml").write_text("namespace: via-env-var\n")
    assert Settings.load(env={"AETHER_CONFIG": str(tmp_path / "x.yaml")}).namespace == "via-env-var"
    monkeypatch.chdir(tmp_path)
    (tmp_path / "aether.yaml").write_text("namespace: cwd-file\n")
    assert Settings.load(env={}).namespace == "cwd-file"
    assert Settings.load(env={}, search_default_files=False).namespace == "default"


def test_nats_url_alias_and_server_lists() -> None:
    s = load(env={"AETHER_NATS_URL": "nats://h1:4222, h2:4223"})
    assert s.nats.servers == ["nats://h1:4222", "nats://h2:4223"]
    assert s.sources["nats.servers"] == "env AETHER_NATS_URL"
    assert s.resolved_store == "jetstream"
    both = load(env={"AETHER_NATS_SERVERS": "nats://a:1", "AETHER_NATS_URL": "nats://b:2"})
    assert both.nats.servers == ["nats://a:1"]  # the canonical name wins over the alias
    assert load(**{"nats.servers": ["tls://h:4443"]}).nats.servers == ["tls://h:4443"]


@pytest.mark.parametrize(
    ("text", "seconds"),
    [
        ("500ms", 0.5),
        ("5s", 5.0),
        ("10m", 600.0),
        ("24h", 86400.0),
        ("30d", 2592000.0),
        ("2", 2.0),
        (1.5, 1.5),
        (0, 0.0),
    ],
)
def test_durations(text: object, seconds: float) -> None:
    assert parse_duration(text) == seconds


@pytest.mark.parametrize("bad", ["5 parsecs", "-1s", "", True, -3, [1]])
def test_bad_durations(bad: object) -> None:
    with pytest.raises(ConfigError) as info:
        parse_duration(bad, "cluster.lease")
    assert "cluster.lease" in str(info.value)


@pytest.mark.parametrize(
    ("text", "size"),
    [
        ("512", 512),
        ("1KB", 1024),
        ("64MB", 64 * 1024**2),
        ("1GiB", 1024**3),
        ("2T", 2 * 1024**4),
        (-1, -1),
        ("-1", -1),
        (0, 0),
    ],
)
def test_sizes(text: object, size: int) -> None:
    assert parse_size(text) == size


@pytest.mark.parametrize("bad", ["lots", "1.5GB", -2, True, "1PB"])
def test_bad_sizes(bad: object) -> None:
    with pytest.raises(ConfigError) as info:
        parse_size(bad, "jetstream.max_bytes")
    assert "jetstream.max_bytes" in str(info.value)


def test_values_from_env_strings_are_parsed() -> None:
    s = load(
        env={
            "AETHER_JETSTREAM_MAX_AGE": "24h",
            "AETHER_JETSTREAM_MAX_BYTES": "1GiB",
            "AETHER_CLUSTER_SHARD_COUNT": "128",
            "AETHER_SQLITE_SYNCHRONOUS": "normal",
            "AETHER_MAX_EVENT_BYTES": "64KB",
        }
    )
    assert s.jetstream.max_age == 86400.0 and s.jetstream.max_bytes == 1024**3
    assert s.cluster.shard_count == 128 and s.sqlite.synchronous == "NORMAL"
    assert s.max_event_bytes == 65536


def test_unknown_key_in_file_is_named(tmp_path: Path) -> None:
    f = tmp_path / "typo.yaml"
    f.write_text("nats:\n  sever: nats://x\n")
    with pytest.raises(ConfigError) as info:
        load(f)
    assert "nats.sever" in str(info.value) and "unknown setting" in str(info.value)
    assert str(f) in str(info.value)
    with pytest.raises(ConfigError, match="namespac: unknown setting"):
        load(namespac="x")


@pytest.mark.parametrize(
    ("content", "rule"),
    [
        ("namespace: [unclosed\n", "not valid YAML"),
        ("just a string\n", "must be a mapping"),
        ("- 1\n- 2\n", "must be a mapping"),
    ],
)
def test_non_yaml_or_non_mapping_file_is_named(tmp_path: Path, content: str, rule: str) -> None:
    f = tmp_path / "bad.yaml"
    f.write_text(content)
    with pytest.raises(ConfigError) as info:
        load(f)
    assert str(f) in str(info.value) and rule in str(info.value)


def test_unreadable_files_are_named(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match=r"missing\.yaml"):
        load(tmp_path / "missing.yaml")
    binary = tmp_path / "bin.yaml"
    binary.write_bytes(b"\xff\xfe\x00garbage")
    with pytest.raises(ConfigError, match=r"bin\.yaml"):
        load(binary)


@pytest.mark.parametrize(
    ("key", "value", "named"),
    [
        ("namespace", "a.b", "namespace"),
        ("store", "mongo", "store"),
        ("jetstream.replicas", "7", "jetstream.replicas"),
        ("cluster.shard_count", "many", "cluster.shard_count"),
        ("nats.servers", "http://x", "nats.servers"),
        ("sqlite.synchronous", "sometimes", "sqlite.synchronous"),
    ],
)
def test_bad_values_name_key_and_source(key: str, value: str, named: str) -> None:
    var = "AETHER_" + key.replace(".", "_").upper()
    with pytest.raises(ConfigError) as info:
        load(env={var: value})
    assert named in str(info.value) and var in str(info.value)


def test_display_masks_secrets() -> None:
    s = load(
        **{
            "nats.password": "hunter2",
            "nats.token": "s3cr3t-token",
            "nats.servers": ["nats://alice:pw123@h:4222"],
            "nats.user": "alice",
        }
    )
    shown = s.display()
    assert set(shown) == set(setting_keys())
    assert shown["nats.password"] == shown["nats.token"] == "******"
    assert shown["nats.user"] == "alice"
    text = repr(shown)
    for secret in ("hunter2", "s3cr3t-token", "pw123"):
        assert secret not in text
    assert all(key in setting_keys() for key in SECRET_KEYS)
    assert load().display()["nats.password"] is None


def test_config_example_documents_every_key_with_its_default() -> None:
    """config.example.yaml cannot rot: every key present, loadable, equal to the defaults."""
    doc = yaml.safe_load(EXAMPLE.read_text(encoding="utf-8"))
    flat = set()
    for key, value in doc.items():
        if isinstance(value, dict):
            flat.update(f"{key}.{name}" for name in value)
        else:
            flat.add(key)
    assert flat == set(setting_keys())
    s = Settings.load(EXAMPLE, env={}, search_default_files=False)
    assert set(s.sources.values()) == {f"file {EXAMPLE}"}
    assert s == load()
    lines = EXAMPLE.read_text(encoding="utf-8").splitlines()
    for key in setting_keys():  # each key sits in a group of keys under a comment
        name = key.rsplit(".", 1)[-1]
        index = next(i for i, line in enumerate(lines) if line.strip().startswith(f"{name}:"))
        above = index - 1
        while lines[above].strip() and not lines[above].strip().startswith("#"):
            above -= 1  # another key of the same group
        assert lines[above].strip().startswith("#"), f"{key} has no comment"


@pytest.mark.parametrize(
    ("key", "value", "allowed"),
    [
        ("max_event_bytes", -1, "from 256 bytes to 64MiB"),
        ("jetstream.max_age", 1e400, "from 0s to 36500d"),
        ("jetstream.max_bytes", 2**70, "-1 (unlimited) or a size from 1 byte to 1EiB"),
        ("jetstream.publish_timeout", 0, "from 10ms to 10m"),
        ("nats.connect_timeout", "5000d", "from 10ms to 1m"),
        ("nats.reconnect_attempts", 2**40, "from -1 to 1000000"),
        ("jetstream.max_in_flight", 1.0, "from 1 to 65536"),
    ],
)
def test_numeric_settings_name_key_and_range(key: str, value: object, allowed: str) -> None:
    with pytest.raises(ConfigError) as e:
        Settings.load(overrides={key: value}, env={}, search_default_files=False)
    assert str(e.value).startswith(f"{key}: ") and allowed in str(e.value), str(e.value)


def test_yaml_aliases_and_huge_files_are_refused(tmp_path: Path) -> None:
    conf = tmp_path / "a.yaml"
    conf.write_text("x: &x nats://127.0.0.1:4222\nnats:\n  servers: [*x]\n")
    with pytest.raises(ConfigError, match="aliases are not allowed"):
        Settings.load(conf, env={})
    conf.write_text("namespace: a\n" + "# padding\n" * 200_000)
    with pytest.raises(ConfigError, match="larger than"):
        Settings.load(conf, env={})
    with pytest.raises(ConfigError, match="larger than"):
        Settings.load("/dev/zero", env={})
    with pytest.raises(ConfigError, match="is a directory"):
        Settings.load(tmp_path, env={})


def test_inbox_prefix_is_the_namespaces_own_by_default() -> None:
    s = Settings.load(overrides={"namespace": "orders"}, env={}, search_default_files=False)
    assert s.nats.inbox_prefix is None and s.inbox_prefix == "_INBOX_aether.orders"
    s = Settings.load(
        overrides={"namespace": "orders", "nats.inbox_prefix": "_I_orders"},
        env={},
        search_default_files=False,
    )
    assert s.inbox_prefix == "_I_orders"


@pytest.mark.parametrize(
    ("overrides", "tls"),
    [
        ({"nats.servers": "nats://h:1"}, False),
        ({"nats.servers": "tls://h:1"}, True),
        ({"nats.servers": "wss://h:1"}, True),
        ({"nats.servers": "nats://h:1", "nats.tls_required": "true"}, True),
        ({"nats.servers": "nats://h:1", "nats.tls_ca_file": "ca.pem"}, True),
        ({"nats.servers": "nats://h:1", "nats.tls_cert_file": "c.pem"}, True),
    ],
)
def test_wants_tls(overrides: dict[str, object], tls: bool) -> None:
    s = Settings.load(overrides=overrides, env={}, search_default_files=False)
    assert s.nats.wants_tls is tls
