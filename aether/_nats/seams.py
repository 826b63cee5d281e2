"""The switch for nats-py private seams: on unless ``AETHER_NATS_SEAMS=off``."""

from __future__ import annotations

import os


def seams_enabled() -> bool:
    """Whether private nats-py seams may be used (read each time: tests flip it)."""
    return os.environ.get("AETHER_NATS_SEAMS", "on").strip().lower() not in {"off", "0", "no"}
