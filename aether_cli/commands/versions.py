"""``aether versions``: the latest version of some actors, or of every actor."""

from __future__ import annotations

from typing import Annotated

import typer
from rich.table import Table
from rich.text import Text

from aether.errors import ValidationError
from aether.subjects import validate_actor_id
from aether_cli.context import EXIT_USAGE, cli_state, fail, out, print_json, run, settings_or_fail
from aether_cli.session import read_only_session


def register(app: typer.Typer) -> None:
    """Add ``versions`` to `app`."""
    app.command("versions")(versions)


def versions(
    ctx: typer.Context,
    actors: Annotated[
        list[str] | None,
        typer.Argument(
            metavar="ACTOR",
            help="Actor ids (default: every actor of the namespace).",
            show_default=False,
        ),
    ] = None,
    prefix: Annotated[
        str | None,
        typer.Option(
            "--prefix",
            metavar="P",
            help="Only actors whose id starts with P (exactly, case-sensitive).",
            show_default=False,
        ),
    ] = None,
    json_output: Annotated[
        bool, typer.Option("--json", help="One JSON object: actor id -> latest version.")
    ] = False,
) -> None:
    """Print each actor's latest version (0: no events); --json prints one object."""
    settings = settings_or_fail(ctx)
    for actor in actors or ():
        try:
            validate_actor_id(actor, "ACTOR")
        except ValidationError as e:
            fail(str(e), EXIT_USAGE)
    if prefix is not None and actors:
        fail("--prefix lists the namespace's actors: give it or ACTOR names, not both", EXIT_USAGE)
    if prefix == "":
        fail("--prefix: must not be empty", EXIT_USAGE)
    as_json = cli_state(ctx).json or json_output

    async def body() -> None:
        async with read_only_session(settings) as store:
            if actors:
                found = {a: await store.get_latest_version(a) for a in actors}
            else:
                every = await store.list_actors()
                found = dict(
                    sorted(
                        (a, v) for a, v in every.items() if prefix is None or a.startswith(prefix)
                    )
                )
        if as_json:
            print_json(found)
        elif not found and prefix is not None:
            out.print(
                f"No actor starting with {prefix!r} in namespace {settings.namespace!r}",
                markup=False,
            )
        elif not found:
            out.print(f"No events in namespace {settings.namespace!r}", markup=False)
        else:
            table = Table("Actor", "Version")
            table.columns[1].justify = "right"
            for actor, version in found.items():
                table.add_row(Text(actor), Text(str(version)))
            out.print(table)

    run(ctx, body)
