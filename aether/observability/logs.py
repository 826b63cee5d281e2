"""Logging: stable logger names and a JSON formatter (one object per line).

aether logs through `logging` only, under ``aether.store``, ``aether.bus``,
``aether.cluster`` and ``aether.processing`` (and ``aether.bench``, ``aether.connect``).
"""

from __future__ import annotations

import logging
import sys
from datetime import UTC, datetime
from typing import IO, Any

import orjson

LOGGERS = ("aether.store", "aether.bus", "aether.cluster", "aether.processing")
"""The stable logger names of the library's parts (children of ``aether``)."""

CONTEXT_FIELDS = ("node", "term", "shard", "namespace", "processor")
"""Record attributes (given with ``extra=``) that `JsonLogFormatter` writes when set."""


class JsonLogFormatter(logging.Formatter):
    """One JSON object per record: ``time`` (RFC 3339 UTC), ``level``, ``logger``,
    ``message``, then ``node``, ``term``, ``shard`` (and `CONTEXT_FIELDS`) when the
    record has them (``log.info("...", extra={"shard": 3})``), and ``exception`` with
    the formatted traceback when there is one."""

    def format(self, record: logging.LogRecord) -> str:
        """The record as one line of JSON (no newline)."""
        doc: dict[str, Any] = {
            "time": datetime.fromtimestamp(record.created, UTC)
            .isoformat(timespec="microseconds")
            .replace("+00:00", "Z"),
            "level": record.levelname.lower(),
            "logger": record.name,
            "message": record.getMessage(),
        }
        for key in CONTEXT_FIELDS:
            value = getattr(record, key, None)
            if value is not None:
                doc[key] = value
        if record.exc_info:
            doc["exception"] = self.formatException(record.exc_info)
        elif record.stack_info:
            doc["stack"] = self.formatStack(record.stack_info)
        return orjson.dumps(doc, default=str).decode()


class NodeContextFilter(logging.Filter):
    """Adds ``node`` (and ``term`` while it leads or sees a leader) to every record that
    does not carry them, from a `ClusterNode` read at log time."""

    def __init__(self, node: Any) -> None:
        super().__init__()
        self.node = node

    def filter(self, record: logging.LogRecord) -> bool:
        """Annotate `record`; never drops it."""
        if getattr(record, "node", None) is None:
            record.node = self.node.node_id
        if getattr(record, "term", None) is None:
            try:
                term = self.node.term
                if term is None and self.node.leader is not None:
                    term = self.node.leader.term
            except Exception:
                term = None
            if term is not None:
                record.term = term
        return True


def configure_logging(
    *,
    json: bool = True,
    level: int | str = logging.INFO,
    stream: IO[str] | None = None,
    node: Any = None,
) -> logging.Handler:
    """Send the ``aether`` loggers to `stream` (default stderr), as JSON lines or text.

    With `node` (a `ClusterNode`), records get its ``node`` id and ``term``. Returns the
    handler (remove it from ``logging.getLogger("aether")`` to undo).
    """
    handler = logging.StreamHandler(stream if stream is not None else sys.stderr)
    if json:
        handler.setFormatter(JsonLogFormatter())
    else:
        handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(name)s %(message)s"))
    if node is not None:
        handler.addFilter(NodeContextFilter(node))
    logger = logging.getLogger("aether")
    logger.addHandler(handler)
    logger.setLevel(level)
    return handler
