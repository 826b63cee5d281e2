"""`Settings`: defaults < YAML file < environment (``AETHER_*``) < explicit arguments.

Every key has a dotted name (``nats.servers``) used in the YAML file (as nested
mappings), in the environment (``AETHER_NATS_SERVERS``; ``AETHER_NATS_URL`` is an alias)
and in `Settings.load(overrides={...})`. `Settings.sources` says where each value came
from, for ``aether config show``.
"""

from __future__ import annotations

import dataclasses
import math
import os
import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import yaml

from aether.errors import ConfigError
from aether.subjects import inbox_prefix as namespace_inbox_prefix
from aether.subjects import validate_namespace

DEFAULT_CONFIG_FILES = ("aether.yaml", ".aether/config.yaml")
"""Looked up in the working directory when no file is named (first found wins)."""

_DURATION_RE = re.compile(r"^\s*(\d{1,15}(?:\.\d{1,9})?)\s*(ms|s|m|h|d)?\s*$")
_DURATION_UNITS = {"ms": 0.001, "s": 1.0, "m": 60.0, "h": 3600.0, "d": 86400.0, None: 1.0}
_SIZE_RE = re.compile(r"^\s*(\d{1,20})\s*([KMGT]i?B?|B)?\s*$", re.IGNORECASE)

MAX_DURATION = 100 * 365 * 86400.0
"""The longest duration any setting or option accepts (100 years)."""

MAX_SIZE = 2**60
"""The largest size any setting accepts (1 EiB)."""

MAX_CONFIG_FILE_BYTES = 1024 * 1024
"""Config files larger than this are refused (1 MiB)."""


def _fmt_duration(seconds: float) -> str:
    for unit, mult in (("d", 86400.0), ("h", 3600.0), ("m", 60.0), ("s", 1.0)):
        if seconds >= mult and (seconds / mult).is_integer():
            return f"{int(seconds / mult)}{unit}"
    if seconds and seconds < 1:
        return f"{seconds * 1000:g}ms"
    return f"{seconds:g}s"


def _fmt_size(n: int) -> str:
    for unit, mult in (("EiB", 2**60), ("TiB", 2**40), ("GiB", 2**30), ("MiB", 2**20)):
        if n >= mult and n % mult == 0:
            return f"{n // mult}{unit}"
    return f"{n} byte" if n == 1 else f"{n} bytes"


def parse_duration(
    value: object,
    field: str = "duration",
    *,
    minimum: float = 0.0,
    maximum: float = MAX_DURATION,
) -> float:
    """Seconds from a number or a string like ``500ms``, ``5s``, ``10m``, ``24h``, ``30d``.

    Raises `ConfigError` naming `field` and the allowed range unless the value is a finite
    duration from `minimum` to `maximum` seconds (default: 0 to 100 years).
    """
    rng = f"from {_fmt_duration(minimum)} to {_fmt_duration(maximum)}"
    seconds: float | None = None
    if isinstance(value, bool):
        seconds = None
    elif isinstance(value, int | float):
        try:
            seconds = float(value)
        except OverflowError:  # an int beyond float range
            seconds = math.inf
    elif isinstance(value, str):
        m = _DURATION_RE.match(value)
        if m:
            seconds = float(m.group(1)) * _DURATION_UNITS[m.group(2)]
    if seconds is None:
        raise ConfigError(
            f"{field}: must be a duration like 500ms, 5s, 10m, 24h or 30d ({rng}), "
            f"got {_short(value)}"
        )
    if not math.isfinite(seconds) or not minimum <= seconds <= maximum:
        raise ConfigError(f"{field}: must be a duration {rng}, got {_short(value)}")
    return seconds


def parse_size(
    value: object, field: str = "size", *, minimum: int = 0, maximum: int = MAX_SIZE
) -> int:
    """Bytes from an int or a string like ``512MB``, ``1GiB``; -1 means unlimited.

    Raises `ConfigError` naming `field` and the allowed range unless the value is -1 or
    from `minimum` to `maximum` bytes. Use `parse_limit` for a size where -1 is not allowed.
    """
    return _size(value, field, minimum, maximum, unlimited=True)


def parse_limit(value: object, field: str, *, minimum: int, maximum: int) -> int:
    """A size from `minimum` to `maximum` bytes (no "unlimited"); see `parse_size`."""
    return _size(value, field, minimum, maximum, unlimited=False)


def _size(value: object, field: str, minimum: int, maximum: int, *, unlimited: bool) -> int:
    rng = f"from {_fmt_size(minimum)} to {_fmt_size(maximum)}"
    if unlimited:
        rng = f"-1 (unlimited) or a size {rng}"
    n: int | None = None
    if isinstance(value, bool):
        n = None
    elif isinstance(value, int):
        n = value
    elif isinstance(value, str):
        m = _SIZE_RE.match(value)
        if m:
            unit = (m.group(2) or "B").upper().rstrip("B").rstrip("I")
            mult = {"": 1, "K": 1024, "M": 1024**2, "G": 1024**3, "T": 1024**4}[unit]
            n = int(m.group(1)) * mult
        elif value.strip() == "-1":
            n = -1
    if n is None:
        raise ConfigError(f"{field}: must be a size like 512KB, 64MB or 1GiB ({rng})")
    if n == -1 and unlimited:
        return -1
    if not minimum <= n <= maximum:
        raise ConfigError(f"{field}: must be {rng}, got {_short(value)}")
    return n


def _short(value: object) -> str:
    """`value` for an error message, cut to a readable length."""
    text = repr(value)
    return text if len(text) <= 60 else text[:57] + "..."


def _parse_bool(value: object, field: str) -> bool:
    if isinstance(value, bool):
        return value
    if isinstance(value, str) and value.lower() in ("1", "true", "yes", "on"):
        return True
    if isinstance(value, str) and value.lower() in ("0", "false", "no", "off"):
        return False
    raise ConfigError(f"{field}: must be true or false, got {value!r}")


def _parse_int(lo: int, hi: int | None = None) -> Callable[[object, str], int]:
    def parse(value: object, field: str) -> int:
        if isinstance(value, bool):
            raise ConfigError(f"{field}: must be an integer")
        if isinstance(value, str):
            try:
                value = int(value.strip())
            except ValueError:
                raise ConfigError(f"{field}: must be an integer, got {value!r}") from None
        if not isinstance(value, int) or value < lo or (hi is not None and value > hi):
            rng = f">= {lo}" if hi is None else f"from {lo} to {hi}"
            raise ConfigError(f"{field}: must be an integer {rng}, got {_short(value)}")
        return value

    return parse


def _parse_str(value: object, field: str) -> str:
    if not isinstance(value, str | int | float) or isinstance(value, bool):
        raise ConfigError(f"{field}: must be a string")
    text = str(value)
    if len(text) > 4096:
        raise ConfigError(f"{field}: must be at most 4096 characters")
    return text


def _parse_opt_str(value: object, field: str) -> str | None:
    if value is None or value == "":
        return None
    return _parse_str(value, field)


def _parse_servers(value: object, field: str) -> list[str]:
    if value is None:
        return []
    if isinstance(value, str):
        items = [s.strip() for s in value.split(",") if s.strip()]
    elif isinstance(value, list | tuple):
        if len(value) > MAX_SERVERS or not all(isinstance(s, str) for s in value):
            raise ConfigError(f"{field}: must be a list of at most {MAX_SERVERS} URL strings")
        items = [s.strip() for s in value if s.strip()]
    else:
        raise ConfigError(f"{field}: must be a URL or a list of URLs")
    if len(items) > MAX_SERVERS:
        raise ConfigError(f"{field}: must be a list of at most {MAX_SERVERS} URL strings")
    out = []
    for s in items:
        if "://" not in s:
            s = "nats://" + s
        scheme = s.split("://", 1)[0]
        if scheme not in ("nats", "tls", "ws", "wss"):
            raise ConfigError(
                f"{field}: {_short(mask_url(s))} must use nats://, tls://, ws:// or wss://"
            )
        _check_url(s, field)
        out.append(s)
    return out


MAX_SERVERS = 64
"""Most server URLs `nats.servers` takes."""


def _check_url(url: str, field: str) -> None:
    bad = f"{field}: {_short(mask_url(url))} is not a valid server URL"
    if any(c.isspace() or not c.isprintable() for c in url):
        raise ConfigError(bad + " (it contains whitespace or control characters)")
    try:
        parts = urlsplit(url)
        port = parts.port
    except ValueError:
        raise ConfigError(bad + " (the port must be a number from 1 to 65535)") from None
    if not parts.hostname:
        raise ConfigError(bad + " (no host)")
    if port is not None and port == 0:
        raise ConfigError(bad + " (the port must be a number from 1 to 65535)")


def mask_url(url: str) -> str:
    """`url` with any ``user:password@`` (or token) part replaced by ``***@``."""
    scheme, sep, rest = url.partition("://")
    if not sep:
        scheme, rest = "", url
    host_part, slash, path = rest.partition("/")
    if "@" in host_part:
        host_part = "***@" + host_part.rsplit("@", 1)[1]
    return (scheme + sep if sep else "") + host_part + slash + path


def _parse_inbox_prefix(value: object, field: str) -> str | None:
    if value is None or value == "":
        return None  # the namespace's own prefix
    v = _parse_str(value, field)
    if len(v) > 128 or not re.fullmatch(r"[A-Za-z0-9_$-]+(\.[A-Za-z0-9_$-]+)*", v):
        raise ConfigError(
            f"{field}: must be at most 128 characters of subject tokens of A-Z, a-z, 0-9, "
            "'_', '-', '$' separated by dots"
        )
    return v


def _parse_store(value: object, field: str) -> str:
    v = _parse_str(value, field).lower()
    if v not in ("auto", "memory", "sqlite", "jetstream"):
        raise ConfigError(f"{field}: must be one of auto, memory, sqlite, jetstream; got {v!r}")
    return v


def _parse_read_from(value: object, field: str) -> str:
    v = _parse_str(value, field).lower()
    if v not in ("leader", "any"):
        raise ConfigError(f"{field}: must be one of leader, any; got {v!r}")
    return v


def _parse_namespace(value: object, field: str) -> str:
    try:
        return validate_namespace(value, field)
    except ValueError as e:
        raise ConfigError(str(e)) from None


def _parse_sync(value: object, field: str) -> str:
    v = _parse_str(value, field).upper()
    if v not in ("OFF", "NORMAL", "FULL", "EXTRA"):
        raise ConfigError(f"{field}: must be one of off, normal, full, extra")
    return v


@dataclass(frozen=True)
class NatsSettings:
    """How to reach NATS. Secrets are never printed (see `Settings.display`)."""

    servers: list[str] = field(default_factory=list)
    name: str = "aether"
    user: str | None = None
    password: str | None = None
    password_file: str | None = None
    token: str | None = None
    token_file: str | None = None
    nkey_seed_file: str | None = None
    creds_file: str | None = None
    tls_ca_file: str | None = None
    tls_cert_file: str | None = None
    tls_key_file: str | None = None
    tls_server_name: str | None = None
    tls_required: bool = False
    tls_handshake_first: bool = False
    allow_plaintext_auth: bool = False
    connect_timeout: float = 2.0
    reconnect_attempts: int = 60
    reconnect_wait: float = 0.5
    inbox_prefix: str | None = None
    """None: the namespace's own prefix (`aether.subjects.inbox_prefix`)."""

    @property
    def wants_tls(self) -> bool:
        """Whether TLS is configured: a tls:// or wss:// URL, a CA, a client certificate or
        `tls_required`. The connection is then TLS or it fails."""
        return bool(
            self.tls_required
            or self.tls_handshake_first
            or self.tls_ca_file
            or self.tls_cert_file
            or self.tls_key_file
            or any(s.startswith(("tls://", "wss://")) for s in self.servers)
        )


@dataclass(frozen=True)
class JetStreamSettings:
    """How the event and snapshot streams are configured."""

    replicas: int = 1
    max_age: float = 0.0
    max_bytes: int = -1
    duplicate_window: float = 120.0
    publish_timeout: float = 5.0
    max_in_flight: int = 1024
    read_from: str = "leader"
    """Where latest-version reads go on replicated streams: ``leader`` (read-your-writes
    across processes) or ``any`` replica (faster; may lag another process's appends)."""


@dataclass(frozen=True)
class SQLiteSettings:
    """Where and how the embedded store keeps events."""

    path: str = ".aether/events.db"
    synchronous: str = "FULL"


@dataclass(frozen=True)
class ClusterSettings:
    """Cluster timing and size.

    `shard_count` (1-1024): shards are contiguous ranges of the 1024 slices. `lease` 0
    (the default) means 5s on a single-replica bucket and 15s when ``jetstream.replicas``
    > 1, so a stream-leader change of the bucket (up to ~10s) drops nothing;
    `node_ttl` 0 (the default) means the lease in use (`aether.cluster.defaults`).
    """

    shard_count: int = 64
    heartbeat: float = 1.0
    lease: float = 0.0
    node_ttl: float = 0.0


@dataclass(frozen=True)
class Settings:
    """Everything aether can be configured with. Build it with `Settings.load`."""

    namespace: str = "default"
    store: str = "auto"
    max_event_bytes: int = 1024 * 1024
    nats: NatsSettings = field(default_factory=NatsSettings)
    jetstream: JetStreamSettings = field(default_factory=JetStreamSettings)
    sqlite: SQLiteSettings = field(default_factory=SQLiteSettings)
    cluster: ClusterSettings = field(default_factory=ClusterSettings)
    sources: dict[str, str] = field(default_factory=dict, compare=False, repr=False)

    @property
    def resolved_store(self) -> str:
        """The store kind to use: ``auto`` means jetstream when a server is set, else sqlite."""
        if self.store != "auto":
            return self.store
        return "jetstream" if self.nats.servers else "sqlite"

    @classmethod
    def load(
        cls,
        config_file: str | os.PathLike[str] | None = None,
        *,
        env: Mapping[str, str] | None = None,
        overrides: Mapping[str, object] | None = None,
        search_default_files: bool = True,
    ) -> Settings:
        """Merge defaults, the YAML file, ``AETHER_*`` variables and `overrides`."""
        env = os.environ if env is None else env
        values: dict[str, object] = {}
        sources: dict[str, str] = {key: "default" for key in _KEYS}

        path = config_file or env.get("AETHER_CONFIG")
        if path is None and search_default_files:
            path = next((p for p in DEFAULT_CONFIG_FILES if Path(p).is_file()), None)
        if path is not None:
            for key, value in _read_yaml(Path(path)).items():
                values[key] = value
                sources[key] = f"file {path}"

        for key in _KEYS:
            for var in _env_names(key):
                if var in env:
                    values[key] = env[var]
                    sources[key] = f"env {var}"
                    break

        for key, value in (overrides or {}).items():
            if key not in _KEYS:
                raise ConfigError(f"{key}: unknown setting")
            if value is None:
                continue
            values[key] = value
            sources[key] = "flag"

        return _build(values, sources)

    @property
    def inbox_prefix(self) -> str:
        """The reply-subject prefix clients use: `nats.inbox_prefix`, else the namespace's
        own (`aether.subjects.inbox_prefix`), so replies are private to the namespace."""
        return self.nats.inbox_prefix or namespace_inbox_prefix(self.namespace)

    def replace(self, **changes: Any) -> Settings:
        """A copy with top-level fields changed (`dataclasses.replace`)."""
        return dataclasses.replace(self, **changes)

    def display(self) -> dict[str, object]:
        """Every key's effective value, secrets masked, for printing."""
        out: dict[str, object] = {}
        for key in _KEYS:
            value = self.get(key)
            if key in SECRET_KEYS and value:
                value = "******"
            elif key == "nats.servers" and isinstance(value, list):
                value = [mask_url(u) for u in value]
            out[key] = value
        return out

    def get(self, key: str) -> object:
        """The value of a dotted key, e.g. ``nats.servers``."""
        if "." in key:
            section, name = key.split(".", 1)
            return getattr(getattr(self, section), name)
        return getattr(self, key)


SECRET_KEYS = frozenset({"nats.password", "nats.token"})


def _duration(minimum: float, maximum: float) -> Callable[[object, str], float]:
    def parse(value: object, field: str) -> float:
        return parse_duration(value, field, minimum=minimum, maximum=maximum)

    return parse


_PARSERS: dict[str, Callable[[object, str], object]] = {
    "namespace": _parse_namespace,
    "store": _parse_store,
    "max_event_bytes": lambda v, f: parse_limit(v, f, minimum=256, maximum=64 * 1024**2),
    "nats.servers": _parse_servers,
    "nats.name": _parse_str,
    "nats.user": _parse_opt_str,
    "nats.password": _parse_opt_str,
    "nats.password_file": _parse_opt_str,
    "nats.token": _parse_opt_str,
    "nats.token_file": _parse_opt_str,
    "nats.nkey_seed_file": _parse_opt_str,
    "nats.creds_file": _parse_opt_str,
    "nats.tls_ca_file": _parse_opt_str,
    "nats.tls_cert_file": _parse_opt_str,
    "nats.tls_key_file": _parse_opt_str,
    "nats.tls_server_name": _parse_opt_str,
    "nats.tls_required": _parse_bool,
    "nats.tls_handshake_first": _parse_bool,
    "nats.allow_plaintext_auth": _parse_bool,
    "nats.connect_timeout": _duration(0.01, 60.0),
    "nats.reconnect_attempts": _parse_int(-1, 1_000_000),
    "nats.reconnect_wait": _duration(0.0, 600.0),
    "nats.inbox_prefix": _parse_inbox_prefix,
    "jetstream.replicas": _parse_int(1, 5),
    "jetstream.max_age": _duration(0.0, MAX_DURATION),
    "jetstream.max_bytes": lambda v, f: parse_size(v, f, minimum=1),
    "jetstream.duplicate_window": _duration(0.0, 30 * 86400.0),
    "jetstream.publish_timeout": _duration(0.01, 600.0),
    "jetstream.max_in_flight": _parse_int(1, 65536),
    "jetstream.read_from": _parse_read_from,
    "sqlite.path": _parse_str,
    "sqlite.synchronous": _parse_sync,
    "cluster.shard_count": _parse_int(1, 1024),
    "cluster.heartbeat": parse_duration,
    "cluster.lease": parse_duration,
    "cluster.node_ttl": parse_duration,
}
_KEYS = tuple(_PARSERS)
_ENV_ALIASES = {"nats.servers": ("AETHER_NATS_URL",)}


def setting_keys() -> tuple[str, ...]:
    """Every dotted setting name."""
    return _KEYS


def _env_names(key: str) -> tuple[str, ...]:
    return ("AETHER_" + key.replace(".", "_").upper(), *_ENV_ALIASES.get(key, ()))


class _NoAliasLoader(yaml.SafeLoader):
    """A safe YAML loader that refuses aliases (``*name``): a few hundred bytes of nested
    aliases would otherwise expand to gigabytes. Settings never need them."""

    def compose_node(self, parent: Any, index: Any) -> Any:
        if self.check_event(yaml.AliasEvent):
            event = self.peek_event()  # type: ignore[no-untyped-call]
            raise yaml.composer.ComposerError(
                None, None, "aliases are not allowed", event.start_mark
            )
        return super().compose_node(parent, index)


def read_limited(path: Path, limit: int) -> bytes:
    """At most `limit` bytes of file `path`; `OverflowError` if it holds more.

    Reads ``limit + 1`` bytes at most, so ``/dev/zero`` or a huge file ends at once.
    """
    with path.open("rb") as f:
        data = f.read(limit + 1)
    if len(data) > limit:
        raise OverflowError(limit)
    return data


def _read_yaml(path: Path) -> dict[str, object]:
    try:
        if path.is_dir():
            raise ConfigError(f"config file {path}: is a directory")
        raw = read_limited(path, MAX_CONFIG_FILE_BYTES)
        text = raw.decode("utf-8")
    except OSError as e:
        raise ConfigError(f"config file {path}: cannot be read ({e.strerror})") from None
    except OverflowError:
        raise ConfigError(
            f"config file {path}: is larger than {MAX_CONFIG_FILE_BYTES} bytes"
        ) from None
    except UnicodeDecodeError:
        raise ConfigError(f"config file {path}: is not UTF-8 text") from None
    try:
        doc = yaml.load(text, Loader=_NoAliasLoader)  # a safe loader without aliases
    except yaml.YAMLError as e:
        mark = getattr(e, "problem_mark", None)
        where = f" at line {mark.line + 1}" if mark is not None else ""
        problem = getattr(e, "problem", None)
        why = f" ({problem})" if problem == "aliases are not allowed" else ""
        raise ConfigError(f"config file {path}: is not valid YAML{where}{why}") from None
    except RecursionError:
        raise ConfigError(f"config file {path}: is nested too deeply") from None
    if doc is None:
        return {}
    if not isinstance(doc, dict):
        raise ConfigError(f"config file {path}: must be a mapping of settings")
    flat: dict[str, object] = {}
    for k, v in doc.items():
        if isinstance(v, dict):
            for k2, v2 in v.items():
                flat[f"{k}.{k2}"] = v2
        else:
            flat[str(k)] = v
    for key in flat:
        if key not in _PARSERS:
            shown = key if len(key) <= 60 else key[:57] + "..."
            raise ConfigError(f"config file {path}: {shown}: unknown setting")
    return flat


def _build(values: Mapping[str, object], sources: dict[str, str]) -> Settings:
    parsed: dict[str, object] = {}
    for key, raw in values.items():
        try:
            parsed[key] = _PARSERS[key](raw, key)
        except ConfigError as e:
            src = sources.get(key, "")
            raise ConfigError(f"{e} (from {src})" if src and src != "flag" else str(e)) from None
    sections: dict[str, dict[str, object]] = {
        "nats": {},
        "jetstream": {},
        "sqlite": {},
        "cluster": {},
    }
    top: dict[str, object] = {}
    for key, value in parsed.items():
        if "." in key:
            section, name = key.split(".", 1)
            sections[section][name] = value
        else:
            top[key] = value
    return Settings(
        **top,  # type: ignore[arg-type]
        nats=NatsSettings(**sections["nats"]),  # type: ignore[arg-type]
        jetstream=JetStreamSettings(**sections["jetstream"]),  # type: ignore[arg-type]
        sqlite=SQLiteSettings(**sections["sqlite"]),  # type: ignore[arg-type]
        cluster=ClusterSettings(**sections["cluster"]),  # type: ignore[arg-type]
        sources=sources,
    )
