"""``--help`` formatting: a boolean flag shows no value placeholder.

Typer's rich help prints the type of every option, so ``--json`` read as
``--json <bool>``, as if the flag took a value. Importing this module makes flags (and
counters) show an empty type column instead; options that take a value are unchanged.
"""

from __future__ import annotations

from typing import Any

from typer.core import TyperOption

_display_type_rich = TyperOption.display_type_rich


def _flag_shows_no_metavar(self: TyperOption, ctx: Any) -> str | None:
    if self.is_flag or self.count:
        return None
    return _display_type_rich(self, ctx)


TyperOption.display_type_rich = _flag_shows_no_metavar  # type: ignore[method-assign]
