"""``aether config show|check|permissions``: effective settings, a readiness check of the
NATS deployment, and the nats-server permissions that confine a user to one namespace."""

from __future__ import annotations

import re
from typing import Annotated

import typer
from rich.table import Table
from rich.text import Text

from aether.errors import ValidationError
from aether.permissions import namespace_permissions, render_permissions
from aether.subjects import validate_namespace
from aether_cli.context import (
    EXIT_ERROR,
    EXIT_USAGE,
    cli_state,
    fail,
    out,
    print_json,
    run,
    settings_or_fail,
)

config_app = typer.Typer(
    name="config",
    help="Show the effective settings, check the NATS deployment, print permissions.",
    no_args_is_help=True,
)

_JSON = typer.Option("--json", help="Machine-readable JSON output.")


def register(app: typer.Typer) -> None:
    """Add the ``config`` group to `app`."""
    app.add_typer(config_app, name="config")


@config_app.command("show")
def config_show(ctx: typer.Context, json_output: Annotated[bool, _JSON] = False) -> None:
    """Every setting's effective value and where it came from (secrets masked)."""
    settings = settings_or_fail(ctx)
    shown = settings.display()
    if cli_state(ctx).json or json_output:
        print_json(
            {
                k: {"value": v, "source": settings.sources.get(k, "default")}
                for k, v in shown.items()
            }
        )
        return
    table = Table("Setting", "Value", "Source")
    for key, value in shown.items():
        text = ", ".join(map(str, value)) if isinstance(value, list) else value
        shown_value = "" if text is None else str(text)
        table.add_row(Text(key), Text(shown_value), Text(settings.sources.get(key, "default")))
    out.print(table)


@config_app.command("check")
def config_check(ctx: typer.Context, json_output: Annotated[bool, _JSON] = False) -> None:
    """Connect and check JetStream, server features, streams and bucket; exit 1 if
    something required is missing."""
    settings = settings_or_fail(ctx)
    from aether.checks import MISSING, OK, WARN, check_deployment  # loads nats-py

    checks = run(ctx, lambda: check_deployment(settings))
    failed = [c for c in checks if c.failed]
    if cli_state(ctx).json or json_output:
        print_json({"ok": not failed, "checks": [c.as_dict() for c in checks]})
    else:
        table = Table("Check", "Status", "Detail")
        style = {OK: "green", MISSING: "red", WARN: "yellow"}
        for c in checks:
            status = c.status if c.required or c.status != MISSING else "missing (optional)"
            table.add_row(Text(c.name), Text(status, style=style.get(c.status, "")), Text(c.detail))
        out.print(table)
    if failed:
        names = ", ".join(c.name for c in failed)
        fail(f"not ready for aether: {names} (see above)", EXIT_ERROR)


@config_app.command("permissions")
def config_permissions(
    ctx: typer.Context,
    namespace: Annotated[str, typer.Argument(help="The namespace the user may use.")],
    inbox_prefix: Annotated[
        str | None,
        typer.Option(
            "--inbox-prefix",
            help="Inbox prefix the user's clients use (nats.inbox_prefix; default: the "
            "namespace's own, _INBOX_aether.NAMESPACE).",
        ),
    ] = None,
    json_output: Annotated[bool, _JSON] = False,
) -> None:
    """Print a nats-server permissions block allowing exactly NAMESPACE's subjects,
    streams and KV bucket."""
    try:
        validate_namespace(namespace, "NAMESPACE")
    except ValidationError as e:
        fail(str(e), EXIT_USAGE)
    prefix: str | None
    if inbox_prefix is None:
        prefix = settings_or_fail(ctx).nats.inbox_prefix  # None: the namespace's own
    elif _valid_prefix(inbox_prefix):
        prefix = inbox_prefix
    else:
        fail("--inbox-prefix: must be subject tokens of A-Z, a-z, 0-9, '_', '-', '$'", EXIT_USAGE)
    if cli_state(ctx).json or json_output:
        p = namespace_permissions(namespace, prefix)
        print_json(
            {"publish": {"allow": list(p.publish)}, "subscribe": {"allow": list(p.subscribe)}}
        )
        return
    out.print(render_permissions(namespace, prefix), markup=False, end="")


def _valid_prefix(prefix: str) -> bool:
    return re.fullmatch(r"[A-Za-z0-9_$-]+(\.[A-Za-z0-9_$-]+)*", prefix) is not None
