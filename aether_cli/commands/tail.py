"""``aether tail``: follow a namespace's events live (the store's ``watch``, or the bus)."""

from __future__ import annotations

import asyncio
import contextlib
import os
import sys
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Annotated

import orjson
import typer
from rich.text import Text

from aether.config import Settings, parse_duration
from aether.errors import ConfigError, InvalidEventError, ValidationError
from aether.event import Event, event_to_dict, format_timestamp, parse_timestamp, utc_now
from aether.subjects import (
    parse_slices,
    validate_actor_id,
    validate_event_type,
    validate_namespace,
)
from aether_cli.context import (
    EXIT_USAGE,
    cli_state,
    err,
    fail,
    out,
    print_json,
    run,
    settings_or_fail,
    strict_int,
)
from aether_cli.session import store_session
from aether_cli.signals import stop_on_signals

BUS_BUFFER = 65536
"""Events `tail --bus` buffers while the terminal catches up (it never drops on its own)."""


def register(app: typer.Typer) -> None:
    """Add ``tail`` to `app`."""
    app.command("tail")(tail)


@dataclass(frozen=True)
class TailOptions:
    """What to follow and how to print it."""

    target: str
    types: frozenset[str] | None
    actor: str | None
    start: int | None  # None: only new events
    since: datetime | None
    count: int | None
    as_json: bool
    slices: frozenset[int] | None = None


def tail(
    ctx: typer.Context,
    target: Annotated[
        str | None,
        typer.Argument(
            metavar="NAMESPACE_OR_PATTERN",
            help="Namespace to follow (default: --namespace or the configured one). "
            "With --bus a pattern such as '*' or 'orders-*' is allowed.",
            show_default=False,
        ),
    ] = None,
    event_type: Annotated[
        list[str] | None,
        typer.Option("--type", "-t", help="Only this event type (repeat for several)."),
    ] = None,
    actor: Annotated[str | None, typer.Option("--actor", "-a", help="Only this actor.")] = None,
    from_start: Annotated[
        bool, typer.Option("--from-start", help="Begin with the first stored event.")
    ] = False,
    from_position: Annotated[
        int | None,
        typer.Option(
            "--from-position",
            help=f"Begin at this global position (1 to {MAX_POSITION}).",
            parser=strict_int("--from-position", 1, MAX_POSITION),
            metavar="P",
        ),
    ] = None,
    since: Annotated[
        str | None,
        typer.Option(
            "--since",
            help="Begin with events stamped at most this long ago (10m, 2h, 1d) or since an "
            "RFC 3339 time.",
        ),
    ] = None,
    count: Annotated[
        int | None,
        typer.Option(
            "--count",
            help="Exit after printing N events.",
            parser=strict_int("--count", 1, MAX_POSITION),
            metavar="N",
        ),
    ] = None,
    slices: Annotated[
        str | None,
        typer.Option(
            "--slices",
            help="Only actors of these slices (0-1023), e.g. 0-127 or 0-7,512 "
            "(the store selects them on the server).",
            metavar="RANGES",
        ),
    ] = None,
    bus: Annotated[
        bool,
        typer.Option("--bus", help="Follow the ephemeral NATS bus instead of the store."),
    ] = False,
    namespace: Annotated[
        str | None, typer.Option("--namespace", "-n", help="Namespace (same as the argument).")
    ] = None,
    server: Annotated[
        list[str] | None, typer.Option("--server", "-s", help="NATS URL (repeatable).")
    ] = None,
    json_output: Annotated[
        bool, typer.Option("--json", help="One JSON object per line (wire format + position).")
    ] = False,
) -> None:
    """Follow events as they are appended; Ctrl-C (or --count) stops.

    Without --from-start, --from-position or --since only new events are shown.
    The store is followed without gaps or duplicates, across NATS server restarts.
    """
    state = cli_state(ctx)
    if target is not None and namespace is not None and target != namespace:
        fail(f"the namespace is given twice ({target!r} and -n {namespace!r})", EXIT_USAGE)
    chosen = target if target is not None else namespace
    if chosen is not None and "*" not in chosen:
        state.override({"namespace": chosen})
    if server:
        state.override({"nats.servers": list(server)})
    if bus and (from_start or from_position is not None or since is not None):
        fail("--bus follows live events only: drop --from-start/--from-position/--since", 2)
    if sum([from_start, from_position is not None, since is not None]) > 1:
        fail("use only one of --from-start, --from-position and --since", EXIT_USAGE)
    if chosen is not None and "*" in chosen and not bus:
        fail(
            f"{chosen!r} is a pattern: the store is followed one namespace at a time "
            "(use --bus to follow a pattern live)",
            EXIT_USAGE,
        )
    if bus and slices is not None:
        fail("--slices selects stored events: drop --bus or --slices", EXIT_USAGE)
    settings = settings_or_fail(ctx)
    try:
        cutoff = _parse_since(since) if since is not None else None
        chosen_slices = parse_slices(slices, "--slices") if slices is not None else None
        if chosen is not None and "*" not in chosen:
            validate_namespace(chosen, "NAMESPACE")
        if event_type:
            for t in event_type:
                validate_event_type(t, "--type")
        if actor is not None:
            validate_actor_id(actor, "--actor")
    except (ConfigError, ValidationError) as e:
        fail(str(e), EXIT_USAGE)
    opts = TailOptions(
        target=chosen if chosen is not None and "*" in chosen else settings.namespace,
        types=frozenset(event_type) if event_type else None,
        actor=actor,
        start=1 if from_start or cutoff is not None else from_position,
        since=cutoff,
        count=count,
        as_json=state.json or json_output,
        slices=chosen_slices,
    )
    body = _tail_bus if bus else _tail_store
    run(ctx, lambda: _until_stopped(_until_stdout_closes(body(settings, opts))))


MAX_POSITION = 2**63 - 1
"""The largest global position a store can hold (a signed 64-bit integer)."""


def _parse_since(value: str) -> datetime:
    text = value.strip()
    shown = repr(value) if len(value) <= 60 else repr(value[:57] + "...")
    if "T" in text or (text.count("-") >= 2 and ":" in text):
        try:
            ts = parse_timestamp(text)
            ts.astimezone(UTC)  # 0001-01-01T00:00:00+01:00 is before year 1 in UTC
            return ts
        except (ValueError, InvalidEventError, OverflowError):
            raise ConfigError(
                f"--since: {shown} is not an RFC 3339 time between years 1 and 9999 (UTC)"
            ) from None
    seconds = parse_duration(text, "--since")  # range-checked: at most 100 years
    return utc_now() - timedelta(seconds=seconds)


def _check_filters(opts: TailOptions) -> None:
    if opts.types is not None:
        for t in opts.types:
            validate_event_type(t, "--type")
    if opts.actor is not None:
        validate_actor_id(opts.actor, "--actor")


async def _tail_store(settings: Settings, opts: TailOptions) -> None:
    validate_namespace(opts.target)
    _check_filters(opts)
    show = _printer(opts, None)
    async with store_session(settings, create=False) as store:
        start = opts.start if opts.start is not None else await store.last_position() + 1
        which = "" if opts.slices is None else f", {len(opts.slices)} of 1024 slices"
        _notice(
            f"following namespace {opts.target!r} ({settings.resolved_store} store{which}) "
            f"from position {start}; Ctrl-C to stop"
        )
        printed = 0
        if opts.slices is None:
            events = store.watch(from_position=start)
        else:
            events = store.watch(from_position=start, slices=opts.slices)
        async with contextlib.aclosing(events):  # type: ignore[type-var]
            async for e in events:
                if not _wanted(e, opts):
                    continue
                show(e, opts.target)
                printed += 1
                if opts.count is not None and printed >= opts.count:
                    return


async def _tail_bus(settings: Settings, opts: TailOptions) -> None:
    from aether.bus import NatsEventBus, Overflow  # nats-py loads only with --bus

    _check_filters(opts)
    bus = await NatsEventBus.open(settings)
    try:
        sub = await bus.subscribe(
            opts.target,
            event_types=opts.types,
            actor_id=opts.actor,
            buffer=BUS_BUFFER,
            overflow=Overflow.BLOCK,
        )
        _notice(f"following the bus of {opts.target!r} (live, not stored); Ctrl-C to stop")
        show = _printer(opts, sub)
        printed = 0
        async for e in sub:
            missed = sub.missed()
            if missed:
                _notice(f"warning: missed {missed} bus events (this terminal fell behind)")
            show(e, sub.last_namespace or opts.target)
            printed += 1
            if opts.count is not None and printed >= opts.count:
                return
    finally:
        await bus.close()


def _wanted(e: Event, opts: TailOptions) -> bool:
    if opts.types is not None and e.event_type not in opts.types:
        return False
    if opts.actor is not None and e.actor_id != opts.actor:
        return False
    return opts.since is None or e.timestamp >= opts.since


def _notice(message: str) -> None:
    err.print(message, markup=False, highlight=False)


def _printer(opts: TailOptions, sub: object) -> Callable[[Event, str], None]:
    if opts.as_json:
        with_ns = sub is not None

        def show_json(e: Event, namespace: str) -> None:
            d = event_to_dict(e, with_position=True)
            if with_ns:
                d["namespace"] = namespace
            print_json(d)

        return show_json

    show_ns = "*" in opts.target

    def show_line(e: Event, namespace: str) -> None:
        line = Text()
        line.append(f"{e.position if e.position is not None else '-':>7}  ", style="dim")
        line.append(format_timestamp(e.timestamp), style="cyan")
        if show_ns:
            line.append(f"  {namespace}", style="magenta")
        line.append(f"  {e.actor_id}", style="bold")
        line.append(f"  v{e.version}")
        line.append(f"  {e.event_type}", style="green")
        line.append("  " + orjson.dumps(e.data).decode())
        if e.metadata:
            line.append("  " + orjson.dumps(e.metadata).decode(), style="dim")
        out.print(line, soft_wrap=True)
        out.file.flush()

    return show_line


async def _until_stopped(body: Awaitable[None]) -> None:
    """Run `body` until it ends or SIGINT/SIGTERM arrives; a signal ends it quietly (exit 0).

    The loop's own handlers (rather than asyncio.run's KeyboardInterrupt) make the stop
    one explicit cancellation of the body, which then closes the store as usual; they
    also give the loop a wakeup fd, so a signal delivered to a reader thread wakes it.
    """
    work = asyncio.ensure_future(body)
    try:
        with stop_on_signals() as stop:
            stopped = asyncio.ensure_future(stop.wait())
            try:
                await asyncio.wait((work, stopped), return_when=asyncio.FIRST_COMPLETED)
            finally:
                stopped.cancel()
    finally:
        # The default handlers are back: a second Ctrl-C aborts a close that hangs.
        if not work.done():
            work.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await work  # its outcome (an error, a closed pipe) is the command's


async def _until_stdout_closes(body: Awaitable[None]) -> None:
    """`aether tail | head -3`: a closed stdout ends the command quietly (exit 0)."""
    try:
        await body
    except BrokenPipeError:
        with contextlib.suppress(OSError):  # no flush error at exit either
            devnull = os.open(os.devnull, os.O_WRONLY)
            os.dup2(devnull, sys.stdout.fileno())
