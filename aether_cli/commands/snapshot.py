"""``aether snapshot``: an actor's latest snapshot (its version, time and state)."""

from __future__ import annotations

from typing import Annotated, Any

import orjson
import typer

from aether.errors import ValidationError
from aether.event import format_timestamp
from aether.store.base import SnapshotStore
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
from aether_cli.session import read_only_session


def register(app: typer.Typer) -> None:
    """Add ``snapshot`` to `app`."""
    app.command("snapshot")(snapshot)


def snapshot(
    ctx: typer.Context,
    actor: Annotated[
        str,
        typer.Argument(metavar="ACTOR", help="Actor id, exactly as appended.", show_default=False),
    ],
    json_output: Annotated[
        bool,
        typer.Option(
            "--json",
            help="One JSON object: actor_id, version, timestamp, state, latest_version.",
        ),
    ] = False,
) -> None:
    """Show the actor's latest snapshot and how far its events are past it; exit 4 if none."""
    settings = settings_or_fail(ctx)
    try:
        validate_actor_id(actor, "ACTOR")
    except ValidationError as e:
        fail(str(e), EXIT_USAGE)
    as_json = cli_state(ctx).json or json_output

    async def body() -> None:
        async with read_only_session(settings) as store:
            snapshots: SnapshotStore = store  # type: ignore[assignment,unused-ignore]
            snap = await snapshots.get_latest_snapshot(actor)
            latest = await store.get_latest_version(actor)
        if snap is None:
            fail(
                f"not found: actor {actor!r} has no snapshot in namespace {settings.namespace!r}"
                + (f" (it is at version {latest})" if latest else " (nor any events)"),
                EXIT_NOT_FOUND,
            )
        doc: dict[str, Any] = {
            "actor_id": snap.actor_id,
            "version": snap.version,
            "timestamp": format_timestamp(snap.timestamp),
            "state": snap.state,
            "latest_version": latest,
        }
        if as_json:
            print_json(doc)
            return
        behind = latest - snap.version
        out.print(
            f"Snapshot of {actor!r} at version {snap.version}, taken {doc['timestamp']}; "
            f"the actor is at version {latest} ({behind} event{'' if behind == 1 else 's'} "
            "after it):",
            markup=False,
        )
        out.print(orjson.dumps(snap.state, option=orjson.OPT_INDENT_2).decode(), markup=False)

    run(ctx, body)
