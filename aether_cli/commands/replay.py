"""``aether replay``: an actor's events as a table, JSON lines, or folded into its state."""

from __future__ import annotations

import importlib
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Annotated, Any

import orjson
import typer
from rich.table import Table
from rich.text import Text

from aether.errors import ValidationError
from aether.event import Event, event_to_dict, fold_data, format_timestamp
from aether.subjects import validate_actor_id
from aether_cli.context import (
    EXIT_ERROR,
    EXIT_NOT_FOUND,
    EXIT_USAGE,
    cli_state,
    fail,
    out,
    print_json,
    run,
    settings_or_fail,
)
from aether_cli.session import json_object_option, read_only_session


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
            "--state",
            help="Print the events folded into one state (default fold: data, later keys win).",
        ),
    ] = False,
    fold: Annotated[
        str | None,
        typer.Option(
            "--fold",
            metavar="MODULE:FUNC",
            help="Your fold(state, event) -> state, imported from the current directory or "
            "PYTHONPATH (implies --state).",
            show_default=False,
        ),
    ] = None,
    initial: Annotated[
        str | None,
        typer.Option(
            "--initial",
            metavar="JSON",
            help="The state --fold starts from (default {}); @file.json reads a file.",
            show_default=False,
        ),
    ] = None,
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
    if initial is not None and fold is None:
        fail("--initial needs --fold", EXIT_USAGE)
    user_fold = load_fold(fold) if fold is not None else None
    start: object = {}
    if initial is not None:
        try:
            start = json_object_option(initial, "--initial")
        except ValidationError as e:
            fail(str(e), EXIT_USAGE)
    state = state or user_fold is not None
    as_json = cli_state(ctx).json or json_output
    streaming = as_json and not state

    async def body() -> None:
        events: list[Event] = []
        count = 0
        async with read_only_session(settings) as store:
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
            if user_fold is None or fold is None:
                folded: Any = fold_data(events)
            else:
                folded = _fold(user_fold, start, events, fold)
            if as_json:
                print_json(folded)
            else:
                out.print(
                    f"State of {actor!r} at version {events[-1].version} "
                    f"({len(events)} events folded):",
                    markup=False,
                )
                out.print(
                    orjson.dumps(
                        folded, option=orjson.OPT_INDENT_2 | orjson.OPT_NON_STR_KEYS
                    ).decode(),
                    markup=False,
                )
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


def load_fold(spec: str) -> Callable[[Any, Event], Any]:
    """The function ``module:func`` names (``func`` may be dotted), importable from the
    current directory or PYTHONPATH; exit 2 with one line when it cannot be had."""
    module_name, sep, attr = spec.partition(":")
    if not sep or not module_name or not attr:
        fail(f"--fold: {spec!r} is not MODULE:FUNC (e.g. bank.folds:account)", EXIT_USAGE)
    cwd = str(Path.cwd())
    if cwd not in sys.path and "" not in sys.path:
        sys.path.insert(0, cwd)
    try:
        target: Any = importlib.import_module(module_name)
    except Exception as e:  # ImportError, or the module failed while importing
        fail(f"--fold: cannot import module {module_name!r} ({type(e).__name__}: {e})", EXIT_USAGE)
    for part in attr.split("."):
        try:
            target = getattr(target, part)
        except AttributeError:
            fail(f"--fold: module {module_name!r} has no attribute {attr!r}", EXIT_USAGE)
    if not callable(target):
        fail(f"--fold: {spec} is a {type(target).__name__}, not a function", EXIT_USAGE)
    return target  # type: ignore[no-any-return]


def _fold(fn: Callable[[Any, Event], Any], initial: object, events: list[Event], spec: str) -> Any:
    state: Any = initial
    for event in events:
        try:
            state = fn(state, event)
        except Exception as e:
            fail(
                f"--fold {spec} raised {type(e).__name__} at version {event.version}: {e}",
                EXIT_ERROR,
            )
    try:
        orjson.dumps(state, option=orjson.OPT_NON_STR_KEYS)
    except TypeError as e:
        fail(f"--fold {spec} returned a state that is not JSON ({e})", EXIT_ERROR)
    return state
