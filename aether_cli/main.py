"""The `aether` command: global options, exit codes, error rendering.

Every command module in ``aether_cli.commands`` registers itself on `app`. Commands get
the effective `Settings` and output mode from `cli_state(ctx)` and run their async body
with `run(ctx, coro)`, which maps library errors to exit codes and one-line messages.
"""

from __future__ import annotations

import asyncio
import logging
import sys
from collections.abc import Awaitable, Callable, Coroutine
from dataclasses import dataclass
from pathlib import Path
from typing import Annotated, Any, NoReturn, TypeVar

import orjson
import typer
from rich.console import Console

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

app = typer.Typer(
    name="aether",
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


@app.callback()
def main_options(
    ctx: typer.Context,
    config: Annotated[
        Path | None, typer.Option("--config", "-c", help="YAML config file.", envvar="AETHER_CONFIG")
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
) -> None:
    """Global options shared by every command."""
    overrides: dict[str, object] = {"namespace": namespace, "store": store}
    if server:
        overrides["nats.servers"] = list(server)
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
    except AetherError as e:
        if state.debug:
            raise
        fail(str(e), exit_code_for(e))
    except OSError as e:
        if state.debug:
            raise
        fail(f"{e.strerror or e}" + (f": {e.filename}" if e.filename else ""))


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
    main()
