"""The `aether` command: global options, exit codes, error rendering.

Every command module in ``aether_cli.commands`` registers itself on `app`. Commands get
the effective `Settings` and output mode from `cli_state(ctx)` and run their async body
with `run(ctx, coro)`, which maps library errors to exit codes and one-line messages.
"""

from __future__ import annotations

import asyncio
import logging
import os
import sys
from collections.abc import Awaitable, Callable, Coroutine
from dataclasses import dataclass
from pathlib import Path
from typing import Annotated, Any, NoReturn, TypeVar

import orjson
import typer
from rich.console import Console
from typer.core import TyperGroup

from aether.config import Settings
from aether.errors import (
    AetherError,
    ConfigError,
    NatsUnavailableError,
    NotFoundError,
    ValidationError,
    VersionConflictError,
)

EXIT_OK = 0
EXIT_ERROR = 1
EXIT_USAGE = 2
EXIT_CONFLICT = 3
EXIT_NOT_FOUND = 4
EXIT_UNREACHABLE = 5

T = TypeVar("T")


class OneLineErrorsGroup(TyperGroup):
    """The root command group: usage errors become one ``error:`` line on stderr (exit 2)."""

    def main(self, *args: Any, standalone_mode: bool = True, **kwargs: Any) -> Any:
        """Run the CLI; in standalone mode print usage errors as one line and exit."""
        if not standalone_mode:
            return super().main(*args, standalone_mode=False, **kwargs)
        try:
            rv = super().main(*args, standalone_mode=False, **kwargs)
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

out = Console(highlight=False, soft_wrap=True)
err = Console(stderr=True, highlight=False, soft_wrap=True)


@dataclass
class CliState:
    """What the global options decided, shared with every command."""

    config_file: Path | None
    overrides: dict[str, object]
    json: bool
    debug: bool
    _settings: Settings | None = None

    @property
    def settings(self) -> Settings:
        """The effective settings (file < env < flags), loaded once."""
        if self._settings is None:
            self._settings = Settings.load(self.config_file, overrides=self.overrides)
        return self._settings


def cli_state(ctx: typer.Context) -> CliState:
    """The `CliState` of the running command."""
    root = ctx.find_root()
    state = root.obj
    if not isinstance(state, CliState):  # invoked without the callback (tests of subcommands)
        state = CliState(None, {}, False, False)
        root.obj = state
    return state


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


def fail(message: str, code: int = EXIT_ERROR) -> NoReturn:
    """Print one line on stderr and exit with `code`."""
    err.print(f"error: {message}", markup=False)
    raise typer.Exit(code)


def exit_code_for(exc: BaseException) -> int:
    """The exit code DESIGN.md assigns to a library error."""
    if isinstance(exc, VersionConflictError):
        return EXIT_CONFLICT
    if isinstance(exc, NotFoundError):
        return EXIT_NOT_FOUND
    if isinstance(exc, NatsUnavailableError):
        return EXIT_UNREACHABLE
    if isinstance(exc, ValidationError | ConfigError):
        return EXIT_USAGE if isinstance(exc, ConfigError) else EXIT_ERROR
    return EXIT_ERROR


def run(ctx: typer.Context, body: Callable[[], Coroutine[Any, Any, T]] | Awaitable[T]) -> T:
    """Run an async command body; map errors to one line and an exit code; Ctrl-C exits 0."""
    state = cli_state(ctx)
    try:
        if callable(body):
            return asyncio.run(body())  # type: ignore[arg-type]
        return asyncio.run(body)  # type: ignore[arg-type]
    except KeyboardInterrupt:
        raise typer.Exit(EXIT_OK) from None
    except typer.Exit:
        raise
    except BrokenPipeError:  # the reader went away (`aether replay x --json | head`)
        _silence_stdout()
        raise typer.Exit(EXIT_OK) from None
    except AetherError as e:
        if state.debug:
            raise
        fail(str(e), exit_code_for(e))
    except OSError as e:
        if state.debug:
            raise
        fail(f"{e.strerror or e}" + (f": {e.filename}" if e.filename else ""))
    except Exception as e:  # a bug: still one line, the traceback is behind --debug
        if state.debug:
            raise
        fail(f"unexpected {type(e).__name__}: {e} (run with --debug for the traceback)")


def _silence_stdout() -> None:
    """Point stdout at /dev/null so the interpreter's final flush cannot fail again."""
    try:
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())
    except (OSError, ValueError, AttributeError):  # not a real file (tests)
        pass


def settings_or_fail(ctx: typer.Context) -> Settings:
    """The effective settings, or a one-line config error with exit code 2."""
    state = cli_state(ctx)
    try:
        return state.settings
    except AetherError as e:
        if state.debug:
            raise
        fail(str(e), exit_code_for(e))


def print_json(value: object) -> None:
    """Print one JSON document (or one JSON line) on stdout."""
    sys.stdout.write(orjson.dumps(value, option=orjson.OPT_NON_STR_KEYS).decode() + "\n")
    sys.stdout.flush()


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
