"""What ``aether node`` and ``aether cluster`` share: the NATS requirement and durations."""

from __future__ import annotations

from aether.config import Settings, parse_duration
from aether.errors import ConfigError
from aether_cli.context import EXIT_UNREACHABLE, EXIT_USAGE, fail

NO_SERVER_MESSAGE = (
    "cluster commands need a NATS server with JetStream: start one with `aether server` "
    "(pip install 'aether[server]'), then pass --server nats://127.0.0.1:4222 "
    "or set AETHER_NATS_URL"
)
"""The one line printed (exit 5) when no NATS server is configured."""


def require_nats(settings: Settings) -> None:
    """Exit 5 with `NO_SERVER_MESSAGE` unless a NATS server is configured."""
    if not settings.nats.servers:
        fail(NO_SERVER_MESSAGE, EXIT_UNREACHABLE)


def duration_option(value: str | None, option: str) -> float | None:
    """Seconds from ``500ms``/``5s``/``1m`` (exit 2 with one line if malformed)."""
    if value is None:
        return None
    try:
        seconds = parse_duration(value, option)
    except ConfigError as e:
        fail(str(e), EXIT_USAGE)
    if seconds <= 0:
        fail(f"{option}: must be greater than 0", EXIT_USAGE)
    return seconds
