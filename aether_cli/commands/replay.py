"""``aether replay``: an actor's events as a table, JSON lines, or folded into its state."""

from __future__ import annotations

from typing import Annotated

import orjson
import typer
from rich.table import Table
from rich.text import Text

from aether.errors import ValidationError
from aether.event import Event, event_to_dict, fold_data, format_timestamp
from aether.subjects import validate_actor_id
from aether_cli.context import (
    EXIT_NOT_FOUND,
    EXIT_USAGE,
    cli_state,
    fail,
    out,
    print_json,
    run,
    settings_or_fail,
)
from aether_cli.session import store_session


def register(app: typer.Typer) -> None:
    """Add ``replay`` to `app`."""
    app.command("replay")(replay)


def replay(
    ctx: typer.Context,
    actor: Annotated[
        str,
        typer.Argument(metavar="ACTOR", help="Actor id, exactly as appended.", show_default=False),
    ],
    from_version: Annotated[
        int, typer.Option("--from", min=0, max=2**63 - 1, help="First version to show (inclusive).")
    ] = 0,
    to_version: Annotated[
        int | None,
        typer.Option("--to", min=0, max=2**63 - 1, help="Last version to show (inclusive)."),
    ] = None,
    state: Annotated[
        bool,
        typer.Option(
            "--state", help="Print the events' data folded into one object (later keys win)."
        ),
    ] = False,
    json_output: Annotated[
        bool, typer.Option("--json", help="JSON lines (with --state: one JSON object).")
    ] = False,
) -> None:
    """Replay an actor's events: a table, JSON lines with --json, or the folded --state."""
    settings = settings_or_fail(ctx)
    try:
        validate_actor_id(actor, "ACTOR")
    except ValidationError as e:
        fail(str(e), EXIT_USAGE)
    if to_version is not None and to_version < from_version:
        fail(f"--to {to_version} is before --from {from_version}", EXIT_USAGE)
    as_json = cli_state(ctx).json or json_output
    streaming = as_json and not state

    async def body() -> None:
        events: list[Event] = []
        count = 0
        async with store_session(settings) as store:
            async for event in store.iter_events(actor, from_version, to_version):
                count += 1
                if streaming:
                    print_json(event_to_dict(event, with_position=True))
                else:
                    events.append(event)
        if count == 0:
            span = ""
            if from_version > 1 or to_version is not None:
                span = f" from version {from_version}" + (
                    f" to {to_version}" if to_version is not None else ""
                )
            fail(
                f"not found: actor {actor!r} has no events{span} in namespace "
                f"{settings.namespace!r}",
                EXIT_NOT_FOUND,
            )
        if streaming:
            return
        if state:
            folded = fold_data(events)
            if as_json:
                print_json(folded)
            else:
                out.print(
                    f"State of {actor!r} at version {events[-1].version} "
                    f"({len(events)} events folded):",
                    markup=False,
                )
                out.print(orjson.dumps(folded, option=orjson.OPT_INDENT_2).decode(), markup=False)
            return
        out.print(_table(actor, events))

    run(ctx, body)


def _table(actor: str, events: list[Event]) -> Table:
    table = Table(title=Text(f"{actor} ({len(events)} events)"), title_justify="left")
    table.add_column("Version", justify="right", no_wrap=True)
    table.add_column("Type", overflow="fold")
    table.add_column("Timestamp", no_wrap=True, min_width=27)
    table.add_column("Data", overflow="fold")
    for e in events:
        table.add_row(
            Text(str(e.version)),
            Text(e.event_type),
            Text(format_timestamp(e.timestamp)),
            Text(orjson.dumps(e.data).decode()),
        )
    return table
