"""The `aether` command: the root app, its global options and the entry point.

Every module in ``aether_cli.commands`` that defines ``register(app)`` is registered
here. Commands import what they share from `aether_cli.context`, never from this module,
so importing a command first cannot leave it unregistered.
"""

from __future__ import annotations

import logging
import re
import sys
from pathlib import Path
from typing import Annotated, Any

import typer
from typer.core import TyperGroup

import aether_cli.help_format  # noqa: F401  (boolean flags show no metavar in --help)
from aether_cli.context import (
    EXIT_CONFLICT,
    EXIT_ERROR,
    EXIT_NOT_FOUND,
    EXIT_OK,
    EXIT_UNREACHABLE,
    EXIT_USAGE,
    CliState,
    cli_state,
    err,
    exit_code_for,
    fail,
    out,
    print_json,
    run,
    settings_or_fail,
)

__all__ = [
    "EXIT_CONFLICT",
    "EXIT_ERROR",
    "EXIT_NOT_FOUND",
    "EXIT_OK",
    "EXIT_UNREACHABLE",
    "EXIT_USAGE",
    "CliState",
    "app",
    "cli_state",
    "exit_code_for",
    "fail",
    "main",
    "out",
    "print_json",
    "run",
    "settings_or_fail",
]


_INTEGER_RE = re.compile(r"[+-]?[0-9]+")


def _integers_are_integers() -> None:
    """Integer options and arguments of every command take decimal digits only: typer's
    lax coercion would read ``-e 1.0`` as 1 (and ``1e3`` as 1000). Anything else is a
    usage error (exit 2) naming the option."""
    from typer.core import _TyperParameter

    process = _TyperParameter.process_value
    if getattr(process, "_aether_ints", False):
        return

    def process_value(self: Any, ctx: Any, value: Any) -> Any:
        desc = getattr(self, "type_descriptor", None)
        annotation = getattr(desc, "annotation", None)
        parser = getattr(getattr(desc, "parameter_info", None), "parser", None)
        if annotation is int and parser is None:
            raw = value if isinstance(value, list | tuple) else [value]
            for v in raw:
                if isinstance(v, str) and not _INTEGER_RE.fullmatch(v.strip()):
                    shown = v if len(v) <= 40 else v[:37] + "..."
                    raise typer.BadParameter(f"{shown!r} is not an integer", ctx=ctx, param=self)
        return process(self, ctx, value)

    process_value._aether_ints = True  # type: ignore[attr-defined]
    _TyperParameter.process_value = process_value  # type: ignore[method-assign]


_integers_are_integers()


class OneLineErrorsGroup(TyperGroup):
    """The root command group: usage errors become one ``error:`` line on stderr (exit 2)."""

    def main(self, *args: Any, standalone_mode: bool = True, **kwargs: Any) -> Any:
        """Run the CLI; in standalone mode print usage errors as one line and exit."""
        if not standalone_mode:
            return super().main(*args, standalone_mode=False, **kwargs)  # type: ignore[misc]
        try:
            rv = super().main(*args, standalone_mode=False, **kwargs)  # type: ignore[misc]
        except typer.Abort:
            err.print("error: aborted", markup=False)
            sys.exit(EXIT_ERROR)
        except Exception as e:
            code = getattr(e, "exit_code", None)
            message = getattr(e, "format_message", None)
            if not isinstance(code, int) or not callable(message):
                raise  # not a usage error: a bug, let it show
            text = str(message())
            if type(e).__name__ == "NoArgsIsHelpError":  # bare `aether`: the help text
                if text.strip():  # (typer's rich help has printed itself already)
                    sys.stderr.write(text + "\n")
                sys.exit(code)
            line = " ".join(part.strip() for part in text.splitlines() if part.strip())
            sub = getattr(e, "ctx", None)
            path = sub.command_path if sub is not None else (self.name or "aether")
            hint = f" (see '{path} --help')"
            err.print(f"error: {line}{hint}", markup=False)
            sys.exit(code)
        sys.exit(rv if isinstance(rv, int) else EXIT_OK)


app = typer.Typer(
    name="aether",
    cls=OneLineErrorsGroup,
    help="Event sourcing on NATS JetStream: append, replay, tail, versions, cluster, bench.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
    context_settings={"help_option_names": ["-h", "--help"]},
)

_CONN: dict[str, Any] = {"rich_help_panel": "NATS connection (more in the config file)"}


@app.callback()
def main_options(
    ctx: typer.Context,
    config: Annotated[
        Path | None,
        typer.Option("--config", "-c", help="YAML config file.", envvar="AETHER_CONFIG"),
    ] = None,
    namespace: Annotated[
        str | None, typer.Option("--namespace", "-n", help="Namespace (default: 'default').")
    ] = None,
    server: Annotated[
        list[str] | None,
        typer.Option("--server", "-s", help="NATS URL; repeat for several servers."),
    ] = None,
    store: Annotated[
        str | None, typer.Option("--store", help="memory | sqlite | jetstream (default: auto).")
    ] = None,
    json_output: Annotated[
        bool, typer.Option("--json", help="Machine-readable JSON output.")
    ] = False,
    debug: Annotated[bool, typer.Option("--debug", help="Tracebacks and debug logs.")] = False,
    user: Annotated[
        str | None,
        typer.Option("--user", help="NATS user (password: --password-file or env).", **_CONN),
    ] = None,
    password_file: Annotated[
        str | None, typer.Option("--password-file", help="File holding the password.", **_CONN)
    ] = None,
    token_file: Annotated[
        str | None, typer.Option("--token-file", help="File holding the NATS token.", **_CONN)
    ] = None,
    nkey: Annotated[
        str | None, typer.Option("--nkey", help="NKey seed file (user nkey auth).", **_CONN)
    ] = None,
    creds: Annotated[
        str | None, typer.Option("--creds", help="Credentials file (user JWT + seed).", **_CONN)
    ] = None,
    tls_ca: Annotated[
        str | None, typer.Option("--tls-ca", help="CA file to verify the server.", **_CONN)
    ] = None,
    tls_cert: Annotated[
        str | None, typer.Option("--tls-cert", help="Client certificate (mutual TLS).", **_CONN)
    ] = None,
    tls_key: Annotated[
        str | None, typer.Option("--tls-key", help="Client certificate's key.", **_CONN)
    ] = None,
) -> None:
    """Global options shared by every command.

    Secrets are never flags (they would show in `ps`): give them in files (--password-file,
    --token-file, --nkey, --creds) or as AETHER_NATS_PASSWORD / AETHER_NATS_TOKEN.
    """
    overrides: dict[str, object] = {"namespace": namespace, "store": store}
    if server:
        overrides["nats.servers"] = list(server)
    for key, value in (
        ("nats.user", user),
        ("nats.password_file", password_file),
        ("nats.token_file", token_file),
        ("nats.nkey_seed_file", nkey),
        ("nats.creds_file", creds),
        ("nats.tls_ca_file", tls_ca),
        ("nats.tls_cert_file", tls_cert),
        ("nats.tls_key_file", tls_key),
    ):
        if value is not None:
            overrides[key] = value
    ctx.obj = CliState(config, overrides, json_output, debug)
    logging.basicConfig(
        level=logging.DEBUG if debug else logging.WARNING,
        format="%(levelname)s %(name)s: %(message)s",
        stream=sys.stderr,
    )


def _register_commands() -> None:
    import importlib
    import pkgutil

    from aether_cli import commands

    for mod in sorted(pkgutil.iter_modules(commands.__path__), key=lambda m: m.name):
        module = importlib.import_module(f"aether_cli.commands.{mod.name}")
        register = getattr(module, "register", None)
        if register is not None:
            register(app)


_register_commands()


def main() -> None:
    """Console-script entry point."""
    try:
        app()
    except KeyboardInterrupt:
        sys.exit(EXIT_OK)


if __name__ == "__main__":
    # `python -m aether_cli.main` runs this file as __main__, a second copy of the module:
    # hand over to the imported one, whose app the command modules registered on.
    from aether_cli.main import main as _imported_main

    _imported_main()
