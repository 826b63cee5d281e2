"""Bulk input for ``aether append --file``: the library's JSON-lines import (`aether.jsonl`)
under the names the CLI has always used."""

from __future__ import annotations

from aether.errors import InvalidLineError
from aether.jsonl import (
    ACTORS_LISTED_ABOVE,
    MAX_BATCH,
    ImportItem,
    assign_versions,
    parse_line,
    parse_lines,
    plan_batches,
)

BulkInputError = InvalidLineError
"""A line of the bulk file is invalid; nothing was written (`aether.errors.InvalidLineError`)."""

BulkItem = ImportItem
"""One parsed line (`aether.jsonl.ImportItem`)."""

__all__ = [
    "ACTORS_LISTED_ABOVE",
    "MAX_BATCH",
    "BulkInputError",
    "BulkItem",
    "assign_versions",
    "parse_line",
    "parse_lines",
    "plan_batches",
]
