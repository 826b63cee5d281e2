"""``aether processors``: look at and operate the durable processors of a namespace.

Every subcommand reads or changes the processors' durable state in the store (their
checkpoints and parked lists), so it works from any machine, whether or not a node runs
them: ``status`` (per processor and segment/shard), ``reset`` (refused while the
processor runs), ``parked``, ``retry``, ``skip`` and ``wait`` (for CI scripts).
`load_processor` is what ``aether node run --processor module:attr`` uses.
"""

from __future__ import annotations

import dataclasses
import importlib
import inspect
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any

import typer
from rich.table import Table
from rich.text import Text

from aether.event import format_timestamp
from aether_cli.commands.cluster_common import duration_option
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
    strict_int,
)
from aether_cli.live import refresh_until_stopped
from aether_cli.session import read_only_session

if TYPE_CHECKING:
    from aether.processing import ParkedEvent, Processor, SegmentStatus

processors_app = typer.Typer(
    help="Operate durable processors: status, reset, parked, retry, skip, wait.",
    no_args_is_help=True,
)

NameArg = Annotated[
    str, typer.Argument(metavar="NAME", help="The processor's name.", show_default=False)
]
JsonOpt = Annotated[bool, typer.Option("--json", help="One JSON document.")]


def register(app: typer.Typer) -> None:
    """Add ``processors ...`` to `app`."""
    app.add_typer(processors_app, name="processors")


# -- loading the user's processors -----------------------------------------------------


def load_processor(spec: str, option: str = "--processor") -> Processor:
    """The processor ``module:attr`` names (``attr`` may be dotted), imported from the
    current directory or PYTHONPATH; exit 2 with one line when it cannot be had or is not
    a processor (an object with a ``name`` and an ``async handle(event, ctx)``)."""
    module_name, sep, attr = spec.partition(":")
    if not sep or not module_name or not attr:
        fail(f"{option}: {spec!r} is not MODULE:ATTR (e.g. examples.order_totals:projection)", 2)
    cwd = str(Path.cwd())
    if cwd not in sys.path and "" not in sys.path:
        sys.path.insert(0, cwd)
    try:
        target: Any = importlib.import_module(module_name)
    except Exception as e:  # ImportError, or the module failed while importing
        fail(f"{option}: cannot import module {module_name!r} ({type(e).__name__}: {e})", 2)
    for part in attr.split("."):
        try:
            target = getattr(target, part)
        except AttributeError:
            fail(f"{option}: module {module_name!r} has no attribute {attr!r}", EXIT_USAGE)
    problem = _not_a_processor(target)
    if problem:
        fail(f"{option}: {spec} is not a processor ({problem})", EXIT_USAGE)
    return target  # type: ignore[no-any-return]


def _not_a_processor(obj: object) -> str:
    name = getattr(obj, "name", None)
    if not isinstance(name, str) or not name:
        return f"a {type(obj).__name__} without a 'name' string"
    handle = getattr(obj, "handle", None)
    if not callable(handle):
        return f"{name!r} has no handle(event, ctx) method"
    if not inspect.iscoroutinefunction(handle) and not inspect.iscoroutinefunction(
        getattr(handle, "__call__", None)  # noqa: B004  (an object with an async __call__)
    ):
        return f"{name!r}: handle must be an async function"
    return ""


def check_unique_names(processors: Sequence[Processor]) -> None:
    """Exit 2 when two processors share a name (their checkpoints would collide)."""
    seen: set[str] = set()
    for p in processors:
        if p.name in seen:
            fail(f"--processor: two processors are named {p.name!r}", EXIT_USAGE)
        seen.add(p.name)


# -- status ----------------------------------------------------------------------------


def status_doc(s: SegmentStatus) -> dict[str, Any]:
    """A JSON-ready dict of a segment's status."""
    return dict(s.to_json())


def _state_text(s: SegmentStatus) -> str:
    if s.stopped_at is not None and s.state in ("stopped", "paused"):
        return f"{s.state} at {s.stopped_at}"
    return s.state


def _status_table(statuses: list[SegmentStatus], title: str) -> Table:
    table = Table(title=title, title_justify="left")
    for col, right in (
        ("Processor", False),
        ("Segment", False),
        ("State", False),
        ("Owner", False),
        ("Checkpoint", True),
        ("Lag (events)", True),
        ("Lag (s)", True),
        ("Parked", True),
        ("Last error", False),
    ):
        table.add_column(col, justify="right" if right else "left", overflow="fold")
    for s in statuses:
        table.add_row(
            Text(s.processor),
            Text(s.segment),
            Text(_state_text(s)),
            Text(s.owner or "-"),
            str(s.checkpoint),
            str(s.lag_events),
            "-" if s.lag_seconds is None else f"{s.lag_seconds:.1f}",
            str(s.parked),
            Text(s.last_error or ""),
        )
    return table


@processors_app.command("status")
def status(
    ctx: typer.Context,
    name: Annotated[
        str | None,
        typer.Argument(metavar="[NAME]", help="Only this processor.", show_default=False),
    ] = None,
    watch: Annotated[bool, typer.Option("--watch", help="Refresh until Ctrl-C.")] = False,
    interval: Annotated[
        str, typer.Option("--interval", help="Refresh interval with --watch.")
    ] = "1s",
    json_output: Annotated[
        bool, typer.Option("--json", help="One JSON document (a JSON line per refresh).")
    ] = False,
) -> None:
    """Per processor and segment (shard): state, owner node, checkpoint, lag in events
    and seconds, parked count, last error. Exit 4 if NAME has no durable state."""
    settings = settings_or_fail(ctx)
    every = duration_option(interval, "--interval") or 1.0
    as_json = cli_state(ctx).json or json_output

    async def read(store: Any) -> list[SegmentStatus]:
        from aether.processing import processor_status

        found = await processor_status(store, name)
        if name is not None and not found:
            fail(_unknown(name, settings.namespace), EXIT_NOT_FOUND)
        return found

    def show(found: list[SegmentStatus]) -> None:
        if as_json:
            print_json([status_doc(s) for s in found])
        elif not found:
            out.print(f"no processors in namespace {settings.namespace!r}", markup=False)
        else:
            out.print(_status_table(found, _title(settings.namespace)))

    async def body() -> None:
        async with read_only_session(settings) as store:
            if not watch:
                show(await read(store))
                return
            await refresh_until_stopped(
                lambda: read(store),
                lambda found: _status_table(found, _title(settings.namespace)),
                show,
                every=every,
                as_json=as_json,
            )

    run(ctx, body)


def _title(namespace: str) -> str:
    return f"processors of namespace {namespace!r}"


def _unknown(name: str, namespace: str) -> str:
    return f"not found: no processor {name!r} in namespace {namespace!r}"


async def _require_known(store: Any, name: str, namespace: str) -> None:
    from aether.processing import processor_status

    if not await processor_status(store, name):
        fail(_unknown(name, namespace), EXIT_NOT_FOUND)


# -- reset -----------------------------------------------------------------------------


@processors_app.command("reset")
def reset(
    ctx: typer.Context,
    name: NameArg,
    to_start: Annotated[
        bool, typer.Option("--to-start", help="Process every event again.")
    ] = False,
    to_position: Annotated[
        int | None,
        typer.Option(
            "--to-position",
            metavar="P",
            help="Resume after position P (P processed).",
            parser=strict_int("--to-position", minimum=0),
        ),
    ] = None,
) -> None:
    """Move the processor's checkpoint (every segment); refused (exit 1) while it runs."""
    settings = settings_or_fail(ctx)
    if to_start == (to_position is not None):
        fail("reset: give exactly one of --to-start and --to-position P", EXIT_USAGE)
    position = 0 if to_start else int(to_position or 0)

    async def body() -> None:
        from aether.errors import ProcessorRunningError
        from aether.processing import reset as reset_processor

        async with read_only_session(settings) as store:
            await _require_known(store, name, settings.namespace)
            try:
                await reset_processor(store, name, to_position=position)
            except ProcessorRunningError as e:
                fail(f"{e} (stop the nodes running it first)", EXIT_ERROR)
        where = "the start" if position == 0 else f"position {position}"
        out.print(f"reset {name!r} to {where}", markup=False)

    run(ctx, body)


# -- parked, retry, skip -----------------------------------------------------------------


def parked_doc(p: ParkedEvent) -> dict[str, Any]:
    """A JSON-ready dict of a parked event."""
    doc = dataclasses.asdict(p)
    doc["parked_at"] = format_timestamp(p.parked_at)
    return doc


@processors_app.command("parked")
def parked(ctx: typer.Context, name: NameArg, json_output: JsonOpt = False) -> None:
    """The processor's parked events (position, actor, version, type, error), in order."""
    settings = settings_or_fail(ctx)
    as_json = cli_state(ctx).json or json_output

    async def body() -> None:
        from aether.processing import list_parked

        async with read_only_session(settings) as store:
            await _require_known(store, name, settings.namespace)
            found = await list_parked(store, name)
        if as_json:
            print_json([parked_doc(p) for p in found])
            return
        if not found:
            out.print(f"{name!r} has no parked events", markup=False)
            return
        table = Table(title=f"parked events of {name!r}", title_justify="left")
        for col in ("Position", "Segment", "Actor", "Version", "Type", "Attempts", "Error"):
            table.add_column(col, overflow="fold")
        for p in found:
            table.add_row(
                str(p.position),
                Text(p.segment),
                Text(p.actor_id),
                str(p.version),
                Text(p.event_type),
                str(p.attempts),
                Text(p.error),
            )
        out.print(table)

    run(ctx, body)


@processors_app.command("retry")
def retry(
    ctx: typer.Context,
    name: NameArg,
    position: Annotated[
        int | None,
        typer.Argument(
            metavar="[POSITION]",
            help="Only this parked event (default: all, in order).",
            parser=strict_int("POSITION", minimum=1),
            show_default=False,
        ),
    ] = None,
) -> None:
    """Hand parked events back to the processor, in order (all, or the one at POSITION)."""
    settings = settings_or_fail(ctx)

    async def body() -> None:
        from aether.processing import retry_parked

        async with read_only_session(settings) as store:
            await _require_known(store, name, settings.namespace)
            count = await retry_parked(store, name, position)
        out.print(f"retried {count} parked event{'' if count == 1 else 's'} of {name!r}")

    run(ctx, body)


@processors_app.command("skip")
def skip(
    ctx: typer.Context,
    name: NameArg,
    position: Annotated[
        int,
        typer.Argument(
            metavar="POSITION",
            help="The parked event to drop.",
            parser=strict_int("POSITION", minimum=1),
            show_default=False,
        ),
    ],
) -> None:
    """Drop the parked event at POSITION: it is never handled."""
    settings = settings_or_fail(ctx)

    async def body() -> None:
        from aether.processing import skip_parked

        async with read_only_session(settings) as store:
            await _require_known(store, name, settings.namespace)
            await skip_parked(store, name, position)
        out.print(f"skipped the parked event at position {position} of {name!r}")

    run(ctx, body)


# -- wait ------------------------------------------------------------------------------


@processors_app.command("wait")
def wait(
    ctx: typer.Context,
    name: NameArg,
    position: Annotated[
        int,
        typer.Option(
            "--position",
            metavar="P",
            help="Wait until the processor processed position P.",
            parser=strict_int("--position", minimum=0),
        ),
    ],
    timeout: Annotated[
        str, typer.Option("--timeout", help="Give up after this long (exit 1).")
    ] = "30s",
    actor: Annotated[
        str | None,
        typer.Option("--actor", help="Only the shard holding this actor must have caught up."),
    ] = None,
) -> None:
    """Exit 0 once NAME processed everything up to position P; exit 1 on timeout."""
    settings = settings_or_fail(ctx)
    seconds = duration_option(timeout, "--timeout") or 30.0

    async def body() -> None:
        from aether.errors import ProcessorTimeoutError
        from aether.processing import wait_for

        async with read_only_session(settings) as store:
            try:
                await wait_for(store, name, position, timeout=seconds, actor_id=actor)
            except ProcessorTimeoutError as e:
                fail(str(e), EXIT_ERROR)
        out.print(f"{name!r} reached position {position}", markup=False)

    run(ctx, body)
