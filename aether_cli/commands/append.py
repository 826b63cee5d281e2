"""``aether append``: append one event, or many from a JSON-lines file."""

from __future__ import annotations

import sys
import traceback
from pathlib import Path
from typing import IO, Annotated

import typer
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

from aether.errors import AetherError, InvalidEventError, ValidationError
from aether.event import (
    Event,
    JSONValue,
    encode_event,
    event_to_dict,
    loads_json_object,
    validate_event,
)
from aether.jsonl import ImportProgress, import_lines
from aether_cli.context import (
    EXIT_USAGE,
    cli_state,
    err,
    exit_code_for,
    fail,
    fail_for,
    hint_for,
    out,
    print_json,
    run,
    settings_or_fail,
    strict_int,
)
from aether_cli.session import explain_non_finite, store_session

MAX_VERSION = 2**63 - 2
"""The largest --expect-version (the next version must fit in a signed 64-bit integer)."""


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
            help="Append only if the actor's latest version is N (0: a new actor); "
            "else exit 3. Default: whatever is latest.",
            parser=strict_int("--expect-version", 0, MAX_VERSION),
            metavar="N",
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
                data=_json_option(data, "--data", settings.max_event_bytes),
                metadata=_json_option(metadata, "--metadata", settings.max_event_bytes),
            )
        )
        encode_event(event, settings.max_event_bytes)
    except ValidationError as e:
        fail_for(e, cli_state(ctx).debug, EXIT_USAGE)
    except RecursionError:
        fail("--data/--metadata: nested too deeply", EXIT_USAGE)
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


def _open_input(source: str, option: str) -> IO[bytes]:
    if source == "-":
        return sys.stdin.buffer
    path = Path(source)
    try:
        if path.is_dir():
            raise IsADirectoryError(21, "Is a directory")
        return path.open("rb")
    except OSError as e:
        raise InvalidEventError(option, f"cannot read {source!r} ({e.strerror})") from None


def _read_bounded(source: str, option: str, limit: int) -> bytes:
    """At most `limit` bytes of `source` (``-``: stdin), or `InvalidEventError`: a file
    like /dev/zero ends at once."""
    f = _open_input(source, option)
    try:
        data = f.read(limit + 1)
    except OSError as e:
        raise InvalidEventError(option, f"cannot read {source!r} ({e.strerror})") from None
    finally:
        if f is not sys.stdin.buffer:
            f.close()
    if len(data) > limit:
        raise InvalidEventError(
            option, f"{source!r} is larger than max_event_bytes ({limit} bytes)"
        )
    return data


def _json_option(value: str | None, option: str, limit: int) -> dict[str, JSONValue]:
    """A JSON-object option: inline JSON, ``@file.json`` or ``@-`` (read at most `limit`
    bytes); None gives ``{}``."""
    if value is None:
        return {}
    text: str | bytes = value
    if value.startswith("@"):
        text = _read_bounded(value[1:], option, limit)
    try:
        return loads_json_object(text, option)
    except InvalidEventError:
        explain_non_finite(text, option)
        raise


def _append_file(ctx: typer.Context, source: str, json_output: bool) -> None:
    settings = settings_or_fail(ctx)
    state = cli_state(ctx)
    as_json = state.json or json_output
    try:
        stream = _open_input(source, "--file")
    except ValidationError as e:
        fail_for(e, state.debug, EXIT_USAGE)
    progress = ImportProgress()
    bar = Progress(
        TextColumn("appending"),
        BarColumn(),
        MofNCompleteColumn(),
        TimeElapsedColumn(),
        console=err,
        disable=as_json or not err.is_terminal,
        transient=False,
    )

    async def body() -> None:
        async with store_session(settings) as store:
            task = None

            def advanced(p: ImportProgress) -> None:
                nonlocal task
                if task is None:
                    task = bar.add_task("append", total=p.batches)
                bar.update(task, completed=p.batches_written)

            try:
                with bar:
                    result = await import_lines(
                        store,
                        stream,
                        max_event_bytes=settings.max_event_bytes,
                        progress=progress,
                        on_unit=advanced,
                    )
            except AetherError as e:
                line = progress.failed_line
                if line is None and not isinstance(e, ValidationError):
                    raise  # before any unit (e.g. NATS unreachable): the usual mapping
                if state.debug:
                    traceback.print_exception(e, file=sys.stderr)
                if line is None:  # a bad line (or version): nothing was written
                    fail(f"{_name(source)}: {e}", EXIT_USAGE)
                # a unit the store refused: the earlier units stay written
                code = EXIT_USAGE if isinstance(e, ValidationError) else exit_code_for(e)
                fail(
                    f"line {line}: {e}{hint_for(e)}; {_count(progress.appended, 'earlier event')} "
                    f"written, nothing from line {line} on",
                    code,
                )
        if as_json:
            print_json(
                {"appended": result.appended, "batches": result.batches, "actors": result.actors}
            )
        else:
            out.print(
                f"Appended {_count(result.appended, 'event')} to "
                f"{_count(len(result.actors), 'actor')} in {_count(result.batches, 'batch')}",
                markup=False,
            )

    try:
        run(ctx, body)
    finally:
        if stream is not sys.stdin.buffer:
            stream.close()


def _name(source: str) -> str:
    return "stdin" if source == "-" else source


def _count(n: int, noun: str) -> str:
    plural = noun + ("es" if noun.endswith("ch") else "s")
    return f"{n} {noun if n == 1 else plural}"
