"""What the connected server told us: its INFO, version and URL (parsed here, once).

Seam: ``Client._server_info`` (nats-py keeps the INFO only there; its public
``connected_server_version`` lacks the other fields). Missing, it reads as empty: the
version is then (0, 0, 0) and features that depend on it are not used.
"""

from __future__ import annotations

from typing import Any

from nats.aio.client import Client as NATS


def server_info(nc: NATS) -> dict[str, Any]:
    """The INFO the connected server sent (version, max_payload, jetstream, tls...)."""
    info = getattr(nc, "_server_info", None)
    return dict(info) if isinstance(info, dict) else {}


def parse_version(text: object) -> tuple[int, int, int]:
    """``"2.12.1-beta"`` -> ``(2, 12, 1)``; ``(0, 0, 0)`` when it cannot be read."""
    core = str(text or "0.0.0").strip().lstrip("v").split("-")[0]
    parts = [*core.split("."), "0", "0", "0"][:3]
    try:
        return (int(parts[0]), int(parts[1]), int(parts[2]))
    except ValueError:
        return (0, 0, 0)


def server_version(nc: NATS) -> tuple[int, int, int]:
    """The connected server's version, ``(0, 0, 0)`` when unknown."""
    return parse_version(server_info(nc).get("version"))


def server_version_text(nc: NATS) -> str | None:
    """The connected server's version as it reported it (``"2.12.1"``), or None."""
    version = server_info(nc).get("version")
    return str(version) if version else None


def where(nc: NATS) -> str:
    """The server the connection is (or was last) connected to, for messages."""
    url = getattr(nc, "connected_url", None) or getattr(nc, "_current_server", None)
    parsed = getattr(url, "uri", url)
    host = getattr(parsed, "hostname", None)
    port = getattr(parsed, "port", None)
    scheme = getattr(parsed, "scheme", None) or "nats"
    if host:
        return f"{scheme}://{host}:{port}" if port else f"{scheme}://{host}"
    return "the configured NATS server"
