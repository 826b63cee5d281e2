"""``aether append``: append one event, or many from a JSON-lines file."""

from __future__ import annotations

from typing import Annotated

import typer
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

from aether.errors import AetherError, ValidationError
from aether.event import Event, encode_event, event_to_dict, validate_event
from aether.store.base import EventStore
from aether_cli.bulk import BulkItem, assign_versions, parse_lines, plan_batches
from aether_cli.context import (
    EXIT_USAGE,
    cli_state,
    err,
    exit_code_for,
    fail,
    out,
    print_json,
    run,
    settings_or_fail,
)
from aether_cli.session import json_object_option, read_input, store_session


def register(app: typer.Typer) -> None:
    """Add ``append`` to `app`."""
    app.command("append")(append)


def append(
    ctx: typer.Context,
    actor: Annotated[
        str | None,
        typer.Argument(
            metavar="ACTOR",
            help="Actor id: any non-empty string ('user@example.com', 'a.b').",
            show_default=False,
        ),
    ] = None,
    event_type: Annotated[
        str | None,
        typer.Argument(
            metavar="EVENT_TYPE", help="Event type, e.g. OrderPlaced.", show_default=False
        ),
    ] = None,
    data: Annotated[
        str | None,
        typer.Option(
            "--data", "-d", help="Event data: a JSON object, @file.json, or @- for stdin."
        ),
    ] = None,
    metadata: Annotated[
        str | None,
        typer.Option(
            "--metadata", "-m", help="Metadata: a JSON object of strings (or @file.json)."
        ),
    ] = None,
    expect_version: Annotated[
        int | None,
        typer.Option(
            "--expect-version",
            "-e",
            min=0,
            help="Append only if the actor's latest version is N (0: a new actor); "
            "else exit 3. Default: whatever is latest.",
        ),
    ] = None,
    file: Annotated[
        str | None,
        typer.Option("--file", "-f", help="Append every event of a JSON-lines file ('-': stdin)."),
    ] = None,
    json_output: Annotated[
        bool,
        typer.Option("--json", help="Print the stored event (with --file: a summary) as JSON."),
    ] = False,
) -> None:
    """Append one event to an actor (or many with --file) and print the stored version."""
    if file is not None:
        extra = [
            name
            for name, value in (
                ("ACTOR", actor),
                ("EVENT_TYPE", event_type),
                ("--data", data),
                ("--metadata", metadata),
                ("--expect-version", expect_version),
            )
            if value is not None
        ]
        if extra:
            fail(f"--file takes the events from the file; drop {', '.join(extra)}", EXIT_USAGE)
        _append_file(ctx, file, json_output)
        return
    if actor is None or event_type is None:
        fail("missing ACTOR and EVENT_TYPE (or --file FILE for bulk input)", EXIT_USAGE)
    settings = settings_or_fail(ctx)
    try:
        event = validate_event(
            Event(
                event_type=event_type,
                actor_id=actor,
                version=1 if expect_version is None else expect_version + 1,
                data=json_object_option(data, "--data"),
                metadata=json_object_option(metadata, "--metadata"),  # type: ignore[arg-type]
            )
        )
        encode_event(event, settings.max_event_bytes)
    except ValidationError as e:
        fail(str(e), EXIT_USAGE)
    as_json = cli_state(ctx).json or json_output

    async def body() -> None:
        async with store_session(settings) as store:
            ev = event
            if expect_version is None:
                latest = await store.get_latest_version(ev.actor_id)
                ev = Event(
                    event_type=ev.event_type,
                    actor_id=ev.actor_id,
                    version=latest + 1,
                    data=ev.data,
                    id=ev.id,
                    timestamp=ev.timestamp,
                    metadata=ev.metadata,
                )
            stored = await store.save_event(ev)
        if as_json:
            print_json(event_to_dict(stored, with_position=True))
        else:
            out.print(
                f"Appended {stored.event_type} to {stored.actor_id!r} at version "
                f"{stored.version} (position {stored.position})",
                markup=False,
            )

    run(ctx, body)


def _append_file(ctx: typer.Context, source: str, json_output: bool) -> None:
    settings = settings_or_fail(ctx)
    as_json = cli_state(ctx).json or json_output
    try:
        items = parse_lines(read_input(source, "--file"), settings.max_event_bytes)
    except ValidationError as e:
        fail(f"{_name(source)}: {e}", EXIT_USAGE)

    async def body() -> None:
        async with store_session(settings) as store:
            try:
                await assign_versions(items, store.get_latest_version, store.list_actors)
            except ValidationError as e:
                fail(f"{_name(source)}: {e}", EXIT_USAGE)
            batches = plan_batches(items)
            written, versions = await _write(store, batches, show=not as_json)
        if as_json:
            print_json({"appended": written, "batches": len(batches), "actors": versions})
        else:
            out.print(
                f"Appended {_count(written, 'event')} to {_count(len(versions), 'actor')} "
                f"in {_count(len(batches), 'batch')}",
                markup=False,
            )

    run(ctx, body)


async def _write(
    store: EventStore, batches: list[list[BulkItem]], *, show: bool
) -> tuple[int, dict[str, int]]:
    """Save the batches in order with a progress bar; return the count and last versions."""
    total = sum(len(b) for b in batches)
    written = 0
    versions: dict[str, int] = {}
    progress = Progress(
        TextColumn("appending"),
        BarColumn(),
        MofNCompleteColumn(),
        TimeElapsedColumn(),
        console=err,
        disable=not show or not err.is_terminal,
        transient=False,
    )
    with progress:
        task = progress.add_task("append", total=total)
        for batch in batches:
            try:
                await store.save_events([item.event for item in batch])
            except AetherError as e:  # the earlier batches stay written: say how far it got
                line = batch[0].line
                fail(
                    f"line {line}: {e}; {_count(written, 'earlier event')} written, "
                    f"nothing from line {line} on",
                    exit_code_for(e),
                )
            written += len(batch)
            versions[batch[-1].event.actor_id] = batch[-1].event.version
            progress.advance(task, len(batch))
    return written, versions


def _name(source: str) -> str:
    return "stdin" if source == "-" else source


def _count(n: int, noun: str) -> str:
    plural = noun + ("es" if noun.endswith("ch") else "s")
    return f"{n} {noun if n == 1 else plural}"
